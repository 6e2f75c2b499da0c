"""``explain(model, x, method)``: one call for every method of the grid, on a batch."""
from __future__ import annotations

import contextlib
import contextvars
import inspect
import sys
import threading
import warnings
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple, Union

import torch

from . import graph
from .canonizers import split_canonizers
from .compiler import ComposerWarning, PresetRef, compile_preset
from .graph.canonical import fingerprint, graph_info
from .graph.check import check_twin, lock_of
from .errors import ComposerError
from .frequency import DomainExplanation, requested_domain, to_domain
from .methods import ATTRIBUTORS, MODIFIERS, Backprop

Target = Union[None, int, Sequence[int], torch.Tensor]
SUPPORTED_DTYPES = (torch.float32, torch.float64)


@contextlib.contextmanager
def model_guard(model: torch.nn.Module):
    """Run attribution on ``model`` and leave it as it was, also when the body raises.

    Parameters stop requiring gradients for the duration (attribution needs none); the
    ``requires_grad`` flags, the train/eval mode of every module and every buffer (a training-mode
    batch norm updates its running statistics in the forward pass) are restored afterwards.

    Example
    -------
    >>> net = torch.nn.Linear(2, 2)
    >>> with model_guard(net):
    ...     net.weight.requires_grad
    False
    >>> net.weight.requires_grad
    True
    """
    flags = [(p, p.requires_grad) for p in model.parameters()]
    modes = [(m, m.training) for m in model.modules()]
    buffers = [(b, b.detach().clone()) for b in model.buffers()] if any(mode for _, mode in modes) else []
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        for m, mode in modes:
            m.training = mode
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)


def _private_twin(stack: contextlib.ExitStack, model: torch.nn.Module, plan,
                  canonize: Optional[bool], objects: Sequence[Any] = ()) -> Optional[torch.nn.Module]:
    """Borrow, for the duration of ``stack``, the model's canonical twin (LRP presets, Grad-CAM) or its
    structural copy; None if the model cannot be copied. The twin goes back to the pool only if the
    call ends without an error."""
    if canonize is not None and not isinstance(canonize, bool):
        raise ComposerError(f"canonize must be True or False, got {canonize!r}")
    use_graph = (plan.preset.canonize if canonize is None else canonize) and bool(
        plan.bindings or plan.attributor[0] == "grad_cam")
    # zennit canonizers named for a plain copy change it in place (and do not all undo it exactly)
    borrowed = graph.borrow(model, plan.canonizers if use_graph else (), traced=use_graph,
                            reuse=(use_graph or not plan.canonizers) and not objects,
                            objects=objects if use_graph else ())
    try:
        return stack.enter_context(borrowed)
    except ComposerError:
        raise
    except Exception as err:  # noqa: BLE001 - deepcopy of a module holding something uncopyable
        warnings.warn(f"{type(model).__name__} cannot be copied ({type(err).__name__}: {err}); composer hooks the "
                      "model itself, one call at a time, and restores it afterwards", ComposerWarning, stacklevel=3)
        return None


_recording: "contextvars.ContextVar[Optional[Tuple[torch.Tensor, List[torch.Tensor]]]]" = contextvars.ContextVar(
    "composer_recorded_outputs", default=None)


@contextlib.contextmanager
def recorded_outputs(x: torch.Tensor):
    """Collect the model's output for ``x`` itself from the ``explain()`` calls of this context (and thread).

    That is the forward pass a gradient or LRP map is computed from, or whose arg-max chose the
    targets (``target=None``): its logits come for free, with no second forward pass
    (``composer.explain_dataset`` stores them). Passes on altered inputs (SmoothGrad's noise,
    integrated gradients' path) are not collected, so with given targets such methods add none.

    Example
    -------
    >>> net = torch.nn.Linear(3, 2)
    >>> x = torch.randn(4, 3)
    >>> with recorded_outputs(x) as outputs:
    ...     _ = explain(net, x, "gradient")
    >>> len(outputs), torch.allclose(outputs[0], net(x))
    (1, True)
    """
    outputs: List[torch.Tensor] = []
    token = _recording.set((x, outputs))
    try:
        yield outputs
    finally:
        _recording.reset(token)


