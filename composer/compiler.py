"""Preset + parameters -> zennit Composite. The only code between a method's data and its hooks.

:func:`load_preset` resolves ``extends`` (cycles and depth bounded); :func:`compile_preset`
substitutes ``$param`` references, validates every rule and parameter and caches the result as a
:class:`Plan`; :func:`compose` returns a fresh :class:`PresetComposite` of that plan, a real
:class:`zennit.core.Composite` usable with zennit's attributors.
"""
from __future__ import annotations

import json
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch
from zennit.core import Composite, Hook

from . import registry
from .canonizers import CanonizerRef, CanonizerSpec, make_canonizer, split_canonizers
from .errors import ComposerError, closest
from .selectors import AFFINE_LAYERS, CompiledSelector, compile_selector, relevance_layers, type_matches
from .spec import Binding, NamedCall, Preset, validate_document
from .yamlio import read_yaml

#: longest chain of ``extends``
MAX_EXTENDS_DEPTH = 16

PresetRef = Union[str, Path, Mapping[str, Any], Preset]


class ComposerWarning(UserWarning):
    """A preset binding that matched no module of the model (``on_unmatched: warn``)."""


# --------------------------------------------------------------------------- loading
@dataclass(frozen=True)
class ResolvedPreset:
    """A preset with its ``extends`` chain folded in: own bindings first, then each parent's."""

    preset: Preset
    source: str
    sources: Tuple[str, ...]
    params: Dict[str, Any]
    layers: Tuple[Tuple[Binding, str, str], ...]  # (binding, source file, field path)
    canonizers: Tuple["CanonizerSpec", ...]
    attributor: Optional[Tuple[NamedCall, str]]
    modifiers: Tuple[Tuple[NamedCall, str, str], ...]
    canonize: bool = True
    on_uncovered: str = "error"
    #: where each parameter's value was set: (source file, field), the preset nearest the user winning
    param_sources: Dict[str, Tuple[str, str]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.preset.name

    @property
    def abstract(self) -> bool:
        return self.preset.abstract

    @property
    def on_unmatched(self) -> str:
        return self.preset.on_unmatched


_cache_lock = threading.RLock()
_load_cache: Dict[Any, ResolvedPreset] = {}
_documents: Dict[str, Any] = {}  # source file -> parsed document (for line numbers of later errors)


def _field_path(field: str) -> Tuple[Union[str, int], ...]:
    parts: List[Union[str, int]] = []
    for piece in field.replace("]", "").split("."):
        for j, sub in enumerate(piece.split("[")):
            if sub:
                parts.append(int(sub) if j and sub.lstrip("-").isdigit() else sub)
    return tuple(parts)


def _with_line(err: ComposerError) -> ComposerError:
    """``err`` with the line of its field, when its source file was read."""
    doc = _documents.get(err.source or "")
    if err.line is not None or doc is None:
        return err
    line = doc.line_of(_field_path(err.field or ""))
    return ComposerError(err.message, source=err.source, field=err.field, line=line,
                         suggestions=err.suggestions).with_also(err.also)


def _sibling(name: str, beside: Optional[str]) -> Optional[Path]:
    """``<name>.yaml`` next to the file that extends it, when that exists and no preset has the name."""
    if beside is None or beside.startswith("<") or registry.has_preset(name) or "/" in name:
        return None
    candidate = Path(beside).parent / f"{name}.yaml"
    return candidate if candidate.is_file() else None


def _read_ref(ref: PresetRef) -> Tuple[Preset, str, Any]:
    """(validated preset, source, cache key or None) for a name, path, mapping or Preset."""
    if isinstance(ref, Preset):
        return ref, f"<preset {ref.name}>", None
    if isinstance(ref, Mapping):
        return validate_document(Preset, dict(ref), source="<mapping>"), "<mapping>", None
    if isinstance(ref, Path) or (isinstance(ref, str) and (ref.endswith((".yaml", ".yml")) or "/" in ref)):
        path = Path(ref)
        if not path.is_file():
            raise ComposerError("no such preset file", source=str(path))
    elif isinstance(ref, str):
        path = registry.preset_path(ref)
    else:
        raise ComposerError(f"a preset is a name, a path or a mapping, not {type(ref).__name__}")
    try:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    except OSError:
        key = None
    doc = read_yaml(path)
    preset = validate_document(Preset, doc.data, source=str(path), doc=doc)
    with _cache_lock:
        if len(_documents) > 1024:
            _documents.clear()
        _documents[str(path)] = doc
    if isinstance(ref, str) and not ref.endswith((".yaml", ".yml")) and "/" not in ref and preset.name != ref:
        raise ComposerError(f"the file defines preset '{preset.name}', but its file name says '{ref}'",
                            source=str(path), field="name")
    return preset, str(path), key


def load_preset(ref: PresetRef, _chain: Tuple[str, ...] = ()) -> ResolvedPreset:
    """Read a preset (name, path, mapping) and fold in its ``extends`` chain.

    Example
    -------
    >>> p = load_preset("lrpz_sequential_composite_a")
    >>> [b.rule for b, _, _ in p.layers][:3]
    ['z', 'epsilon', 'alpha_beta']
    """
    preset, source, key = _read_ref(ref)
    if key is not None:
        with _cache_lock:
            if key in _load_cache:
                return _load_cache[key]
    if preset.name in _chain:
        raise ComposerError("cycle in 'extends': " + " -> ".join(_chain + (preset.name,)), source=source,
                            field="extends")
    if len(_chain) >= MAX_EXTENDS_DEPTH:
        raise ComposerError(f"'extends' chain deeper than {MAX_EXTENDS_DEPTH}", source=source, field="extends")
    parents = []
    for i, parent in enumerate(preset.parents):
        try:
            parents.append(load_preset(_sibling(parent, source) or parent, _chain + (preset.name,)))
        except ComposerError as err:
            if err.source is not None:
                raise
            raise ComposerError(err.message, source=source, field=f"extends[{i}]" if isinstance(
                preset.extends, list) else "extends", suggestions=err.suggestions) from None
    params: Dict[str, Any] = {}
    for parent in parents:
        params.update(parent.params)
    params.update(preset.params)
    param_sources: Dict[str, Tuple[str, str]] = {}
    for parent in parents:
        param_sources.update(parent.param_sources)
    param_sources.update({k: (source, f"params.{k}") for k in preset.params})
    layers = tuple((b, source, f"layers[{i}]") for i, b in enumerate(preset.layers))
    for parent in parents:
        layers += parent.layers
    canonizers: List[CanonizerSpec] = []
    own = [c if isinstance(c, str) else CanonizerRef(c.name, json.dumps(c.with_, sort_keys=True))
           for c in preset.canonizers]
    for ref in [c for p in parents for c in p.canonizers] + own:
        if ref not in canonizers:
            canonizers.append(ref)
    attributor = (preset.attributor, source) if preset.attributor else next(
        (p.attributor for p in parents if p.attributor), None)
    modifiers = tuple(m for p in parents for m in p.modifiers) + tuple(
        (m, source, f"modifiers[{i}]") for i, m in enumerate(preset.modifiers))
    sources = (source,) + tuple(s for p in parents for s in p.sources)
    canonize = next((v for v in [preset.canonize] + [p.canonize for p in parents] if v is not None), True)
    on_uncovered = preset.on_uncovered or next((p.on_uncovered for p in parents), "error")
    resolved = ResolvedPreset(preset, source, sources, params, layers, tuple(canonizers), attributor, modifiers,
                              canonize, on_uncovered, param_sources)
    if key is not None:
        with _cache_lock:
            _load_cache[key] = resolved
    return resolved


# --------------------------------------------------------------------------- parameters
def _substitute(value, params: Dict[str, Any], source: str, field: str):
    if isinstance(value, str) and value.startswith("$"):
        name = value[1:]
        if name not in params:
            raise ComposerError(f"'{value}' refers to no parameter of the preset; declare it under 'params'",
                                source=source, field=field, suggestions=["$" + s for s in closest(name, params)])
        return params[name]
    if isinstance(value, list):
        return [_substitute(v, params, source, f"{field}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _substitute(v, params, source, f"{field}.{k}") for k, v in value.items()}
    return value


def check_param(spec, value, source: str, field: str):
    """Validate one rule parameter against its :class:`~composer.spec.ParamSpec`; return the value."""
    kind = spec.type
    bad = None
    if kind == "bool":
        if not isinstance(value, bool):
            bad = "a boolean"
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            bad = "an integer"
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            bad = "a number"
        else:
            try:
                value = float(value)
            except OverflowError:
                raise ComposerError(f"a number of {len(str(value))} digits is out of range", source=source,
                                    field=field) from None
    elif kind == "str":
        if not isinstance(value, str):
            bad = "a string"
        elif spec.choices and value not in spec.choices:
            raise ComposerError(f"{value!r} is not one of {spec.choices}", source=source, field=field,
                                suggestions=closest(value, spec.choices))
    elif kind == "names":
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            bad = "a list of names"
        elif spec.choices:
            for i, v in enumerate(value):
                if v not in spec.choices:
                    raise ComposerError(f"{v!r} is not one of {spec.choices}", source=source, field=f"{field}[{i}]",
                                        suggestions=closest(v, spec.choices))
        if not bad:
            value = list(dict.fromkeys(value))
    elif kind == "tensor":
        if isinstance(value, bool) or not isinstance(value, (int, float, list, torch.Tensor)):
            bad = "a number or a tensor"
        elif isinstance(value, list):
            try:
                value = torch.tensor(value, dtype=torch.float32)
            except (TypeError, ValueError, RuntimeError, OverflowError):
                bad = "a number or a (nested) list of numbers"
        elif isinstance(value, int):
            try:
                value = float(value)
            except OverflowError:
                raise ComposerError(f"a number of {len(str(value))} digits is out of range", source=source,
                                    field=field) from None
        if isinstance(value, torch.Tensor) and not bad and not bool(torch.isfinite(value).all()):
            raise ComposerError("expected finite values, got a tensor with NaN or infinity", source=source, field=field)
    if bad:
        raise ComposerError(f"expected {bad}, got {value!r}", source=source, field=field)
    if kind in ("float", "int") or (kind == "tensor" and isinstance(value, (int, float))):
        if value != value or value in (float("inf"), float("-inf")):
            raise ComposerError(f"expected a finite number, got {value!r}", source=source, field=field)
        for bound, ok, text in (("ge", lambda v, b: v >= b, ">="), ("gt", lambda v, b: v > b, ">"),
                                ("le", lambda v, b: v <= b, "<="), ("lt", lambda v, b: v < b, "<")):
            limit = getattr(spec, bound)
            if limit is not None and not ok(value, limit):
                raise ComposerError(f"{value!r} is out of range: must be {text} {limit:g}", source=source, field=field)
    return value


def check_rule_params(rule: registry.RuleEntry, given: Dict[str, Any], source: str, field: str) -> Dict[str, Any]:
    """Defaults plus ``given``, each validated against the rule's spec."""
    specs = rule.spec.params
    out = {}
    for key in given:
        if key not in specs:
            allowed = ", ".join(specs) or "none"
            raise ComposerError(f"rule '{rule.spec.name}' has no parameter '{key}' (parameters: {allowed})",
                                source=source, field=f"{field}.{key}", suggestions=closest(key, specs))
    for key, spec in specs.items():
        if key in given:
            out[key] = check_param(spec, given[key], source, f"{field}.{key}")
        elif spec.required:
            raise ComposerError(f"rule '{rule.spec.name}' needs parameter '{key}'", source=source, field=field)
        elif spec.default is not None:
            out[key] = spec.default
    for low, high in rule.spec.ordered:
        if low in out and high in out and not bool(torch.all(torch.as_tensor(out[low]) <= torch.as_tensor(out[high]))):
            raise ComposerError(f"rule '{rule.spec.name}' needs {low} <= {high} (elementwise), got {low}="
                                f"{_short(out[low])}, {high}={_short(out[high])}", source=source, field=f"{field}.{low}")
    return out


def _short(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor of shape {tuple(value.shape)}" if value.numel() > 4 else str(value.tolist())
    return repr(value)


# --------------------------------------------------------------------------- compiling
@dataclass(frozen=True)
class CompiledBinding:
    """One validated binding: selector, rule, parameters and the hook template."""

    selector: CompiledSelector
    rule: registry.RuleEntry
    params: Dict[str, Any]
    template: Hook
    source: str
    field: str
    optional: bool

    @property
    def layers_only(self) -> bool:
        return self.rule.spec.applies_to == "layers"

    def describe(self) -> str:
        args = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.params.items())
        return f"{self.rule.spec.name}({args})"


@dataclass(frozen=True)
class Plan:
    """A compiled preset: what :func:`compose` caches. :meth:`composite` makes a fresh Composite."""

    preset: ResolvedPreset
    params: Dict[str, Any]
    bindings: Tuple[CompiledBinding, ...]
    canonizers: Tuple[CanonizerSpec, ...]
    attributor: Tuple[str, Dict[str, Any]]
    modifiers: Tuple[Tuple[str, Dict[str, Any]], ...]

    @property
    def name(self) -> str:
        return self.preset.name

    def assign(self, model: torch.nn.Module) -> List[Tuple[str, torch.nn.Module, CompiledBinding]]:
        """Which binding each module of ``model`` gets (first match wins); reports unmatched bindings."""
        layers = relevance_layers(model)
        index_of = {id(m): i for i, (_, m) in enumerate(layers)}
        count = len(layers)
        leaves = [(name, m) for name, m in model.named_modules() if not list(m.children())]
        of_type = {}  # binding -> {id(module): index among the modules of its type}, for 'nth'
        for i, binding in enumerate(self.bindings):
            if binding.selector.nth is not None:
                typed = [m for _, m in leaves if type_matches(binding.selector, m)]
                of_type[i] = ({id(m): k for k, m in enumerate(typed)}, len(typed))
        used = [False] * len(self.bindings)
        out = []
        for name, module in leaves:
            idx = index_of.get(id(module))
            for i, binding in enumerate(self.bindings):
                if binding.layers_only and idx is None and not isinstance(module, AFFINE_LAYERS):
                    continue
                typed, typed_count = of_type.get(i, ({}, 0))
                if binding.selector.matches(name, module, idx, count, typed.get(id(module)), typed_count):
                    used[i] = True
                    out.append((name, module, binding))
                    break
        mode = self.preset.on_unmatched
        for flag, binding in zip(used, self.bindings):
            if flag or binding.optional or mode == "ignore":
                continue
            text = (f"binding {binding.field} ({binding.describe()}) of preset '{self.name}' matches no "
                    f"module of {type(model).__name__}")
            if mode == "error":
                raise ComposerError(text, source=binding.source, field=binding.field)
            warnings.warn(f"{binding.source}: {text}", ComposerWarning, stacklevel=3)
        return out

    def composite(self, elide: bool = True, canonize: Optional[bool] = None, on_uncovered: Optional[str] = None,
                  canonizer_objects: Tuple[Any, ...] = ()) -> "PresetComposite":
        """A fresh zennit Composite for this plan (one per model at a time, as zennit requires).

        ``canonize`` and ``on_uncovered`` override the preset's fields (see :class:`PresetComposite`);
        ``canonizer_objects`` are zennit canonizer instances applied besides the plan's named ones.
        """
        return PresetComposite(self, elide, canonize, on_uncovered, canonizer_objects)

    @property
    def is_lrp(self) -> bool:
        """Whether the preset binds rules to relevance layers (then every operation needs a rule)."""
        return any(b.layers_only or b.selector.positional for b in self.bindings)

    def describe(self, model: torch.nn.Module) -> List[Tuple[str, str, str]]:
        """``(module name, module type, rule)`` for every module the preset hooks in ``model``.

        Example
        -------
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
        >>> compile_preset("lrpsign_epsilon_0_1").describe(net)[0]
        ('0', 'Linear', 'sign_mu(mu=0, bias=True)')
        """
        return [(n, type(m).__name__, b.describe()) for n, m, b in self.assign(model)]


class PresetComposite(Composite):
    """A :class:`zennit.core.Composite` that applies a compiled preset.

    With graph canonization (the default, ``canonize: false`` in a preset turns it off), registering
    on a model hooks its canonical twin (:mod:`composer.graph`): functional activations, residual
    sums, pooling and flatten calls as modules, batch norms merged by the graph's edges, one module
    per call. The model itself is only redirected to run the twin until :meth:`remove` (its modules,
    parameters and state dict are untouched); :func:`composer.explain` hooks a private twin and never
    touches the model at all.

    Positions (first, last, index) need the whole model, so registering first collects the
    relevance layers once, then hooks each module with a fresh copy of its binding's hook. For an LRP
    preset every operation between input and output must carry a rule or be relevance-neutral: what
    has none raises :class:`ComposerError` (``on_uncovered: error``), warns or is ignored.
    ReLU ``pass`` hooks that provably equal the plain gradient are left out (see
    :mod:`composer.elision`; ``elide=False`` keeps them); ``elided`` lists them.

    Example
    -------
    >>> import torch, zennit.attribution
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    >>> with zennit.attribution.Gradient(net, compose("lrp_epsilon_0_1")) as attributor:
    ...     out, relevance = attributor(torch.ones(1, 4), torch.eye(2)[[0]])
    >>> relevance.shape
    torch.Size([1, 4])
    """

    def __init__(self, plan: Plan, elide: bool = True, canonize: Optional[bool] = None,
                 on_uncovered: Optional[str] = None, canonizer_objects: Tuple[Any, ...] = ()):
        super().__init__(module_map=self._module_map,
                         canonizers=[make_canonizer(n) for n in plan.canonizers] + list(canonizer_objects))
        self.canonizer_objects = tuple(canonizer_objects)
        if on_uncovered not in (None, "error", "warn", "ignore"):
            raise ComposerError(f"on_uncovered must be 'error', 'warn' or 'ignore', got {on_uncovered!r}",
                                suggestions=closest(str(on_uncovered), ["error", "warn", "ignore"]))
        if canonize is not None and not isinstance(canonize, bool):
            raise ComposerError(f"canonize must be True or False, got {canonize!r}")
        self.plan = plan
        self.elide = elide
        self.canonize = plan.preset.canonize if canonize is None else canonize
        self.on_uncovered = on_uncovered or plan.preset.on_uncovered
        self.assignments: List[Tuple[str, str]] = []
        self.elided: List[str] = []
        self.uncovered: List[Any] = []
        self.twin: Optional[torch.nn.Module] = None

    def register(self, module: torch.nn.Module):
        from .elision import inplace_followers, redundant_relu_passes
        from .graph import canonize, graph_info
        from .rules.rescale import RescaleHook

        self.remove()
        try:
            target = module
            if graph_info(module) is None:
                if self.canonize:
                    target = canonize(module, self.plan.canonizers, self.canonizer_objects)
                    self.handles.append(_ForwardRedirect(module, target))
                else:
                    for canonizer in self.canonizers:
                        self.handles += canonizer.apply(module)
            self.twin = target
            assigned = self.plan.assign(target)
            self._check_coverage(target, assigned)
            skip = redundant_relu_passes(target, assigned) if self.elide else set()
            followers = inplace_followers(target) if not getattr(graph_info(target), "traced", False) else {}
            self.elided, hooks = [], {}
            for name, child, binding in assigned:
                if id(child) in skip:
                    self.elided.append(name)
                    continue
                _check_operands(name, child, binding)
                hook = binding.template.copy()
                if isinstance(hook, RescaleHook) and id(child) in followers:
                    hook.copy_output = True  # an in-place operation will overwrite z: keep a copy
                hooks[id(child)] = hook
                self.hook_refs.add(hook)
                self.handles.append(hook.register(child))
            self._rescale_after_relus(target, skip, hooks)
        except BaseException:
            self.remove()
            raise
        self.assignments = [(name, binding.describe()) for name, _, binding in assigned]

    def _module_map(self, ctx: dict, name: str, module: torch.nn.Module) -> Optional[Hook]:
        """zennit's ``module_map``: the hook for one module, so zennit's combinators (``MixedComposite``,
        ``NameLayerMapComposite``-style mixes) can use this composite.

        zennit's ``Composite.register`` walks ``root.named_modules()``, root first: that first call
        assigns the whole model (positions need it). Inside a combinator the hooks go on the model's own
        modules, with the canonizers the combinator applied; graph canonization, which needs to run the
        model's forward on a twin, is not available there, so operations of ``forward()`` that need a
        rule and are not modules (a functional residual ``+``) are named in a warning.
        """
        from .elision import inplace_followers
        from .rules.rescale import RescaleHook

        hooks = ctx.get("hooks")
        if hooks is None:
            assigned = self.plan.assign(module)
            followers = inplace_followers(module)
            hooks = ctx["hooks"] = {}
            for child_name, child, binding in assigned:
                hook = binding.template.copy()
                if isinstance(hook, RescaleHook) and id(child) in followers:
                    hook.copy_output = True
                hooks[id(child)] = hook
            self._warn_functional(module, assigned)
        return hooks.get(id(module))

    def _warn_functional(self, model: torch.nn.Module, assigned) -> None:
        from .graph import functional_uncovered

        if not self.plan.is_lrp or self.on_uncovered == "ignore":
            return
        found = functional_uncovered(model)
        if found:
            shown = "".join(f"\n  {u}" for u in found[:12]) + (
                f"\n  ... and {len(found) - 12} more" if len(found) > 12 else "")
            warnings.warn(
                f"inside a zennit combinator, preset '{self.plan.name}' can hook only the modules of "
                f"{type(model).__name__}; {len(found)} operation(s) of its forward() that need a rule get the "
                f"plain gradient:{shown}\nUse the composite on its own (compose(...) registers on a canonical twin) "
                "or composer.explain, or give the model canonizers that make these operations modules "
                "(e.g. 'resnet').", ComposerWarning, stacklevel=4)

    def _rescale_after_relus(self, twin: torch.nn.Module, skip, hooks) -> None:
        """Move a layer's output rescale behind the elided ReLU that alone reads its output: the same
        numbers (the relevance arriving where the output was <= 0 is 0), and the rule keeps the tensor
        the ReLU keeps anyway instead of the layer's own output — a plain gradient's memory."""
        from .graph import graph_info
        from .rules.rescale import RescaleHook

        if not skip or not getattr(graph_info(twin), "traced", False):
            return
        for node in twin.graph.nodes:
            if node.op != "call_module":
                continue
            relu = twin.get_submodule(node.target)
            source = node.args[0] if node.args else None
            if id(relu) not in skip or not isinstance(source, torch.fx.Node) or source.op != "call_module" \
                    or len(source.users) != 1:
                continue
            hook = hooks.get(id(twin.get_submodule(source.target)))
            if isinstance(hook, RescaleHook) and hook.keeps_output:
                hook.rescale_after = True
                self.handles.append(relu.register_forward_hook(hook.rescale_after_relu))

    def _check_coverage(self, twin: torch.nn.Module, assigned) -> None:
        from .graph import graph_info, uncovered

        if not self.plan.is_lrp or self.on_uncovered == "ignore":
            self.uncovered = []
            return
        info = graph_info(twin)
        self.uncovered = uncovered(twin, [m for _, m, _ in assigned])
        model_name = info.model_type if info is not None else type(twin).__name__
        notes = []
        if info is not None and not info.traced:
            notes.append(f"{model_name} could not be traced ({info.trace_error}); it is explained with module "
                         "hooks, and operations its forward() performs outside modules cannot be checked")
        if not self.uncovered:
            if notes:
                warnings.warn(notes[0], ComposerWarning, stacklevel=4)
            return
        shown = [f"  {u}" for u in self.uncovered[:12]]
        if len(self.uncovered) > 12:
            shown.append(f"  ... and {len(self.uncovered) - 12} more")
        text = (f"preset '{self.plan.name}' has no rule for {len(self.uncovered)} operation(s) of {model_name} "
                "between input and output, so its map would not be LRP:\n" + "\n".join(shown) + "\n"
                "Bind a rule to them in a preset (select by type or name), keep a custom module whole and give it "
                "a rule (composer.graph.register_leaf, docs/your-model.md), or accept an approximate map with "
                "on_uncovered: warn (explain(..., on_uncovered='warn')).")
        if notes:
            text += "\n" + notes[0]
        if self.on_uncovered == "error":
            raise ComposerError(text)
        warnings.warn(text, ComposerWarning, stacklevel=4)

    def __repr__(self):
        return f"PresetComposite({self.plan.name!r}, params={self.plan.params!r})"


def _check_operands(name: str, module: torch.nn.Module, binding: CompiledBinding) -> None:
    """A module of several inputs (a residual ``Add``) needs a rule that gives relevance to each of them."""
    from .graph.modules import Add

    if isinstance(module, Add) and not getattr(binding.template, "multi_input", False):
        raise ComposerError(
            f"rule '{binding.rule.spec.name}' gives relevance to one input only, but '{name}' is a residual sum of "
            "several inputs; bind 'norm' to sums (select: {type: sum}), as lrp_base does",
            source=binding.source, field=binding.field)


class _ForwardRedirect:
    """Makes ``model(x)`` run the canonical twin until removed (zennit's Composite interface)."""

    def __init__(self, model: torch.nn.Module, twin: torch.nn.Module):
        self.model = model
        self.previous = model.__dict__.get("forward")
        model.forward = twin.forward

    def remove(self):
        if self.model is None:
            return
        if self.previous is not None:
            self.model.forward = self.previous
        else:
            self.model.__dict__.pop("forward", None)
        self.model = None


def _blame(err: ComposerError, binding: Binding, fld: str, origins: Dict[str, Tuple[str, str]]) -> ComposerError:
    """An error about a binding's ``with: {key: $param}`` moved to where the user set ``param``
    (their file, their keyword argument or their method name), naming the binding it reached."""
    prefix = f"{fld}.with."
    if not (err.field or "").startswith(prefix):
        return err
    key = err.field[len(prefix):].split(".")[0].split("[")[0]
    ref = binding.with_.get(key)
    if not (isinstance(ref, str) and ref.startswith("$") and ref[1:] in origins):
        return err
    source, where = origins[ref[1:]]
    if (source, where) == (err.source, err.field):
        return err
    message = f"{err.message} (parameter '{ref[1:]}', used by {Path(err.source or '').name} {err.field})"
    return ComposerError(message, source=source, field=where, suggestions=err.suggestions)


def _compile_binding(binding: Binding, source: str, fld: str, params: Dict[str, Any],
                     origins: Dict[str, Tuple[str, str]]) -> CompiledBinding:
    try:
        rule = registry.get_rule(binding.rule)
    except ComposerError as err:
        raise ComposerError(err.message, source=source, field=f"{fld}.rule", suggestions=err.suggestions) from None
    given = _substitute(binding.with_, params, source, f"{fld}.with")
    try:
        checked = check_rule_params(rule, given, source, f"{fld}.with")
    except ComposerError as err:
        raise _blame(_with_line(err), binding, fld, origins) from None
    selector = compile_selector(binding.select, source, f"{fld}.select")
    try:
        template = rule.make_hook(checked)
    except (TypeError, ValueError, OverflowError, RuntimeError) as err:
        raise ComposerError(f"rule '{rule.spec.name}' rejected its parameters: {err}", source=source,
                            field=fld) from None
    return CompiledBinding(selector, rule, checked, template, source, fld, binding.optional)


def _compile(resolved: ResolvedPreset, overrides: Dict[str, Any],
             extra_canonizers: Tuple[CanonizerSpec, ...] = (),
             override_sources: Optional[Dict[str, Tuple[str, str]]] = None) -> Plan:
    params = dict(resolved.params)
    origins = {**resolved.param_sources, **(override_sources or {})}
    for key, value in overrides.items():
        if key not in params:
            raise ComposerError(
                f"preset '{resolved.name}' has no parameter '{key}' (parameters: {', '.join(params) or 'none'})",
                source=resolved.source, field="params", suggestions=closest(key, params))
        params[key] = value
    bindings, errors = [], []
    for binding, source, fld in resolved.layers:
        try:
            bindings.append(_compile_binding(binding, source, fld, params, origins))
        except ComposerError as err:   # keep going: every bad binding is reported at once
            errors.extend(_with_line(e) for e in err.errors())
    if errors:
        unique = list({str(e): e for e in errors}.values())   # a parent's bad binding reached by two paths
        raise unique[0].with_also(unique[1:])
    canonizers = tuple(dict.fromkeys(resolved.canonizers + tuple(extra_canonizers)))
    for i, ref in enumerate(resolved.canonizers):
        make_canonizer(ref, resolved.source, f"canonizers[{i}]")
    from . import methods

    if resolved.attributor is not None:
        call, source = resolved.attributor
        attributor = (call.name, methods.check_attributor(
            call.name, _substitute(call.with_, params, source, "attributor.with"), source))
    else:
        attributor = ("gradient", methods.check_attributor("gradient", {"start": "logit"}, resolved.source))
    modifiers = tuple(
        (call.name, methods.check_modifier(call.name, _substitute(call.with_, params, source, f"{fld}.with"),
                                           source, fld))
        for call, source, fld in resolved.modifiers)
    return Plan(resolved, params, tuple(bindings), canonizers, attributor, modifiers)


_plan_cache: Dict[Any, Plan] = {}
_PLAN_CACHE_SIZE = 512


def _freeze(value):
    if isinstance(value, (bool, int, float, str, type(None))):
        return value
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    raise TypeError("unhashable")


def compile_preset(preset: PresetRef, *, canonizers=None, **params) -> Plan:
    """Validate and compile a preset (name, method name, path or mapping) with parameter overrides.

    ``canonizers`` adds canonizers by name (``merge_batchnorm``, ``vgg``, ``resnet``) or as
    ``{name, with}`` mappings (:mod:`composer.canonizers`) to the preset's.

    Results for names and files are cached, so compiling the same preset and parameters again
    costs a dictionary look-up.

    Example
    -------
    >>> plan = compile_preset("lrp_epsilon", epsilon=0.25)
    >>> plan.params["epsilon"], plan.bindings[0].describe()
    (0.25, 'epsilon(epsilon=0.25, bias=True)')
    """
    key = None
    extra, objects = split_canonizers(canonizers)
    if objects:
        raise ComposerError("compile_preset takes canonizers by name; pass zennit canonizer instances to compose() "
                            "or explain()")
    if isinstance(preset, str) and "/" not in preset and not preset.endswith((".yaml", ".yml")):
        try:  # registered and method names are cached; files may change, mappings are not hashable
            key = (preset, extra, tuple(sorted((k, _freeze(v)) for k, v in params.items())))
        except TypeError:
            key = None
        plan = _plan_cache.get(key) if key is not None else None
        if plan is not None:
            return plan
    try:
        resolved, parsed = _resolve_any(preset)
        clash = {k: (parsed[k], v) for k, v in params.items() if k in parsed and parsed[k] != v}
        if clash:
            k, (named, given) = next(iter(clash.items()))
            base = resolved.preset.parents[-1] if resolved.preset.parents else resolved.name
            raise ComposerError(f"the method name '{preset}' sets {k}={named!r}, the keyword argument {k}={given!r}; "
                                f"give it once: the name alone, or the preset it builds on ('{base}', {k}={given!r})",
                                source="<arguments>", field=k)
        sources = {k: (f"method name '{preset}'", k) for k in parsed}
        sources.update({k: ("<arguments>", k) for k in params})
        plan = _compile(resolved, {**parsed, **params}, extra, sources)
    except ComposerError as err:
        raise _with_line(err) from None
    if resolved.abstract:
        raise ComposerError(f"preset '{resolved.name}' is abstract (a building block for 'extends')",
                            source=resolved.source, field="abstract")
    if key is not None:
        with _cache_lock:
            if len(_plan_cache) >= _PLAN_CACHE_SIZE:
                _plan_cache.clear()
            _plan_cache[key] = plan
    return plan


def _resolve_any(preset: PresetRef) -> Tuple[ResolvedPreset, Dict[str, Any]]:
    """A preset name, file, mapping, or a SignXAI method name (parsed by :mod:`composer.names`)."""
    if isinstance(preset, str) and not preset.endswith((".yaml", ".yml")) and "/" not in preset \
            and not registry.has_preset(preset):
        from .names import parse_method

        parsed = parse_method(preset)
        return load_preset(parsed.mapping()), parsed.params
    return load_preset(preset), {}


def compose(preset: PresetRef, *, canonizers=None, **params) -> PresetComposite:
    """A zennit Composite for a preset, a SignXAI method name, a YAML path or a mapping.

    Parameters override the preset's defaults and are validated against the rules' specs;
    ``canonizers`` adds zennit canonizers by name (e.g. ``["vgg"]`` for a VGG with batch norm), as
    ``{name, with}`` mappings, or as zennit canonizer instances (``[ResNetCanonizer()]``). Canonizers
    given here take over batch-norm merging from graph canonization, as zennit's composites do it.

    The composite works on its own (``Gradient(model, composite)``) and inside zennit's combinators
    (``MixedComposite([NameMapComposite(...), compose("epsilon_plus")])``).

    Example
    -------
    >>> import torch
    >>> from zennit.attribution import Gradient
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    >>> composite = compose("lrpz_sequential_composite_a", epsilon=0.1)
    >>> with Gradient(net, composite) as attributor:
    ...     _, relevance = attributor(torch.rand(2, 4), torch.eye(2)[[0, 1]])
    >>> relevance.shape
    torch.Size([2, 4])
    """
    refs, objects = split_canonizers(canonizers)
    return PresetComposite(compile_preset(preset, canonizers=list(refs), **params), canonizer_objects=objects)
