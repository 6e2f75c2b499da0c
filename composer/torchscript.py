"""TorchScript models back to eager modules, so LRP hooks can attach to their layers.

A scripted module runs its compiled graph and ignores Python forward hooks, so a zennit
composite cannot act on it. Scripted ``nn.Sequential`` models of standard layers are rebuilt
as eager modules with the same parameters; anything else is refused with a clear error.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .errors import ComposerError

#: per layer class, the constructor arguments read back from the scripted module
_ARGS = {
    "Linear": lambda m: dict(in_features=m.in_features, out_features=m.out_features, bias=m.bias is not None),
    "ReLU": lambda m: {}, "Tanh": lambda m: {}, "Sigmoid": lambda m: {}, "Identity": lambda m: {},
    "LeakyReLU": lambda m: dict(negative_slope=m.negative_slope), "Dropout": lambda m: dict(p=m.p),
    "Flatten": lambda m: dict(start_dim=m.start_dim, end_dim=m.end_dim),
    "Softmax": lambda m: dict(dim=m.dim),
}
for _conv in ("Conv1d", "Conv2d", "Conv3d"):
    _ARGS[_conv] = lambda m: dict(in_channels=m.in_channels, out_channels=m.out_channels, kernel_size=m.kernel_size,
                                  stride=m.stride, padding=m.padding, dilation=m.dilation, groups=m.groups,
                                  bias=m.bias is not None, padding_mode=m.padding_mode)
for _pool in ("MaxPool1d", "MaxPool2d", "MaxPool3d"):
    _ARGS[_pool] = lambda m: dict(kernel_size=m.kernel_size, stride=m.stride, padding=m.padding, dilation=m.dilation,
                                  ceil_mode=m.ceil_mode)
for _pool in ("AvgPool1d", "AvgPool2d", "AvgPool3d"):
    _ARGS[_pool] = lambda m: dict(kernel_size=m.kernel_size, stride=m.stride, padding=m.padding,
                                  ceil_mode=m.ceil_mode, count_include_pad=m.count_include_pad)
for _pool in ("AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool2d"):
    _ARGS[_pool] = lambda m: dict(output_size=m.output_size)
for _bn in ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d"):
    _ARGS[_bn] = lambda m: dict(num_features=m.num_features, eps=m.eps, momentum=m.momentum, affine=m.affine,
                                track_running_stats=m.track_running_stats)


def to_eager(module: nn.Module) -> nn.Module:
    """An eager copy of a scripted ``nn.Sequential`` (returns eager modules unchanged).

    Example
    -------
    >>> net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    >>> eager = to_eager(torch.jit.script(net))
    >>> type(eager[0]).__name__, torch.allclose(eager(torch.ones(1, 1, 4, 4)), net(torch.ones(1, 1, 4, 4)))
    ('Conv2d', True)
    """
    if not isinstance(module, torch.jit.ScriptModule):
        return module
    kind = getattr(module, "original_name", type(module).__name__)
    if kind == "Sequential":
        return nn.Sequential(OrderedDict((name, to_eager(child)) for name, child in module.named_children()))
    if kind not in _ARGS:
        raise ComposerError(
            f"cannot attach LRP hooks to the scripted module '{kind}': TorchScript ignores Python hooks. "
            "Only scripted nn.Sequential models of standard layers are converted; pass an eager model "
            "as 'package.module:factory' instead")
    eager = getattr(nn, kind)(**_ARGS[kind](module))
    eager.load_state_dict(module.state_dict())
    return eager.train(module.training)
