"""A model's canonical twin: what every preset sees instead of the user's model.

:func:`canonize` makes a structural copy of the model (:mod:`composer.graph.twin`), applies the
named zennit canonizers to the copy, traces it with ``torch.fx`` and rewrites the graph
(:mod:`composer.graph.rewrite`, :mod:`composer.graph.batchnorm`) so that it looks like its
hand-written module twin: every operation a rule may bind to is a module, called once, out of place,
with batch norms merged into the layers that feed them. The user's model is never changed.

Tracing is done once per model and kept (keyed by the model object and a fingerprint of its modules,
tensors and their versions, so editing or training the model retraces). Each call borrows its own
structural copy of the kept twin (:func:`borrow`), so concurrent calls never share a module, and
gives it back for the next call.
"""
from __future__ import annotations

import contextlib
import threading
import weakref
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Type

import torch
import torch.fx as fx
import zennit.layer
import zennit.types

from ..errors import ComposerError
from .batchnorm import merge_batchnorms, merge_biases
from .attention import ATTENTION_MODULES, expose_attention
from .huggingface import adapt_huggingface
from .modules import CANONICAL_MODULES
from .rewrite import functions_to_modules, one_module_per_site, out_of_place, redirect_inplace
from .twin import structural_copy

#: module classes that tracing keeps whole (a rule binds to them), besides torch.nn's own
LEAF_MODULES: List[Type[torch.nn.Module]] = [zennit.layer.Sum, *CANONICAL_MODULES, *ATTENTION_MODULES]


def register_leaf(cls: Type[torch.nn.Module]) -> Type[torch.nn.Module]:
    """Keep instances of ``cls`` whole when tracing, so a preset can bind a rule to them by type.

    Use it (as a decorator or a call) for a custom module that has a rule of its own; without it,
    tracing looks through the module's ``forward`` and rules bind to what it calls.

    Example
    -------
    >>> @register_leaf
    ... class Gate(torch.nn.Module):
    ...     def forward(self, x):
    ...         return x * torch.sigmoid(x)
    >>> Gate in LEAF_MODULES
    True
    """
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise TypeError(f"{cls!r} is not a torch.nn.Module subclass")
    if cls not in LEAF_MODULES:
        LEAF_MODULES.append(cls)
    return cls


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: torch.nn.Module, qualname: str) -> bool:
        return isinstance(m, tuple(LEAF_MODULES)) or super().is_leaf_module(m, qualname)


_trace_lock = threading.Lock()
_FUNCTION_APPLY = torch.autograd.Function.__dict__["apply"]


def _apply_as_one_node(cls, *args, **kwargs):
    """``Function.apply`` while tracing: a custom autograd Function stays one node, so its own backward
    is kept (fx would otherwise trace its ``forward`` and silently drop the custom gradient)."""
    proxies = [a for a in list(args) + list(kwargs.values()) if isinstance(a, fx.Proxy)]
    if not proxies:
        return _FUNCTION_APPLY.__get__(None, cls)(*args, **kwargs)
    return proxies[0].tracer.create_proxy("call_function", _applier(cls), args, kwargs)


_appliers: Dict[type, object] = {}


def _applier(cls):
    """A named function that calls ``cls.apply`` (a graph node's target needs a name)."""
    if cls not in _appliers:
        def apply(*args, **kwargs):
            return _FUNCTION_APPLY.__get__(None, cls)(*args, **kwargs)

        apply.__name__ = apply.__qualname__ = f"{cls.__name__}_apply"
        apply.__module__ = cls.__module__
        _appliers[cls] = apply
    return _appliers[cls]


