"""The rewrites of graph canonization, each a function of a traced ``GraphModule``.

Run in this order by :func:`composer.graph.canonical.canonize`:

1. :func:`redirect_inplace` — later readers of a tensor changed in place read the operation's
   result instead, so the operation can be made out-of-place without changing the numbers;
2. :func:`functions_to_modules` — functional activations, pooling, flatten and means, residual
   sums (:class:`~composer.graph.modules.Add`) and elementwise operations with a constant become
   modules (:mod:`composer.graph.modules`);
3. :func:`one_module_per_site` — a module called at several places becomes one copy per call
   (sharing its parameters), so each call gets its own rule and hook;
4. :func:`out_of_place` — every in-place module and method works out of place.

Batch-norm merging lives in :mod:`composer.graph.batchnorm`.
"""
from __future__ import annotations

import operator
from typing import Callable, Dict, List, Optional, Set, Tuple

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from .modules import Add, ElementwiseConstant, Mean
from .attention import Attention, MatMul
from .twin import share_module

Args = Tuple[str, ...]


def scope_of(node: fx.Node) -> str:
    """The qualified name of the innermost module whose ``forward`` made ``node`` ('' for the root)."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    qualname = list(stack.values())[-1]
    return qualname[0] if isinstance(qualname, tuple) else str(qualname)


def input_dependent(graph: fx.Graph) -> Set[fx.Node]:
    """Nodes whose value depends on the model's inputs."""
    dependent: Set[fx.Node] = set()
    for node in graph.nodes:
        if node.op == "placeholder" or any(n in dependent for n in node.all_input_nodes):
            dependent.add(node)
    return dependent


#: functions of sizes (``x.size(0) // 2``), not of values
SIZE_FUNCTIONS = {operator.add, operator.sub, operator.mul, operator.floordiv, operator.truediv, operator.mod,
                  operator.getitem, operator.eq, operator.ne, operator.lt, operator.le, operator.gt, operator.ge,
                  getattr, torch._assert}


def size_nodes(graph: fx.Graph) -> Set[fx.Node]:
    """Nodes that hold sizes or shapes (``x.shape``, ``x.size(0) * 2``), which carry no relevance."""
    sizes: Set[fx.Node] = set()
    for node in graph.nodes:
        if node.op == "call_method" and node.target in ("size", "dim", "numel"):
            sizes.add(node)
        elif node.op == "call_function" and node.target is getattr and len(node.args) > 1 \
                and node.args[1] in ("shape", "ndim", "dtype", "device"):
            sizes.add(node)
        elif node.op == "call_function" and node.target in SIZE_FUNCTIONS and node.all_input_nodes \
                and all(n in sizes for n in node.all_input_nodes):
            sizes.add(node)
    return sizes


def add_module(gm: fx.GraphModule, scope: str, stem: str, module: nn.Module) -> str:
    """Add ``module`` under ``scope`` with a fresh name ``stem``, ``stem_1``...; returns its path."""
    parent = gm.get_submodule(scope) if scope else gm
    name, k = stem, 0
    while hasattr(parent, name):
        k += 1
        name = f"{stem}_{k}"
    path = f"{scope}.{name}" if scope else name
    gm.add_submodule(path, module)
    return path


# --------------------------------------------------------------------------- 1. in-place
INPLACE_FUNCTIONS = {operator.iadd: operator.add, operator.isub: operator.sub, operator.imul: operator.mul,
                     operator.itruediv: operator.truediv, torch.relu_: torch.relu, F.relu_: F.relu}


def _is_inplace(gm: fx.GraphModule, node: fx.Node) -> bool:
    if node.op == "call_module":
        return bool(getattr(gm.get_submodule(node.target), "inplace", False))
    if node.op == "call_function":
        return node.target in INPLACE_FUNCTIONS or node.kwargs.get("inplace") is True
    if node.op == "call_method":
        return node.target.endswith("_") and not node.target.endswith("__")
    return False


def redirect_inplace(gm: fx.GraphModule) -> int:
    """Readers of a tensor after an in-place operation on it read the operation's result instead."""
    order = {node: i for i, node in enumerate(gm.graph.nodes)}
    count = 0
    for node in list(gm.graph.nodes):
        if not _is_inplace(gm, node) or not node.args or not isinstance(node.args[0], fx.Node):
            continue
        changed = node.args[0]
        for user in list(changed.users):
            if user is not node and order[user] > order[node]:
                user.replace_input_with(changed, node)
        count += 1
    return count


