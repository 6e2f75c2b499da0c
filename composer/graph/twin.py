"""The twin a model is explained on: its own modules, the user's tensors, eval mode.

composer never hooks, canonizes or switches the mode of the model it is given. It works on a
*structural copy*: new module objects (so hooks, canonizers and parameter modifiers touch only
the copy, and two threads never share a module), new ``Parameter`` objects that do not require
gradients, and buffers as new tensor objects — all of them sharing the user's storage, so no
weight is copied. The copy is put in eval mode: a sample's map never depends on dropout or on
its batch-mates' statistics.
"""
from __future__ import annotations

import copy
from typing import Dict

import torch


def structural_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` with new module objects over the same weight storage, in eval mode.

    Example
    -------
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout()).train()
    >>> twin = structural_copy(net)
    >>> twin[0] is net[0], twin[0].weight.data_ptr() == net[0].weight.data_ptr(), twin.training, net.training
    (False, True, False, True)
    >>> twin[0].weight.requires_grad, net[0].weight.requires_grad
    (False, True)
    """
    memo: Dict[int, object] = {}
    for p in model.parameters():
        memo[id(p)] = torch.nn.Parameter(p.detach(), requires_grad=False)
    for b in model.buffers():
        memo[id(b)] = b.detach()
    _plain_tensors(model, memo)
    twin = copy.deepcopy(model, memo)
    return twin.eval()


def share_module(module: torch.nn.Module) -> torch.nn.Module:
    """A new object for ``module`` (fresh hooks) with the same parameters and buffers (weight sharing).

    Example
    -------
    >>> relu = torch.nn.ReLU(); other = share_module(relu)
    >>> other is relu, type(other).__name__
    (False, 'ReLU')
    """
    memo: Dict[int, object] = {id(t): t for t in list(module.parameters()) + list(module.buffers())}
    _plain_tensors(module, memo)
    return copy.deepcopy(module, memo)


def _plain_tensors(model: torch.nn.Module, memo: Dict[int, object]) -> None:
    """Tensors kept as plain attributes (zennit 1.0's canonizers set merged weights that way) are shared,
    detached: deepcopy cannot copy a tensor that autograd computed."""
    for module in model.modules():
        for value in vars(module).values():
            if isinstance(value, torch.Tensor) and id(value) not in memo:
                memo[id(value)] = value.detach()
