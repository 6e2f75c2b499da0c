"""Which hooks a composite can leave out without changing a single number.

iNNvestigate passes relevance through activations unchanged (the ``pass`` rule). For a ReLU the
plain gradient differs from ``pass`` only where the ReLU's input is <= 0, i.e. where its output is
exactly 0. If every rule that later receives that output gives zero relevance to zero inputs
(``R_in = a ⊙ ...``: epsilon, Z, StdX, alpha-beta, gamma, Z+, norm — ``zero_at_zero_input`` in
their specs), the relevance there is already 0 and both are the same: the hook can be skipped,
saving a copy and a backward node per activation. The same fact lets an epsilon-family layer read
its ``z`` after an in-place ReLU overwrote it with ``max(z, 0)``.

The analysis is conservative: it only applies to models whose leaf modules are all of kinds known to
map zeros to zeros (linear layers, convolutions, ReLU, pooling, flatten, dropout, identity, sums),
and a rule lacking the property makes every ReLU defined before it keep its hook.
"""
from __future__ import annotations

from typing import List, Set, Tuple

import torch
import zennit.layer
import zennit.types

from .selectors import is_relevance_layer

ZERO_PRESERVING = (torch.nn.Linear, zennit.types.Convolution, torch.nn.ReLU, zennit.types.MaxPool,
                   zennit.types.AvgPool, torch.nn.AdaptiveMaxPool1d, torch.nn.AdaptiveMaxPool2d,
                   torch.nn.AdaptiveMaxPool3d, torch.nn.Flatten, torch.nn.Dropout, torch.nn.Dropout1d,
                   torch.nn.Dropout2d, torch.nn.Dropout3d, torch.nn.Identity, zennit.layer.Sum)


def _zero_preserving(module: torch.nn.Module) -> bool:
    if isinstance(module, ZERO_PRESERVING):
        return True
    if isinstance(module, zennit.types.BatchNorm) and not module.training:
        # eval-mode batch norm maps 0 to 0 when its mean and bias are 0 (as merging canonizers leave it)
        mean, bias = module.running_mean, module.bias
        return (mean is None or not bool(mean.any())) and (bias is None or not bool(bias.any()))
    return False


def redundant_relu_passes(model: torch.nn.Module, assigned: List[Tuple[str, torch.nn.Module, object]]) -> Set[int]:
    """``id``s of the ReLU modules whose ``pass`` hook gives exactly the plain gradient."""
    leaves = [m for _, m in model.named_modules() if not list(m.children())]
    if not all(_zero_preserving(m) for m in leaves):
        return set()
    rule_of = {id(m): b.rule.spec for _, m, b in assigned}
    position = {id(m): i for i, m in enumerate(leaves)}
    last_violator = -1
    for m in leaves:
        spec = rule_of.get(id(m))
        if is_relevance_layer(m):
            if spec is None or not spec.zero_at_zero_input:
                last_violator = position[id(m)]
        elif isinstance(m, torch.nn.ReLU):
            if spec is not None and spec.name not in ("pass", "zennit_pass"):
                return set()  # guided backprop and friends: not an LRP composite
        elif spec is not None and not spec.zero_at_zero_input and spec.name not in ("pass", "zennit_pass"):
            return set()
    return {id(m) for m in leaves if isinstance(m, torch.nn.ReLU) and position[id(m)] > last_violator
            and rule_of.get(id(m)) is not None}


def inplace_followers(model: torch.nn.Module) -> dict:
    """For each leaf module, the leaf right after it in definition order, if that one works in place."""
    leaves = [m for _, m in model.named_modules() if not list(m.children())]
    return {id(a): b for a, b in zip(leaves, leaves[1:]) if getattr(b, "inplace", False)}
