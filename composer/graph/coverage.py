"""The coverage check: every operation between input and output has a rule or is known neutral.

An LRP map is only as right as its least-covered operation. The gradient is the right answer at
operations that move values without mixing them (reshape, concatenation, indexing, max-pooling's
selection, dropout in eval mode, ReLU's mask), so those are *neutral*. Everything else between the
input and the output — every linear layer, pooling average, residual sum, normalisation,
elementwise product, attention, an unknown module — needs a rule from the preset. What has none is
reported by :func:`uncovered`; the preset's ``on_uncovered`` decides whether that is an error
(the default), a warning or ignored.

On a model that could not be traced, only its leaf modules are checked, and the functional
operations of its ``forward`` cannot be seen: the caller says so.
"""
from __future__ import annotations

import operator
from typing import Iterable, List, NamedTuple, Set

import torch
import torch.fx as fx
import torch.nn.functional as F
import zennit.layer
import zennit.types
from torch import nn

from .attention import ATTENTION_MODULES, Attention
from .canonical import GraphInfo
from .rewrite import function_name, input_dependent, scope_of, size_nodes

#: modules through which the gradient is the relevance
NEUTRAL_MODULES = (nn.Identity, nn.Flatten, nn.Unflatten, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
                   nn.AlphaDropout, nn.FeatureAlphaDropout, nn.ReLU, zennit.types.MaxPool, nn.ZeroPad1d,
                   nn.ZeroPad2d, nn.ZeroPad3d)
#: functions that move values without mixing them
NEUTRAL_FUNCTIONS = {torch.cat, torch.concat, torch.stack, operator.getitem, torch.reshape, torch.squeeze,
                     torch.unsqueeze, torch.transpose, torch.permute, torch.chunk, torch.split, torch.flatten,
                     torch.narrow, torch.movedim, torch.t, F.dropout, F.dropout1d, F.dropout2d,
                     F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout, getattr, torch.clone}
NEUTRAL_METHODS = {"view", "reshape", "flatten", "permute", "transpose", "contiguous", "squeeze", "unsqueeze",
                   "expand", "expand_as", "view_as", "reshape_as", "chunk", "split", "clone", "narrow", "movedim",
                   "t", "to", "type_as", "float", "double", "size", "dim", "numel", "unflatten"}
class Uncovered(NamedTuple):
    """An operation between input and output that no rule covers."""

    where: str
    what: str

    def __str__(self):
        return f"{self.where}: {self.what}"


def _reaches_output(graph: fx.Graph) -> Set[fx.Node]:
    seen: Set[fx.Node] = set()
    stack = [n for n in graph.nodes if n.op == "output"]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        stack.extend(node.all_input_nodes)
    return seen


def _module_advice(module: nn.Module) -> str:
    kind = type(module).__name__
    if isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)):
        return f"{kind}: a normalisation divides by a statistic of its input; no rule of the preset covers it"
    if isinstance(module, nn.MultiheadAttention):
        return f"{kind}: attention multiplies inputs with each other; no rule of the preset covers it"
    if isinstance(module, ATTENTION_MODULES):
        return (f"{kind}: a product of two input-dependent tensors (attention of a MultiheadAttention or transformer "
                "layer, or a gate); no rule of the preset covers it (the attnlrp and cp_lrp presets do)")
    if isinstance(module, nn.Softmax):
        return (f"{kind}: normalises its inputs against each other; no rule of the preset covers it (attention "
                "weights: the attnlrp and cp_lrp presets do; a classifier's output softmax: explain its logits)")
    if isinstance(module, zennit.types.BatchNorm):
        return f"{kind} without running statistics normalises by the batch; no rule covers it"
    if isinstance(module, (nn.Linear, zennit.types.Convolution)):
        return f"{kind}: a relevance layer that the preset binds no rule to"
    return f"{kind}: no rule of the preset covers it"


