"""Modules that graph canonization puts where a model's ``forward`` calls functions.

A rule can only bind to a module, so the canonical twin of a model turns its functional
operations into modules: ``x + y`` of two computed tensors becomes :class:`Add` (family ``sum``,
bound by ``lrp_base`` to the ``norm`` rule, as zennit binds its ``Sum``); ``x.mean((2, 3))`` becomes
:class:`Mean`; ``x * 0.5`` or ``x - 0.45`` with a constant becomes :class:`ElementwiseConstant`.
Activations and pooling become their ``torch.nn`` classes.
"""
from __future__ import annotations

import operator
from typing import Sequence, Tuple, Union

import torch


class Add(torch.nn.Module):
    """``a + b + ...`` of computed tensors (a residual connection) as a module of several inputs.

    zennit's ResNet canonizer stacks the operands and sums over the new axis (:class:`zennit.layer.Sum`),
    which copies both; this module reads them where they are. Its rule (``norm``) sees every operand.

    Example
    -------
    >>> Add()(torch.ones(2, 3), torch.full((1, 3), 2.))
    tensor([[3., 3., 3.],
            [3., 3., 3.]])
    """

    def forward(self, *operands: torch.Tensor) -> torch.Tensor:
        out = operands[0]
        for operand in operands[1:]:
            out = out + operand
        return out


class Mean(torch.nn.Module):
    """``x.mean(dim, keepdim)`` as a module: an average pooling over ``dim`` (bound like ``avgpool``).

    Example
    -------
    >>> Mean((2, 3))(torch.ones(1, 2, 4, 4)).shape
    torch.Size([1, 2])
    """

    def __init__(self, dim: Union[int, Sequence[int], None] = None, keepdim: bool = False):
        super().__init__()
        self.dim = tuple(dim) if isinstance(dim, (list, tuple)) else dim
        self.keepdim = keepdim

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.dim is None:
            return input.mean()
        return input.mean(self.dim, keepdim=self.keepdim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, keepdim={self.keepdim}"


#: the elementwise operations with a constant that :class:`ElementwiseConstant` stands for
CONSTANT_OPS = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "truediv": operator.truediv}


class ElementwiseConstant(torch.nn.Module):
    """``x + c``, ``x - c``, ``x * c``, ``x / c`` with a constant ``c`` (a number or a fixed tensor).

    LRP passes relevance through such a shift or scaling unchanged (``lrp_base`` binds ``pass``):
    the gradient would multiply it by ``c``.

    Example
    -------
    >>> ElementwiseConstant("mul", 0.5)(torch.ones(2))
    tensor([0.5000, 0.5000])
    """

    def __init__(self, op: str, constant: Union[float, torch.Tensor]):
        super().__init__()
        if op not in CONSTANT_OPS:
            raise ValueError(f"unknown elementwise operation {op!r}")
        self.op = op
        if isinstance(constant, torch.Tensor):
            self.register_buffer("constant", constant.detach())
        else:
            self.constant = constant

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return CONSTANT_OPS[self.op](input, self.constant)

    def extra_repr(self) -> str:
        shape = tuple(self.constant.shape) if isinstance(self.constant, torch.Tensor) else self.constant
        return f"op={self.op!r}, constant={shape}"


#: the modules canonization may create, for selectors and the coverage check
CANONICAL_MODULES: Tuple[type, ...] = (Add, Mean, ElementwiseConstant)