@dataclass
class GraphInfo:
    """What canonization did to a model, kept on its twin as ``twin.composer_graph``.

    ``origin`` maps modules that canonization made (or changed) to what they stand for in the user's
    model; ``aliases`` maps a user's module path that no longer exists (a merged batch norm) to the
    twin module whose output stands for it; ``sites`` maps a module called several times to its
    per-call copies; ``kept_batchnorms`` are batch norms that could not be merged.
    """

    traced: bool
    model_type: str
    trace_error: Optional[str] = None
    origin: Dict[str, str] = field(default_factory=dict)
    aliases: Dict[str, str] = field(default_factory=dict)
    sites: Dict[str, List[str]] = field(default_factory=dict)
    kept_batchnorms: List[str] = field(default_factory=list)
    #: paths of the modules made from functional calls of forward() (residual sums, F.relu, ...)
    functional: List[str] = field(default_factory=list)
    #: input signatures (shape without batch, dtype, device) on which the twin was checked to compute the
    #: model's output (:func:`composer.explain` checks each new one once)
    checked: set = field(default_factory=set)

    def describe(self, path: str) -> str:
        """A twin module path in the user's words."""
        where = self.origin.get(path)
        return f"{path} ({where})" if where else path


def _apply_canonizers(twin: torch.nn.Module, canonizers: Sequence) -> None:
    for canonizer in canonizers:
        try:
            canonizer.apply(twin)
        except Exception as err:  # zennit's canonizers raise raw errors on models they do not fit
            raise ComposerError(
                f"canonizer {type(canonizer).__name__} does not fit {type(twin).__name__}: "
                f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''} — composer's graph canonization "
                "already merges batch norms by the graph's edges and exposes residual sums; drop the canonizer"
            ) from err


def _trace(twin: torch.nn.Module, info: GraphInfo) -> Optional[fx.GraphModule]:
    if _Tracer().is_leaf_module(twin, ""):
        return None   # a model that is one layer: tracing would inline its forward (F.linear); it is its own module
    try:
        with _trace_lock:
            torch.autograd.Function.apply = classmethod(_apply_as_one_node)
            try:
                graph = _Tracer().trace(twin)
            finally:
                torch.autograd.Function.apply = _FUNCTION_APPLY
    except Exception as err:  # noqa: BLE001 - any tracing failure means: fall back to module hooks
        info.trace_error = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        return None
    return fx.GraphModule(twin, graph, class_name=f"Canonical{type(twin).__name__}")


def build(model: torch.nn.Module, canonizers: Sequence = ()) -> torch.nn.Module:
    """The canonical twin of ``model`` (uncached; :func:`canonize` keeps it per model).

    Returns a ``torch.fx.GraphModule`` when the model traces, else a structural copy; either way
    ``twin.composer_graph`` is its :class:`GraphInfo`.
    """
    twin = structural_copy(model)
    _apply_canonizers(twin, canonizers)
    expose_attention(twin)     # attention and encoder layers as modules
    adapt_huggingface(twin)    # transformers' functional parts as modules
    info = GraphInfo(traced=False, model_type=type(model).__name__)
    gm = _trace(twin, info)
    if gm is None:
        twin.composer_graph = info
        return twin
    info.traced = True
    redirect_inplace(gm)
    info.functional = functions_to_modules(gm, info.origin)
    info.sites = one_module_per_site(gm, info.origin)
    out_of_place(gm)
    if canonizers:  # zennit's canonizers merged (or chose not to merge) the batch norms; composer does not redo it
        info.kept_batchnorms = [n.target for n in gm.graph.nodes if n.op == "call_module"
                                and isinstance(gm.get_submodule(n.target), zennit.types.BatchNorm)]
    else:
        merge_biases(gm, info.origin, info.aliases)
        info.kept_batchnorms = merge_batchnorms(gm, info.origin, info.aliases)
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    gm.composer_graph = info
    return gm.eval()


# --------------------------------------------------------------------------- the cache
def fingerprint(model: torch.nn.Module) -> Tuple:
    """What a kept twin depends on: module objects, settings and hooks, tensors, their storage and versions.

    Example
    -------
    >>> net = torch.nn.Linear(2, 2)
    >>> before = fingerprint(net)
    >>> with torch.no_grad():
    ...     _ = net.weight.add_(1)
    >>> fingerprint(net) == before
    False
    """
    simple = (bool, int, float, str, tuple, type(None))
    hooks = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    modules = tuple((name, id(m), tuple((k, v) for k, v in vars(m).items() if not k.startswith("_")
                                        and isinstance(v, simple)), id(vars(m).get("forward")),
                     tuple(tuple(getattr(m, h, ())) for h in hooks))   # a hook the user adds changes the function
                    for name, m in model.named_modules())
    tensors = tuple((id(t), t.data_ptr(), t._version, tuple(t.shape), t.dtype, t.device)
                    for t in list(model.parameters()) + list(model.buffers()))
    return modules, tensors


