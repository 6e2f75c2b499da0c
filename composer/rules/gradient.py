"""The plain gradient, chosen on purpose: a rule that registers nothing."""
from __future__ import annotations

from zennit.core import Hook, RemovableHandleList

from .base import register_hook


@register_hook
class GradientHook(Hook):
    """Leaves the module alone: its own backward applies. Binding it says "the gradient is meant here",
    so the coverage check counts the module as covered (zennit's composites leave, e.g., batch norms
    unhooked in ExcitationBackprop).

    Example
    -------
    >>> import torch
    >>> GradientHook().register(torch.nn.BatchNorm1d(2))
    []
    """

    def register(self, module):
        return RemovableHandleList()

    def copy(self):
        return GradientHook()