def _function_advice(node: fx.Node, dependent: Set[fx.Node]) -> str:
    name = function_name(node)
    tensors = [n for n in node.all_input_nodes if n in dependent]
    if name.split(".")[-1] in ("mul", "imul", "matmul", "bmm", "einsum", "truediv", "div") and len(tensors) > 1:
        return f"{name}: a product of two input-dependent tensors (e.g. a gate or attention) has no LRP rule here"
    return f"{name}: no rule of the preset covers it and it is not known to be relevance-neutral"


def uncovered(twin: nn.Module, bound: Iterable[nn.Module]) -> List[Uncovered]:
    """Operations of a canonical twin between its input and output that neither a rule nor neutrality covers.

    ``bound`` are the twin's modules that carry a rule of the preset.

    Example
    -------
    >>> from composer.graph import canonize
    >>> class Gated(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc = torch.nn.Linear(3, 3)
    ...     def forward(self, x):
    ...         return self.fc(x) * torch.sigmoid(x)
    >>> twin = canonize(Gated())
    >>> [str(u) for u in uncovered(twin, [twin.fc, twin.sigmoid])]
    ['forward: operator.mul: a product of two input-dependent tensors (e.g. a gate or attention) has no LRP rule here']
    """
    info: GraphInfo = getattr(twin, "composer_graph", None)
    bound_ids = {id(m) for m in bound}
    if info is None or not info.traced:
        return [Uncovered(name, _module_advice(m)) for name, m in twin.named_modules()
                if not list(m.children()) and id(m) not in bound_ids and not isinstance(m, NEUTRAL_MODULES)]
    graph = twin.graph
    dependent, on_path, sizes = input_dependent(graph), _reaches_output(graph), size_nodes(graph)
    found: List[Uncovered] = []
    for node in graph.nodes:
        if node not in dependent or node not in on_path or node in sizes or node.op in ("placeholder", "output"):
            continue
        if node.op == "call_module":
            module = twin.get_submodule(node.target)
            if id(module) in bound_ids or isinstance(module, NEUTRAL_MODULES):
                continue
            if _stochastic_depth(module):
                continue
            if isinstance(module, Attention):   # a scaled_dot_product_attention call: its three modules
                found += [Uncovered(info.describe(f"{node.target}.{name}"), _module_advice(child))
                          for name, child in module.named_children() if id(child) not in bound_ids]
                continue
            found.append(Uncovered(info.describe(node.target), _module_advice(module)))
        elif node.op == "call_function":
            if node.target in NEUTRAL_FUNCTIONS or _stochastic_depth_call(node):
                continue
            found.append(Uncovered(_where(node), _function_advice(node, dependent)))
        elif node.op == "call_method":
            if node.target in NEUTRAL_METHODS:
                continue
            found.append(Uncovered(_where(node), _function_advice(node, dependent)))
    return found


def _where(node: fx.Node) -> str:
    return scope_of(node) or "forward"


def _stochastic_depth(module: nn.Module) -> bool:
    return type(module).__name__ == "StochasticDepth" and not module.training


def _stochastic_depth_call(node: fx.Node) -> bool:
    """torchvision's ``stochastic_depth(x, p, mode, training)`` outside training is the identity."""
    if getattr(node.target, "__name__", "") != "stochastic_depth":
        return False
    training = node.args[3] if len(node.args) > 3 else node.kwargs.get("training", True)
    return training is False


def functional_uncovered(model: nn.Module) -> List[Uncovered]:
    """Operations of ``model.forward()`` that need an LRP rule but are not modules (a functional residual
    ``+``, ``x.mean()``, ``x * w`` of two computed tensors): what module hooks alone cannot reach.

    Example
    -------
    >>> class Residual(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc = torch.nn.Linear(3, 3)
    ...     def forward(self, x):
    ...         return self.fc(x) + x
    >>> [u.what.split(":")[0] for u in functional_uncovered(Residual())]
    ['Add']
    """
    from .canonical import canonize

    try:
        twin = canonize(model)
    except Exception:  # noqa: BLE001 - a model that cannot even be copied: nothing more can be said
        return []
    info = twin.composer_graph
    if not info.traced:
        return []
    made = set(info.functional)
    return uncovered(twin, [m for path, m in twin.named_modules() if path not in made])