@dataclass
class _RecordingBackprop(Backprop):
    """A :class:`Backprop` that keeps its output for one input tensor (see :func:`recorded_outputs`)."""

    source: Optional[torch.Tensor] = None
    sink: Optional[List[torch.Tensor]] = None

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        out = super().logits(x)
        if x.shape == self.source.shape and x.data_ptr() == self.source.data_ptr():   # x itself, maybe detached
            self.sink.append(out.detach())
        return out


def _backprop(model: torch.nn.Module, batch_size: Optional[int]) -> Backprop:
    recording = _recording.get()
    return Backprop(model, batch_size) if recording is None else _RecordingBackprop(model, batch_size, *recording)


def _check_input(x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise ComposerError(f"x must be a torch.Tensor with a batch axis, got {type(x).__name__}")
    if x.dim() < 2:
        raise ComposerError(f"x must have a batch axis first, shape (batch, ...); got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ComposerError("x is an empty batch")
    if x.dtype in (torch.float16, torch.bfloat16):
        raise ComposerError(f"{x.dtype} attribution is not supported: LRP's stabilisers (SafeDivide's 1e-7) overflow "
                            "half precision; run the model and input in float32 (model.float(), x.float())")
    if x.dtype not in SUPPORTED_DTYPES:
        raise ComposerError(f"x must be a float32 or float64 tensor, got {x.dtype}")
    if not torch.isfinite(x).all():
        raise ComposerError("x contains NaN or infinite values")
    return x


def _check_dtype(model: torch.nn.Module, x: torch.Tensor):
    param = next(iter(model.parameters()), None)
    if param is not None and param.dtype != x.dtype:
        raise ComposerError(f"x is {x.dtype} but the model's parameters are {param.dtype}; convert one of them "
                            f"(e.g. x.to({param.dtype}) or model.to({x.dtype}))")
    if param is not None and param.device != x.device:
        raise ComposerError(f"x is on {x.device} but the model is on {param.device}")


def _generator(generator, seed) -> Optional[torch.Generator]:
    """The random stream of a stochastic method: the caller's generator, or one seeded with ``seed``."""
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise ComposerError(f"generator must be a torch.Generator, got {type(generator).__name__} "
                                "(for a number, pass seed=...)")
        return generator
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ComposerError(f"seed must be an integer, got {seed!r}")
    try:
        return torch.Generator().manual_seed(seed)
    except (ValueError, OverflowError, RuntimeError):
        raise ComposerError(f"seed {seed} is out of range: use an integer in [0, 2**63)") from None


def _targets(target: Target, n: int, device: torch.device) -> Optional[torch.Tensor]:
    """Per-sample class indices (validated against the classes in the forward pass), or None."""
    if target is None:
        return None
    if isinstance(target, bool):
        raise ComposerError(f"target must be a class index, got {target!r}")
    if isinstance(target, int):
        if not -2**63 <= target < 2**63:
            raise ComposerError(f"target {target} is not a class index")
        return torch.full((n,), target, dtype=torch.long, device=device)
    try:
        t = torch.as_tensor(target, device=device)
    except (TypeError, ValueError, RuntimeError):
        raise ComposerError(f"target must be an int, a sequence of ints or a tensor, got {target!r}") from None
    if t.is_floating_point() or t.dtype == torch.bool or t.is_complex():
        raise ComposerError(f"target must hold integer class indices, got dtype {t.dtype}")
    t = t.long().reshape(-1)
    if t.numel() == 1:
        t = t.expand(n)
    if t.numel() != n:
        raise ComposerError(f"target has {t.numel()} entries for a batch of {n}")
    return t.contiguous()


def explain(model: torch.nn.Module, x: torch.Tensor, method: PresetRef, target: Target = None, *,
            batch_size: Optional[int] = None, generator: Optional[torch.Generator] = None,
            seed: Optional[int] = None, canonizers: Optional[Sequence[Any]] = None,
            canonize: Optional[bool] = None, on_uncovered: Optional[str] = None, domain: Any = None,
            **params: Any) -> Union[torch.Tensor, DomainExplanation]:
    """Attribute the model's output for ``target`` to the input, with any method of the grid.

    Parameters
    ----------
    model : torch.nn.Module
        A classifier returning ``(batch, classes)``. It is never modified, hooked or switched to
        another mode: composer explains a private twin of it (same weights, its own modules) in
        eval mode, so dropout and batch statistics never enter a map, and concurrent calls on one
        model from several threads are safe.
    x : torch.Tensor
        A batch, ``(N, ...)``. Every sample is explained on its own terms in one pass.
    method : str, path or mapping
        A preset name (``lrpz_sequential_composite_a``), a SignXAI method name
        (``lrpsign_epsilon_0_25_std_x_mu_0_5``, ``gradient_x_sign_mu_neg_0_5``), a YAML file or a mapping.
    target : int, sequence, tensor or None
        Class per sample (or one for all); None takes each sample's arg-max.
    batch_size : int, optional
        Largest batch the model sees at once (integrated gradients and SmoothGrad expand the batch).
    generator, seed :
        Randomness of SmoothGrad / VarGrad; equal seeds give equal results. One noise stream serves the
        whole batch, so a seeded map depends on the batch it was computed in.
    canonizers : list, optional
        zennit canonizers to add to the preset's: names (``merge_batchnorm``, ``vgg``, ``resnet``),
        ``{name, with}`` mappings or zennit canonizer instances (:mod:`composer.canonizers`). Graph
        canonization makes them unnecessary; given, they take over batch-norm merging as in zennit.
    canonize : bool, optional
        Override the preset's ``canonize`` (default True): LRP presets and Grad-CAM see the model's
        canonical twin — functional calls as modules, batch norms merged by the graph's edges, one
        module per call, nothing in place (``docs/your-model.md``).
    on_uncovered : ``"error"``, ``"warn"`` or ``"ignore"``, optional
        Override the preset's ``on_uncovered`` (default ``"error"``): what happens when an LRP preset
        has no rule for an operation between input and output (a LayerNorm, an elementwise product...).
    domain : str, mapping or :class:`~composer.domain.DomainSpec`, optional
        Show the map in another domain (overrides the preset's ``domain``): ``"frequency"`` (relevance per
        DFT bin) or ``{"kind": "time_frequency", "window_width": 64, ...}`` (per short-time DFT window and
        bin); ``"time"`` is the plain map. The map is passed through DFT-LRP's virtual inverse-DFT layer
        (:mod:`composer.frequency`, ``docs/timeseries.md``); time is the input's last axis.
    **params :
        The method's parameters (``epsilon=0.25``, ``mu=0.5``, ``steps=32``...), validated.

    Returns
    -------
    torch.Tensor
        The attribution, shaped like ``x`` (Grad-CAM: one channel), on ``x``'s device and dtype;
        with a frequency or time-frequency ``domain``, a :class:`~composer.frequency.DomainExplanation`
        (``.signal`` and ``.relevance`` in that domain, ``.time_relevance`` the map).

    Example
    -------
    >>> net = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    >>> x = torch.randn(5, 8)
    >>> explain(net, x, "lrpsign_epsilon_0_25_std_x_mu_0_5").shape
    torch.Size([5, 8])
    >>> explain(net, x, "gradient_x_sign", target=[0, 1, 2, 0, 1]).shape
    torch.Size([5, 8])
    >>> explain(net, x, "lrp_epsilon_0_1", domain="frequency").relevance.shape   # per DFT bin 0..8//2
    torch.Size([5, 5])
    """
    session = Explainer(model, method, batch_size=batch_size, canonizers=canonizers, canonize=canonize,
                        on_uncovered=on_uncovered, domain=domain, **params)
    x = _check_input(x)   # inputs, targets and the random stream are checked before any work
    _check_dtype(model, x)
    generator = _generator(generator, seed) if session.stochastic else None
    t = _targets(target, x.shape[0], x.device)
    session.check_model = False   # one call: the model cannot change between batches
    with session:
        return session.run(x, t, generator)


class Explainer:
    """:func:`explain` for many batches with one set-up: the method is compiled, the model's twin
    borrowed and its hooks registered once, when the ``with`` block starts.

    Each call gives what :func:`explain` gives for that batch, bit for bit; the per-call work that
    :func:`explain` repeats (compiling, borrowing and checking the twin, registering the rules' hooks)
    is done once, which is what a loop over a dataset saves (``composer.explain_dataset`` uses one).
    The model must not change while the block runs: the twin was made from it when the block began,
    and a change is refused when the block ends. Calls from several threads take turns; for parallel
    work, give each thread its own ``Explainer``.

    Parameters are those of :func:`explain` that belong to the method, not to a batch.

    Example
    -------
    >>> net = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    >>> x = torch.randn(6, 8)
    >>> with Explainer(net, "lrp_epsilon_0_1") as explainer:
    ...     maps = [explainer(batch) for batch in x.split(2)]
    >>> torch.equal(maps[1], explain(net, x[2:4], "lrp_epsilon_0_1"))
    True
    """

    def __init__(self, model: torch.nn.Module, method: PresetRef, *, batch_size: Optional[int] = None,
                 canonizers: Optional[Sequence[Any]] = None, canonize: Optional[bool] = None,
                 on_uncovered: Optional[str] = None, domain: Any = None, **params: Any):
        if not isinstance(model, torch.nn.Module):
            raise ComposerError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                       or batch_size < 1):
            raise ComposerError(f"batch_size must be a positive integer, got {batch_size!r}")
        refs, self._objects = split_canonizers(canonizers)
        self.model, self.batch_size, self._canonize, self._on_uncovered = model, batch_size, canonize, on_uncovered
        self.plan = compile_preset(method, canonizers=list(refs), **params)
        self._space = requested_domain(domain, self.plan.preset)   # validated before any work
        name, self._kwargs = self.plan.attributor
        self._attributor = ATTRIBUTORS[name]
        #: whether the method draws random numbers (SmoothGrad, VarGrad): calls take ``generator``/``seed``
        self.stochastic = "generator" in inspect.signature(self._attributor).parameters
        #: whether leaving the block checks that the model did not change while it was open
        self.check_model = True
        self._stack: Optional[contextlib.ExitStack] = None
        self._fingerprint = None
        self._call_lock = threading.Lock()

    def __enter__(self) -> "Explainer":
        if self._stack is not None:
            raise ComposerError("this Explainer is already open; use one with block at a time")
        stack, model, plan = contextlib.ExitStack(), self.model, self.plan
        try:
            twin = _private_twin(stack, model, plan, self._canonize, self._objects)
            if twin is None:  # the model cannot be copied: hook it, one caller at a time, and restore it afterwards
                stack.enter_context(lock_of(model))
                stack.enter_context(model_guard(model))
                model.eval()
                composite = plan.composite(canonize=False, on_uncovered=self._on_uncovered,
                                           canonizer_objects=self._objects)
            else:
                composite = plan.composite(canonize=None if graph_info(twin) is not None else False,
                                           on_uncovered=self._on_uncovered, canonizer_objects=self._objects)
            self._module = twin if twin is not None else model
            stack.enter_context(composite.context(self._module))
            self._fingerprint = fingerprint(model) if twin is not None and self.check_model else None
        except BaseException:
            stack.__exit__(*sys.exc_info())
            raise
        self._stack = stack
        return self

    def __exit__(self, *exc) -> bool:
        stack, self._stack = self._stack, None
        changed = self._fingerprint is not None and fingerprint(self.model) != self._fingerprint
        suppress = stack.__exit__(*exc) if stack is not None else False
        if changed and exc[0] is None:
            raise ComposerError("the model changed (weights, buffers or modules) while its Explainer was open; "
                                "the maps after the change may mix the old and the new model: explain them again")
        return suppress

    def __call__(self, x: torch.Tensor, target: Target = None, *, generator: Optional[torch.Generator] = None,
                 seed: Optional[int] = None) -> Union[torch.Tensor, DomainExplanation]:
        """The map of batch ``x`` for ``target``, as :func:`explain` gives it (``generator``/``seed`` for
        stochastic methods)."""
        if self._stack is None:
            raise ComposerError("an Explainer explains inside its with block: "
                                "`with Explainer(model, method) as explainer: explainer(x)`")
        x = _check_input(x)
        _check_dtype(self.model, x)
        generator = _generator(generator, seed) if self.stochastic else None
        return self.run(x, _targets(target, x.shape[0], x.device), generator)

    def run(self, x: torch.Tensor, t: Optional[torch.Tensor], generator: Optional[torch.Generator]):
        """:meth:`__call__` for an input and targets already checked."""
        kwargs = {**self._kwargs, "generator": generator} if self.stochastic else self._kwargs
        with self._call_lock:
            if self._module is not self.model:
                check_twin(self.model, self._module, x)
            relevance = self._attributor(_backprop(self._module, self.batch_size), x, t, **kwargs)
        for mod_name, mod_kwargs in self.plan.modifiers:
            relevance = MODIFIERS[mod_name](relevance, x, **mod_kwargs)
        relevance = relevance.detach().to(dtype=x.dtype)
        return relevance if self._space is None else to_domain(x, relevance, self._space)