# --------------------------------------------------------------------------- 2. functions to modules
#: functional activations and pooling: the module class and the names of the positional arguments after the input
FUNCTION_MODULES: Dict[object, Tuple[Callable[..., nn.Module], Args]] = {
    F.relu: (nn.ReLU, ()), torch.relu: (nn.ReLU, ()), F.relu_: (nn.ReLU, ()), torch.relu_: (nn.ReLU, ()),
    F.relu6: (nn.ReLU6, ()), F.gelu: (nn.GELU, ()), F.silu: (nn.SiLU, ()), F.mish: (nn.Mish, ()),
    F.sigmoid: (nn.Sigmoid, ()), torch.sigmoid: (nn.Sigmoid, ()), F.tanh: (nn.Tanh, ()), torch.tanh: (nn.Tanh, ()),
    F.leaky_relu: (nn.LeakyReLU, ("negative_slope",)), F.elu: (nn.ELU, ("alpha",)), F.selu: (nn.SELU, ()),
    F.celu: (nn.CELU, ("alpha",)), F.hardswish: (nn.Hardswish, ()), F.hardsigmoid: (nn.Hardsigmoid, ()),
    F.hardtanh: (nn.Hardtanh, ("min_val", "max_val")), F.softplus: (nn.Softplus, ("beta", "threshold")),
    F.max_pool1d: (nn.MaxPool1d, ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")),
    F.max_pool2d: (nn.MaxPool2d, ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")),
    F.max_pool3d: (nn.MaxPool3d, ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")),
    F.avg_pool1d: (nn.AvgPool1d, ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad")),
    F.avg_pool2d: (nn.AvgPool2d, ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                                  "divisor_override")),
    F.avg_pool3d: (nn.AvgPool3d, ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                                  "divisor_override")),
    F.adaptive_avg_pool1d: (nn.AdaptiveAvgPool1d, ("output_size",)),
    F.adaptive_avg_pool2d: (nn.AdaptiveAvgPool2d, ("output_size",)),
    F.adaptive_avg_pool3d: (nn.AdaptiveAvgPool3d, ("output_size",)),
    F.adaptive_max_pool1d: (nn.AdaptiveMaxPool1d, ("output_size", "return_indices")),
    F.adaptive_max_pool2d: (nn.AdaptiveMaxPool2d, ("output_size", "return_indices")),
    F.adaptive_max_pool3d: (nn.AdaptiveMaxPool3d, ("output_size", "return_indices")),
    torch.flatten: (nn.Flatten, ("start_dim", "end_dim")),
    torch.mean: (Mean, ("dim", "keepdim")),
    F.softmax: (nn.Softmax, ("dim",)), torch.softmax: (nn.Softmax, ("dim",)),
}
#: the same for tensor methods (``x.relu()``, ``x.flatten(1)``, ``x.mean((2, 3))``)
METHOD_MODULES: Dict[str, Tuple[Callable[..., nn.Module], Args]] = {
    "relu": (nn.ReLU, ()), "relu_": (nn.ReLU, ()), "sigmoid": (nn.Sigmoid, ()), "sigmoid_": (nn.Sigmoid, ()),
    "tanh": (nn.Tanh, ()), "tanh_": (nn.Tanh, ()), "flatten": (nn.Flatten, ("start_dim", "end_dim")),
    "mean": (Mean, ("dim", "keepdim")), "softmax": (nn.Softmax, ("dim",)),
}
#: torch.flatten / Tensor.flatten default to start_dim=0, nn.Flatten to 1
_DEFAULTS = {nn.Flatten: {"start_dim": 0, "end_dim": -1}}

ADDS = {operator.add, operator.iadd, torch.add}
CONSTANT_OPS = {operator.add: "add", operator.iadd: "add", torch.add: "add", operator.sub: "sub",
                operator.isub: "sub", torch.sub: "sub", operator.mul: "mul", operator.imul: "mul",
                torch.mul: "mul", operator.truediv: "truediv", operator.itruediv: "truediv", torch.div: "truediv"}
METHOD_OPS = {"add": "add", "add_": "add", "sub": "sub", "sub_": "sub", "mul": "mul", "mul_": "mul",
              "div": "truediv", "div_": "truediv"}
COMMUTATIVE = {"add", "mul"}


def _module_for(cls, names: Args, node: fx.Node) -> Optional[nn.Module]:
    """The module for a functional call, or None when an argument is computed in the graph."""
    args, kwargs = node.args[1:], dict(node.kwargs)
    kwargs.pop("inplace", None)
    kwargs.pop("input", None)
    kwargs.pop("_stacklevel", None)          # F.softmax's
    if cls is nn.Softmax and kwargs.get("dtype", 0) is None:
        kwargs.pop("dtype")
    if len(args) > len(names) or any(isinstance(v, fx.Node) for v in list(args) + list(kwargs.values())):
        return None
    values = {**_DEFAULTS.get(cls, {}), **dict(zip(names, args)), **kwargs}
    if cls is Mean and "dtype" in values:
        return None
    try:
        return cls(**values)
    except TypeError:
        return None


def _constant_value(gm: fx.GraphModule, value, dependent: Set[fx.Node]):
    """A constant operand's value (number or fixed tensor), or None when it is computed from inputs."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, fx.Node) and value.op == "get_attr" and value not in dependent:
        attr = gm
        for part in value.target.split("."):
            attr = getattr(attr, part)
        return attr if isinstance(attr, torch.Tensor) else None
    return None


def _operands(node: fx.Node) -> Optional[Tuple[str, object, object]]:
    """``(op, left, right)`` of an elementwise add/sub/mul/div node, or None."""
    if node.op == "call_function" and node.target in CONSTANT_OPS:
        if node.target in (torch.add, torch.sub) and node.kwargs.get("alpha", 1) != 1:
            return None
        if node.target is torch.div and node.kwargs.get("rounding_mode") is not None:
            return None
        if len(node.args) != 2:
            return None
        return CONSTANT_OPS[node.target], node.args[0], node.args[1]
    if node.op == "call_method" and node.target in METHOD_OPS and len(node.args) == 2 and not node.kwargs:
        return METHOD_OPS[node.target], node.args[0], node.args[1]
    return None


def functions_to_modules(gm: fx.GraphModule, origin: Dict[str, str]) -> List[str]:
    """Replace functional calls by modules; records each new module's origin; returns what it did."""
    graph, done = gm.graph, []
    dependent, sizes = input_dependent(graph), size_nodes(graph)
    for node in list(graph.nodes):
        if node not in dependent or node in sizes:
            continue
        scope = scope_of(node)
        table = FUNCTION_MODULES if node.op == "call_function" else METHOD_MODULES if node.op == "call_method" else {}
        spec = table.get(node.target) if node.op in ("call_function", "call_method") else None
        if spec is not None and node.args and isinstance(node.args[0], fx.Node):
            module = _module_for(*spec, node)
            if module is not None:
                stem = type(module).__name__.lower()
                path = add_module(gm, scope, stem, module)
                with graph.inserting_before(node):
                    new = graph.call_module(path, (node.args[0],))
                _replace(node, new, dependent)
                origin[path] = f"{function_name(node)} in {scope or 'forward'}"
                done.append(path)
            continue
        attention = _attention_module(node, dependent)
        if attention is not None:
            module, args = attention
            path = add_module(gm, scope, type(module).__name__.lower(), module)
            with graph.inserting_before(node):
                new = graph.call_module(path, args)
            _replace(node, new, dependent)
            origin[path] = f"{function_name(node)} in {scope or 'forward'}"
            done.append(path)
            continue
        parts = _operands(node)
        if parts is None:
            continue
        op, left, right = parts
        left_dep = isinstance(left, fx.Node) and left in dependent
        right_dep = isinstance(right, fx.Node) and right in dependent
        if left_dep and right_dep and op == "add":
            path = add_module(gm, scope, "add", Add())
            with graph.inserting_before(node):
                new = graph.call_module(path, (left, right))
            _replace(node, new, dependent)
            origin[path] = f"{function_name(node)} (a sum of two branches) in {scope or 'forward'}"
            done.append(path)
            continue
        if left_dep == right_dep:
            continue
        if right_dep and op not in COMMUTATIVE:
            continue
        tensor, other = (left, right) if left_dep else (right, left)
        constant = _constant_value(gm, other, dependent)
        if constant is None:
            continue
        path = add_module(gm, scope, op, ElementwiseConstant(op, constant))
        with graph.inserting_before(node):
            new = graph.call_module(path, (tensor,))
        _replace(node, new, dependent)
        origin[path] = f"{function_name(node)} with a constant in {scope or 'forward'}"
        done.append(path)
    return done


MATMULS = {operator.matmul, torch.matmul, torch.bmm}


def _attention_module(node: fx.Node, dependent: Set[fx.Node]):
    """``(module, args)`` for a product of two computed tensors (``a @ b``, ``torch.matmul``, ``bmm``) or a
    ``scaled_dot_product_attention`` call (without dropout or grouped heads), else None."""
    is_call = node.op == "call_function"
    if ((is_call and node.target in MATMULS) or (node.op == "call_method" and node.target in ("matmul", "bmm"))) \
            and len(node.args) == 2 and not node.kwargs and all(a in dependent for a in node.args
                                                                 if isinstance(a, fx.Node)) \
            and all(isinstance(a, fx.Node) for a in node.args):
        return MatMul(), tuple(node.args)
    if not (is_call and node.target is F.scaled_dot_product_attention):
        return None
    names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
    values = {"attn_mask": None, "dropout_p": 0.0, "is_causal": False, "scale": None, "enable_gqa": False,
              **dict(zip(names, node.args)), **node.kwargs}
    if values["dropout_p"] != 0.0 or values["enable_gqa"] or not isinstance(values["is_causal"], bool) \
            or isinstance(values["scale"], fx.Node) or any(not isinstance(values.get(n), fx.Node) for n in names[:3]):
        return None
    return Attention(causal=values["is_causal"]), (values["query"], values["key"], values["value"],
                                                   values["attn_mask"], values["scale"])


def function_name(node: fx.Node) -> str:
    """``operator.add``, ``torch.nn.functional.relu``, ``Tensor.view``: what a call node calls, in user terms."""
    target = node.target
    if node.op == "call_method":
        return f"Tensor.{target}"
    module = getattr(target, "__module__", "") or ""
    short = {"_operator": "operator", "torch._C._nn": "torch.nn.functional", "torch._C._VariableFunctions": "torch"}
    return f"{short.get(module, module)}.{getattr(target, '__name__', str(target))}".lstrip(".")


def _replace(node: fx.Node, new: fx.Node, dependent: Set[fx.Node]):
    new.meta = dict(node.meta)
    node.replace_all_uses_with(new)
    node.graph.erase_node(node)
    dependent.discard(node)
    dependent.add(new)


# --------------------------------------------------------------------------- 3. one module per call site
def one_module_per_site(gm: fx.GraphModule, origin: Dict[str, str]) -> Dict[str, List[str]]:
    """Give each call of a module called more than once its own copy; returns ``{target: [sites]}``."""
    calls: Dict[str, List[fx.Node]] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            calls.setdefault(node.target, []).append(node)
    sites = {}
    for target, nodes in calls.items():
        if len(nodes) < 2:
            continue
        module = gm.get_submodule(target)
        scope, _, stem = target.rpartition(".")
        names = [target]
        for i, node in enumerate(nodes[1:], start=2):
            path = add_module(gm, scope, f"{stem}_call{i}", share_module(module))
            node.target = path
            origin[path] = f"call {i} of {origin.get(target, target)}"
            names.append(path)
        sites[target] = names
    return sites


# --------------------------------------------------------------------------- 4. out of place
def out_of_place(gm: fx.GraphModule) -> int:
    """Make every in-place module and operation work out of place (after :func:`redirect_inplace`)."""
    count = 0
    for node in gm.graph.nodes:
        if not _is_inplace(gm, node):
            continue
        if node.op == "call_module":
            gm.get_submodule(node.target).inplace = False
        elif node.op == "call_function":
            if node.target in INPLACE_FUNCTIONS:
                node.target = INPLACE_FUNCTIONS[node.target]
            if "inplace" in node.kwargs:
                node.kwargs = {**node.kwargs, "inplace": False}
        elif hasattr(torch.Tensor, node.target[:-1]):
            node.target = node.target[:-1]
        else:
            continue
        count += 1
    return count
