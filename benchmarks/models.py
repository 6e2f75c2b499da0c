"""The benchmark models: torchvision vgg16, resnet18 and resnet50 (random weights) and a 1-D conv net.

No canonizer is named: graph canonization merges resnet's batch norms and exposes its residual sums.
resnet50's batch-norm statistics are filled by a few training-mode passes so the merge is not trivial.
"""
from collections import OrderedDict

import torch
from torch import nn


def conv1d_net(length: int = 3000, classes: int = 5) -> nn.Sequential:
    """An ECG-style 1-D CNN for signals of ``length`` samples."""
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv1d(1, 16, 7, padding=3)), ("relu1", nn.ReLU()), ("pool1", nn.MaxPool1d(4)),
        ("conv2", nn.Conv1d(16, 32, 5, padding=2)), ("relu2", nn.ReLU()), ("pool2", nn.MaxPool1d(4)),
        ("conv3", nn.Conv1d(32, 64, 5, padding=2)), ("relu3", nn.ReLU()), ("pool3", nn.AdaptiveAvgPool1d(16)),
        ("flatten", nn.Flatten()), ("fc1", nn.Linear(64 * 16, 64)), ("relu4", nn.ReLU()),
        ("fc2", nn.Linear(64, classes)),
    ]))


def build(name: str, quick: bool):
    """(model in eval mode, input shape without batch, canonizers the presets need)."""
    import torchvision

    torch.manual_seed(0)
    size = 32 if quick else 224
    if name == "vgg16":
        return torchvision.models.vgg16(weights=None).eval(), (3, size, size), []
    if name in ("resnet18", "resnet50"):
        model = getattr(torchvision.models, name)(weights=None).train()
        with torch.no_grad():
            for _ in range(2):
                model(torch.randn(4, 3, 64, 64))
        return model.eval(), (3, size, size), []
    if name == "conv1d":
        length = 400 if quick else 3000
        return conv1d_net(length).eval(), (1, length), []
    raise ValueError(name)
