"""The zennit ``Composite`` a compiled preset becomes: graph canonization, coverage check, hooks.

:class:`PresetComposite` registers a :class:`~composer.compiler.Plan` on a model (through its
canonical twin by default) and also offers zennit's ``module_map``, so zennit's combinators can
use it.
"""
from __future__ import annotations

import warnings
from typing import Any, List, Optional, Tuple

import torch
from zennit.core import Composite, Hook

from .canonizers import make_canonizer
from .elision import inplace_followers, redundant_relu_passes
from .errors import ComposerError, ComposerWarning, closest
from .graph import canonize, functional_uncovered, graph_info, uncovered
from .graph.check import check_twin
from .graph.modules import Add
from .rules.rescale import RescaleHook


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
    >>> from composer import compose
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
                hook = hooks[id(child)] = _hook_for(child, binding, followers)
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

        hooks = ctx.get("hooks")
        if hooks is None:
            assigned = self.plan.assign(module)
            followers = inplace_followers(module)
            hooks = ctx["hooks"] = {id(child): _hook_for(child, binding, followers) for _, child, binding in assigned}
            self._warn_functional(module, assigned)
        return hooks.get(id(module))

    def _warn_functional(self, model: torch.nn.Module, assigned) -> None:
        if not self.plan.is_lrp or self.on_uncovered == "ignore":
            return
        found = functional_uncovered(model)
        if found:
            warnings.warn(
                f"inside a zennit combinator, preset '{self.plan.name}' can hook only the modules of "
                f"{type(model).__name__}; {len(found)} operation(s) of its forward() that need a rule get the "
                f"plain gradient:\n{_listing(found)}\nUse the composite on its own (compose(...) registers on a "
                "canonical twin) or composer.explain, or give the model canonizers that make these operations modules "
                "(e.g. 'resnet').", ComposerWarning, stacklevel=4)

    def _rescale_after_relus(self, twin: torch.nn.Module, skip, hooks) -> None:
        """Move a layer's output rescale behind the elided ReLU that alone reads its output: the same
        numbers (the relevance arriving where the output was <= 0 is 0), and the rule keeps the tensor
        the ReLU keeps anyway instead of the layer's own output — a plain gradient's memory."""

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
        if not self.plan.is_lrp or self.on_uncovered == "ignore":
            self.uncovered = []
            return
        info = graph_info(twin)
        self.uncovered = uncovered(twin, [m for _, m, _ in assigned])
        model_name = info.model_type if info is not None else type(twin).__name__
        notes = []
        if info is not None and not info.traced and info.trace_error is not None:   # a one-layer model needs no trace
            notes.append(f"{model_name} could not be traced ({info.trace_error}); it is explained with module "
                         "hooks, and operations its forward() performs outside modules cannot be checked")
        if not self.uncovered:
            if notes:
                warnings.warn(notes[0], ComposerWarning, stacklevel=4)
            return
        text = (f"preset '{self.plan.name}' has no rule for {len(self.uncovered)} operation(s) of {model_name} "
                f"between input and output, so its map would not be LRP:\n{_listing(self.uncovered)}\n"
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


def _listing(items: List[Any], most: int = 12) -> str:
    """The first ``most`` items, one an indented line, and how many more there are."""
    more = [f"  ... and {len(items) - most} more"] if len(items) > most else []
    return "\n".join([f"  {u}" for u in items[:most]] + more)


def _hook_for(module: torch.nn.Module, binding: CompiledBinding, followers) -> Hook:
    """A fresh copy of the binding's hook; it keeps a copy of its output when an in-place operation follows
    (``followers``: modules of a model that could not be made out of place)."""
    hook = binding.template.copy()
    if isinstance(hook, RescaleHook) and id(module) in followers:
        hook.copy_output = True
    return hook


def _check_operands(name: str, module: torch.nn.Module, binding: CompiledBinding) -> None:
    """A module of several inputs (a residual ``Add``) needs a rule that gives relevance to each of them."""

    if isinstance(module, Add) and not getattr(binding.template, "multi_input", False):
        raise ComposerError(
            f"rule '{binding.rule.spec.name}' gives relevance to one input only, but '{name}' is a residual sum of "
            "several inputs; bind 'norm' to sums (select: {type: sum}), as lrp_base does",
            source=binding.source, field=binding.field)


class _ForwardRedirect:
    """Makes ``model(x)`` run the canonical twin until removed (zennit's Composite interface), checking it
    against the model's own forward once per input signature (:func:`composer.graph.check.check_twin`)."""

    def __init__(self, model: torch.nn.Module, twin: torch.nn.Module):
        self.model = model
        self.previous = model.__dict__.get("forward")
        original = model.forward

        def forward(*args, **kwargs):
            if len(args) == 1 and not kwargs and isinstance(args[0], torch.Tensor):
                check_twin(model, twin, args[0], reference=original)
            return twin.forward(*args, **kwargs)
        model.forward = forward

    def remove(self):
        if self.model is None:
            return
        if self.previous is not None:
            self.model.forward = self.previous
        else:
            self.model.__dict__.pop("forward", None)
        self.model = None