class _Kept:
    """A model's kept twin (the template) and idle copies of it, ready for the next call."""

    def __init__(self, key: Tuple, template: torch.nn.Module):
        self.key, self.template, self.idle = key, template, []

    def fresh(self) -> torch.nn.Module:
        twin = structural_copy(self.template)
        twin.composer_graph = self.template.composer_graph
        return twin


#: idle twins kept per model and kind: enough for a few threads, bounded memory (they share the weights)
MAX_IDLE = 4
_cache: "weakref.WeakKeyDictionary[torch.nn.Module, Dict[Tuple, _Kept]]" = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def clear_cache() -> None:
    """Forget every kept twin (they are also dropped with their models and retraced when a model changes).

    Example
    -------
    >>> clear_cache()
    """
    with _lock:
        _cache.clear()


def _kept(model: torch.nn.Module, canonizers: Sequence, traced: bool, objects: Sequence = ()) -> _Kept:
    from ..canonizers import make_canonizer

    kind = (traced, tuple(canonizers))
    key = (fingerprint(model), tuple(LEAF_MODULES))
    with _lock:
        kept = _cache.get(model, {}).get(kind) if not objects else None
    if kept is not None and kept.key == key:
        return kept
    if traced:
        template = build(model, [make_canonizer(n) for n in canonizers] + list(objects))
        if objects:  # canonizer instances may carry any state: their twin is not kept
            return _Kept(key, template)
    else:
        template = structural_copy(model)
        template.composer_graph = None
    kept = _Kept(key, template)
    try:
        with _lock:
            _cache.setdefault(model, {})[kind] = kept
    except TypeError:  # a model that cannot be weakly referenced is not kept
        pass
    return kept


def canonize(model: torch.nn.Module, canonizers: Sequence = (), objects: Sequence = ()) -> torch.nn.Module:
    """A fresh canonical twin of ``model``: its own modules over the model's weights, in eval mode.

    ``canonizers`` names zennit canonizers (``merge_batchnorm``, ``vgg``, ``resnet``; see
    :mod:`composer.canonizers`) and ``objects`` are zennit canonizer instances, applied to the copy
    before tracing. Graph canonization makes them unnecessary for torchvision models; when given,
    they take over batch-norm merging (zennit leaves a merged batch norm computing ``x / sqrt(1 + eps)``,
    and so does the twin), so zennit's composites are reproduced bit for bit.

    Example
    -------
    >>> import torch.nn.functional as F
    >>> class Net(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc = torch.nn.Linear(4, 4)
    ...     def forward(self, x):
    ...         return F.relu(self.fc(x)) + x
    >>> twin = canonize(Net())
    >>> [type(m).__name__ for _, m in twin.named_children()]
    ['Linear', 'ReLU', 'Add']
    """
    return _kept(model, canonizers, True, objects).fresh()


@contextlib.contextmanager
def borrow(model: torch.nn.Module, canonizers: Sequence = (), traced: bool = True, reuse: bool = True,
           objects: Sequence = ()):
    """A twin of ``model`` for one call (canonical if ``traced``, else a plain structural copy).

    Twins are reused: a call takes an idle one (or makes one) and gives it back when it ends without
    an error, so sequential calls pay no copy and concurrent calls never share one. ``reuse=False``
    never gives it back (for a call that changes the twin, such as zennit canonizers applied to it).

    Example
    -------
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
    >>> with borrow(net) as twin:
    ...     graph_info(twin).traced, twin is net
    (True, False)
    """
    kept = _kept(model, canonizers, traced, objects)
    with _lock:
        twin = kept.idle.pop() if kept.idle else None
    if twin is None:
        twin = kept.fresh()
    yield twin
    with _lock:
        if reuse and len(kept.idle) < MAX_IDLE:
            kept.idle.append(twin)


def graph_info(module: torch.nn.Module) -> Optional[GraphInfo]:
    """The :class:`GraphInfo` of a canonical twin, None for any other module."""
    info = getattr(module, "composer_graph", None)
    return info if isinstance(info, GraphInfo) else None
