"""Shared pieces of composer's rule hooks: the hook registry, TF's SafeDivide, sign maps."""
from __future__ import annotations

from typing import Type

import torch
from zennit.core import BasicHook, Hook

from ..catalog import Catalog

#: hook classes that rule specs may name (``hook: EpsilonHook``)
HOOKS: Catalog[Type[Hook]] = Catalog("hook")

#: what iNNvestigate's SafeDivide adds to an exactly-zero denominator
SAFE_DIVIDE_EPS = 1e-7


def register_hook(cls):
    """Class decorator: make a :class:`zennit.core.Hook` subclass nameable from rule specs.

    Example
    -------
    >>> from zennit.rules import Pass
    >>> @register_hook
    ... class MyPass(Pass):
    ...     '''Passes relevance through unchanged.'''
    >>> HOOKS["MyPass"] is MyPass
    True
    >>> HOOKS.unregister("MyPass")   # (the example leaves the catalog as it found it)
    """
    if not (isinstance(cls, type) and issubclass(cls, Hook)):
        raise TypeError(f"{cls!r} is not a zennit Hook subclass")
    return HOOKS.register(cls.__name__, cls)


def safe_divide(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """``n / (d + 1e-7 * [d == 0])``: iNNvestigate's SafeDivide, guarding exact zeros only.

    Example
    -------
    >>> safe_divide(torch.tensor([1., 1.]), torch.tensor([0., 2.]))
    tensor([1.0000e+07, 5.0000e-01])
    """
    return numerator / torch.where(denominator == 0, SAFE_DIVIDE_EPS, denominator)


def sign_map(x: torch.Tensor, mu: float = 0.0) -> torch.Tensor:
    """``+1 where x >= mu, else -1`` (so sign(0) = +1, as the reference's SIGN and x_sign use).

    Example
    -------
    >>> sign_map(torch.tensor([-1., 0., 2.]))
    tensor([-1.,  1.,  1.])
    """
    return torch.where(x >= mu, 1.0, -1.0).to(x.dtype)


class DescribedHook:
    """The base of composer's hooks: a hook keeps its constructor arguments, so a copy is the same rule
    and ``repr`` says what the rule is (zennit's ``BasicHook.copy`` rebuilds from modifiers only).

    Example
    -------
    >>> from composer.rules import EpsilonHook
    >>> EpsilonHook(epsilon=0.5).copy()
    EpsilonHook(epsilon=0.5, stdfactor=0.0, sign=False, mu=0.0, bias=True)
    """

    kwargs: dict

    def copy(self):
        return type(self)(**self.kwargs)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{type(self).__name__}({args})"


class SafeDivideHook(DescribedHook, BasicHook):
    """A :class:`zennit.core.BasicHook` built from :meth:`modifiers` of its constructor arguments."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        super().__init__(**self.modifiers(**kwargs))

    def modifiers(self, **kwargs) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError
