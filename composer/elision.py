"""Which hooks a composite can leave out without changing a single number — proven on the graph.

iNNvestigate passes relevance through activations unchanged (the ``pass`` rule). For a ReLU the
plain gradient differs from ``pass`` only where the ReLU's input is <= 0, i.e. where its output is
exactly 0. If the relevance arriving at every zero of the ReLU's output is itself 0, both are the
same and the hook can be skipped, saving a copy and a backward node per activation.

That holds when *every* reader of the ReLU's output, along every path of the canonical twin's
graph (:mod:`composer.graph`), ends in a rule that gives zero relevance to zero inputs
(``zero_at_zero_input`` in its spec: epsilon, Z, StdX, alpha-beta, gamma, Z+, norm — so a residual
sum bound to ``norm`` is fine, a functional ``+`` would not be), passing only through operations
that keep a zero's relevance zero: the coverage check's relevance-neutral operations, which move
values without mixing them (max pooling, flatten, reshape, concatenation, indexing, dropout,
identity), or another ReLU bound to ``pass``. A ReLU whose output reaches the model's output, or any
other operation, keeps its hook. A model without a graph (it could not be traced) elides nothing.
"""
from __future__ import annotations

from typing import Dict, List, Set, Tuple

import torch
import torch.fx as fx

from .graph.canonical import graph_info
from .graph.coverage import NEUTRAL_FUNCTIONS, NEUTRAL_METHODS, NEUTRAL_MODULES

def redundant_relu_passes(model: torch.nn.Module, assigned: List[Tuple[str, torch.nn.Module, object]]) -> Set[int]:
    """``id``s of the ReLU modules of a canonical twin whose ``pass`` hook gives exactly the plain gradient."""
    info = graph_info(model)
    if info is None or not info.traced:
        return set()
    rule_of = {id(m): b.rule.spec for _, m, b in assigned}
    relus = {id(m): m for _, m, _ in assigned if isinstance(m, torch.nn.ReLU)}
    if any(not rule_of[i].identity for i in relus):
        return set()  # guided backprop and friends: not an LRP composite
    memo: Dict[fx.Node, bool] = {}

    def zero_kept(node: fx.Node) -> bool:
        """Whether relevance arriving at a zero of ``node``'s output is zero, on every path."""
        if node not in memo:
            memo[node] = False  # a cycle cannot happen in a graph; this guards recursion anyway
            memo[node] = all(reader_keeps_zero(user) for user in node.users)
        return memo[node]

    def reader_keeps_zero(user: fx.Node) -> bool:
        if user.op == "call_module":
            module = model.get_submodule(user.target)
            spec = rule_of.get(id(module))
            if spec is not None and not spec.identity:
                return bool(spec.zero_at_zero_input)
            if spec is not None and not isinstance(module, torch.nn.ReLU):
                return False  # a pass over anything but a ReLU may move relevance onto a zero
            if spec is None and not isinstance(module, NEUTRAL_MODULES):
                return False
            return zero_kept(user)
        if user.op == "call_function" and user.target in NEUTRAL_FUNCTIONS:
            return zero_kept(user)
        if user.op == "call_method" and user.target in NEUTRAL_METHODS:
            return zero_kept(user)
        return False

    skip = set()
    for node in model.graph.nodes:
        if node.op == "call_module":
            module = model.get_submodule(node.target)
            if id(module) in relus and zero_kept(node):
                skip.add(id(module))
    return skip


def inplace_followers(model: torch.nn.Module) -> dict:
    """For each leaf module, the leaf right after it in definition order, if that one works in place.

    Only used on models that could not be traced (a canonical twin works out of place).
    """
    leaves = [m for _, m in model.named_modules() if not list(m.children())]
    return {id(a): b for a, b in zip(leaves, leaves[1:]) if getattr(b, "inplace", False)}
