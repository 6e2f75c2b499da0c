"""Preset + parameters -> a :class:`Plan`. The only code between a method's data and its hooks.

:func:`compile_preset` reads a preset (:mod:`composer.resolve`) or a method name
(:mod:`composer.names`), substitutes ``$param`` references, validates every rule and parameter and
caches the result as a :class:`Plan`; :func:`compose` returns a fresh
:class:`~composer.composite.PresetComposite` of that plan, a real :class:`zennit.core.Composite`
usable with zennit's attributors.
"""
from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
from zennit.core import Hook

from . import methods, registry
from .canonizers import CANONIZERS, CanonizerSpec, make_canonizer, split_canonizers
from .catalog import versions
from .composite import PresetComposite
from .errors import ComposerError, ComposerWarning, closest
from .names import parse_method
from .resolve import DEFAULT_ATTRIBUTOR_FROM, PresetRef, ResolvedPreset, _with_line, is_name, load_preset
from .selectors import AFFINE_LAYERS, CompiledSelector, compile_selector, relevance_layers, type_matches
from .spec import Binding

__all__ = ["ComposerWarning", "CompiledBinding", "Plan", "PresetComposite", "ResolvedPreset", "compile_preset",
           "compose", "load_preset"]

_cache_lock = threading.RLock()


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
        leaves = [(name, m) for name, m in model.named_modules() if not list(m.children())]
        of_type = {}  # binding -> {id(module): index among the modules of its type}, for 'nth'
        for i, binding in enumerate(self.bindings):
            if binding.selector.nth is not None:
                typed = [m for _, m in leaves if type_matches(binding.selector, m)]
                of_type[i] = ({id(m): k for k, m in enumerate(typed)}, len(typed))
        out = []
        for name, module in leaves:
            idx = index_of.get(id(module))
            for i, binding in enumerate(self.bindings):
                if binding.layers_only and idx is None and not isinstance(module, AFFINE_LAYERS):
                    continue
                typed, typed_count = of_type.get(i, ({}, 0))
                if binding.selector.matches(name, module, idx, len(layers), typed.get(id(module)), typed_count):
                    out.append((name, module, binding))
                    break
        mode, used = self.preset.on_unmatched, {id(b) for _, _, b in out}
        for binding in self.bindings:
            if id(binding) in used or binding.optional or mode == "ignore":
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
        checked = rule.check(given, source, f"{fld}.with")
    except ComposerError as err:
        raise _blame(_with_line(err), binding, fld, origins) from None
    selector = compile_selector(binding.select, source, f"{fld}.select")
    try:
        template = rule.make_hook(checked)
    except (TypeError, ValueError, OverflowError, RuntimeError) as err:
        raise ComposerError(f"rule '{rule.spec.name}' rejected its parameters: {err}", source=source,
                            field=fld) from None
    return CompiledBinding(selector, rule, checked, template, source, fld, binding.optional)


def _check_one_form(resolved: ResolvedPreset, bindings: List[CompiledBinding]) -> None:
    """Relevance rules (zennit's, iNNvestigate's) and gradient-form rules (AttnLRP's, times the input at the end)
    pass different quantities backwards: one preset mixing them gives a map that is neither."""
    forms = {b.rule.spec.form: b for b in reversed(bindings)}   # the first binding of each form
    if "relevance" in forms and "gradient" in forms:
        r, g = forms["relevance"], forms["gradient"]
        raise ComposerError(
            f"preset '{resolved.name}' mixes relevance rules ({r.rule.spec.name}, {Path(r.source).name} {r.field}) with "
            f"gradient-form rules ({g.rule.spec.name}, {Path(g.source).name} {g.field}); they pass different quantities backwards, so the map would be "
            "neither. Use the gradient-form rules throughout (attnlrp, cp_lrp: implicit_z, implicit_gamma, ...) or "
            "the relevance rules throughout", source=g.source, field=g.field)


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
    _check_one_form(resolved, bindings)
    canonizers = tuple(dict.fromkeys(resolved.canonizers + tuple(extra_canonizers)))
    for i, ref in enumerate(resolved.canonizers):
        make_canonizer(ref, resolved.source, f"canonizers[{i}]")
    # a preset that names no attributor is LRP: it takes lrp_base's (the backward pass from the target logit)
    call, source = resolved.attributor or load_preset(DEFAULT_ATTRIBUTOR_FROM).attributor
    attributor = (call.name, methods.check_attributor(
        call.name, _substitute(call.with_, params, source, "attributor.with"), source))
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
    extra, objects = split_canonizers(canonizers)
    if objects:
        raise ComposerError("compile_preset takes canonizers by name; pass zennit canonizer instances to compose() "
                            "or explain()")
    key = None
    if is_name(preset):   # registered and method names are cached; files may change, mappings are not hashable
        try:   # on the versions of every catalog a preset can name something from
            key = (versions(registry.RULES, registry.PRESETS, methods.ATTRIBUTORS, methods.MODIFIERS, CANONIZERS),
                   preset, extra, tuple(sorted((k, _freeze(v)) for k, v in params.items())))
        except TypeError:
            pass
    if key in _plan_cache:
        return _plan_cache[key]
    try:
        resolved, parsed = _resolve_any(preset)
        k = next((k for k, v in params.items() if k in parsed and parsed[k] != v), None)
        if k is not None:   # the name and a keyword argument set one parameter differently
            base = resolved.preset.parents[-1] if resolved.preset.parents else resolved.name
            raise ComposerError(f"the method name '{preset}' sets {k}={parsed[k]!r}, the keyword argument "
                                f"{k}={params[k]!r}; give it once: the name alone, or the preset it builds on "
                                f"('{base}', {k}={params[k]!r})", source="<arguments>", field=k)
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
    if is_name(preset) and not registry.has_preset(preset):
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
