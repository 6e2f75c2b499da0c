"""A layer's linear map with modified weights, and its transpose: what alpha-beta and gamma share.

:func:`linear_map` applies ``weight_fn(W)`` (no bias) to an input and :func:`transposed_map` its
transpose to a gradient, without running the layer's hooks. Linear layers and zero-padded
convolutions use explicit kernels (huge dense weights in row blocks, never copied whole); any other
layer its own ``forward`` with modified weights and autograd.

Example
-------
>>> layer = torch.nn.Linear(2, 1, bias=False); _ = layer.weight.data.copy_(torch.tensor([[1., -2.]]))
>>> linear_map(layer, torch.tensor([[3., 1.]]), positive)
tensor([[3.]])
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from zennit.core import ParamMod


def positive(x: torch.Tensor) -> torch.Tensor:
    """``x⁺``: the positive part (a weight modifier for :func:`linear_map`)."""
    return x.clamp(min=0)


def negative(x: torch.Tensor) -> torch.Tensor:
    """``x⁻``: the negative part."""
    return x.clamp(max=0)


_CONV_INPUT_GRAD = {1: torch.nn.grad.conv1d_input, 2: torch.nn.grad.conv2d_input, 3: torch.nn.grad.conv3d_input}


def _plain_conv(module) -> bool:
    return (isinstance(module, torch.nn.modules.conv._ConvNd) and not module.transposed
            and module.padding_mode == "zeros" and not isinstance(module.padding, str))


#: dense weights above this many elements are modified in row blocks, never copied whole (VGG's fc6: 103M)
BLOCK_ELEMENTS = 1 << 22


def _row_blocks(weight) -> list:
    """Slices of the weight's rows of at most :data:`BLOCK_ELEMENTS` elements (one slice for most layers)."""
    step = max(1, BLOCK_ELEMENTS // max(1, weight[0].numel()))
    return [slice(i, i + step) for i in range(0, weight.shape[0], step)]


def _generic_map(module, x, weight_fn):
    """Any layer: its own ``forward`` (which runs no hooks) with modified weight and no bias."""
    modifier = ParamMod(lambda param, name: weight_fn(param) if name == "weight" else param, zero_params="bias",
                        require_params=False)
    with modifier(module) as modified:
        return modified.forward(x)


def linear_map(module, x, weight_fn):
    """The module's linear map (no bias) with ``weight_fn(W)`` as weight, without running its hooks."""
    weight = module.weight.detach()
    if isinstance(module, torch.nn.Linear):
        parts = [F.linear(x, weight_fn(weight[rows])) for rows in _row_blocks(weight)]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
    if _plain_conv(module):
        return module._conv_forward(x, weight_fn(weight), None)
    with torch.no_grad():
        return _generic_map(module, x, weight_fn)


def transposed_map(module, grad, weight_fn, input_shape):
    """``weight_fn(W)ᵀ grad``: the VJP of :func:`linear_map` with respect to its input."""
    weight = module.weight.detach()
    if not (isinstance(module, torch.nn.Linear) or _plain_conv(module)):
        with torch.enable_grad():
            probe = torch.zeros(input_shape, dtype=grad.dtype, device=grad.device, requires_grad=True)
            return torch.autograd.grad(_generic_map(module, probe, weight_fn), probe, grad)[0]
    if isinstance(module, torch.nn.Linear):   # summed block by block: one block's product at a time
        return functools.reduce(torch.Tensor.add_, (grad[..., rows] @ weight_fn(weight[rows])
                                                    for rows in _row_blocks(weight)))
    dims = len(input_shape) - 2
    return _CONV_INPUT_GRAD[dims](input_shape, weight_fn(weight), grad, module.stride, module.padding,
                                  module.dilation, module.groups)
