"""The reference's three small models (mlp, cnn2d, cnn1d), rebuilt with the reference weights."""
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DATA = Path(__file__).parent / "data" / "reference"
MODELS = ("mlp", "cnn2d", "cnn1d")


def _build(name):
    if name == "mlp":
        layers = [("fc1", nn.Linear(64, 32)), ("relu1", nn.ReLU()), ("fc2", nn.Linear(32, 16)), ("relu2", nn.ReLU()),
                  ("fc3", nn.Linear(16, 10))]
    else:
        conv, pool, k, pad, size = ((nn.Conv2d, nn.MaxPool2d, 3, 1, 16 * 8 * 8) if name == "cnn2d"
                                    else (nn.Conv1d, nn.MaxPool1d, 5, 2, 16 * 32))
        channels, pooling, classes, hidden = (3, 2, 10, 32) if name == "cnn2d" else (1, 4, 3, 16)
        layers = [("conv1", conv(channels, 8, k, padding=pad)), ("relu1", nn.ReLU()), ("pool1", pool(pooling)),
                  ("conv2", conv(8, 16, k, padding=pad)), ("relu2", nn.ReLU()), ("pool2", pool(pooling)),
                  ("flatten", nn.Flatten()), ("fc1", nn.Linear(size, hidden)), ("relu3", nn.ReLU()),
                  ("fc2", nn.Linear(hidden, classes))]
    return nn.Sequential(OrderedDict(layers))


def load_model(name):
    """The reference model ``name`` in eval mode with its weights."""
    model = _build(name)
    with np.load(DATA / "weights" / f"{name}.npz") as npz:
        model.load_state_dict({k: torch.from_numpy(npz[k]) for k in npz.files}, strict=True)
    return model.eval()


def load_inputs(name):
    with np.load(DATA / "inputs" / f"{name}.npz") as npz:
        return torch.from_numpy(npz["x"]).float()


def load_reference(name):
    """{method: array (4, ...)} plus 'targets'."""
    with np.load(DATA / "attributions" / f"{name}.npz") as npz:
        return {k: npz[k] for k in npz.files}


class FunctionalTwin(nn.Module):
    """The same network with only its weighted layers as modules: F.relu, F.max_pool, view in forward."""

    def __init__(self, name):
        super().__init__()
        self.name = name
        for layer_name, layer in _build(name).named_children():
            if isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                self.add_module(layer_name, layer)

    def forward(self, x):
        if self.name == "mlp":
            return self.fc3(torch.relu(self.fc2(F.relu(self.fc1(x)))))
        pool = F.max_pool2d if self.name == "cnn2d" else F.max_pool1d
        k = 2 if self.name == "cnn2d" else 4
        x = pool(F.relu(self.conv1(x)), k)
        x = pool(self.conv2(x).relu(), kernel_size=k)
        x = x.view(x.size(0), -1)
        return self.fc2(F.relu(self.fc1(x), inplace=True))


def nested_twin(name):
    """The same network as nested Sequentials with in-place ReLUs (state-dict keys renamed)."""
    flat = list(_build(name).named_children())
    for _, layer in flat:
        if isinstance(layer, nn.ReLU):
            layer.inplace = True
    cut = next(i for i, (n, _) in enumerate(flat) if n in ("flatten", "fc2")) if name != "mlp" else 2
    return nn.Sequential(OrderedDict([("features", nn.Sequential(OrderedDict(flat[:cut]))),
                                      ("head", nn.Sequential(OrderedDict(flat[cut:])))]))


def load_twin(name, form):
    """The reference model ``name`` as ``form``: 'modules' (the reference's own), 'functional' or 'nested'."""
    if form == "modules":
        return load_model(name)
    with np.load(DATA / "weights" / f"{name}.npz") as npz:
        weights = {k: torch.from_numpy(npz[k]) for k in npz.files}
    model = FunctionalTwin(name) if form == "functional" else nested_twin(name)
    if form == "nested":
        owner = {n.split(".")[-2]: n.rsplit(".", 1)[0] for n, _ in model.named_parameters()}
        weights = {f"{owner[k.split('.')[0]]}.{k.split('.')[1]}": v for k, v in weights.items()}
    model.load_state_dict(weights, strict=True)
    return model.eval()
