"""The reference's three small models (mlp, cnn2d, cnn1d), rebuilt with the reference weights."""
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
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
