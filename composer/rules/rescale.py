"""The shared mechanism of composer's fast rules: rescale the gradient, let the layer do the transpose.

A :class:`RescaleHook` sees the relevance ``R`` arriving at its layer's output and returns what the
layer's *own* backward should transpose; it then sees that transpose arrive at the layer's input and
returns the input relevance. No forward pass is repeated and nothing is copied.

Both points are tiny autograd Functions around the layer (:class:`_OutputPoint` on its output,
:class:`_InputPoint` on its inputs) that keep ``a`` and ``z`` with ``save_for_backward``. So the
tensors live exactly as long as autograd's own: each call of the layer has its own (a module called
at several sites), they are freed as soon as the layer's backward is done, they survive for another
backward pass with ``retain_graph=True``, and autograd's version counters refuse a tensor changed in
place. With ``create_graph=True`` the rules' operations are recorded like any other.

When a ReLU whose pass hook is provably the plain gradient follows the layer (see
:mod:`composer.elision`), the composite moves the output point behind the ReLU
(:meth:`RescaleHook.rescale_after`): the rule reads ``max(z, 0)`` — the same numbers, since the
relevance arriving where ``z <= 0`` is 0 — and keeps the tensor the ReLU keeps anyway instead of ``z``.
"""
from __future__ import annotations

import threading
from typing import Optional

import torch
from zennit.core import Hook

from ..errors import ComposerError
from .base import DescribedHook


class CallState(dict):
    """What one call of a hooked module carries from its forward to its backward.

    During the backward pass ``a`` (the first input), ``inputs`` and ``z`` are set from the saved
    tensors of the call, for the rule to read with :meth:`input` and :meth:`output`; the rule's own
    values (``eps``, intermediate quotients) live here too.
    """

    def input(self) -> torch.Tensor:
        """The layer's input ``a`` (of this call)."""
        return self["a"]

    def output(self) -> torch.Tensor:
        """The layer's output ``z`` (of this call; ``max(z, 0)`` when the rescale follows a ReLU)."""
        return self["z"]


def _saved(ctx) -> tuple:
    try:
        return tuple(t.detach() for t in ctx.saved_tensors)
    except RuntimeError as err:
        if "inplace" in str(err) or "in-place" in str(err):
            raise ComposerError(f"an in-place operation changed a tensor that the LRP rule of a "
                                f"{ctx.state['module_name']} needs before the backward pass (use inplace=False, "
                                "or let graph canonization make the model out-of-place)") from err
        raise


class _OutputPoint(torch.autograd.Function):
    """Identity on a layer's output; its backward applies the rule's output rescale."""

    @staticmethod
    def forward(ctx, z, hook, module, state, *inputs):
        ctx.hook, ctx.module, ctx.state, ctx.n_inputs = hook, module, state, len(inputs)
        ctx.save_for_backward(*(((z,) if hook.keeps_output else ()) + inputs))
        # a copy when an in-place operation will follow (outside graph canonization), else a view
        return z.clone() if hook.copy_output else z.view_as(z)

    @staticmethod
    def backward(ctx, relevance):
        hook, state = ctx.hook, ctx.state
        if not hook.active:
            return (relevance,) + (None,) * (3 + ctx.n_inputs)
        saved = _saved(ctx)
        inputs = saved[1:] if hook.keeps_output else saved
        state.update(a=inputs[0], inputs=inputs)
        if hook.keeps_output:
            state["z"] = saved[0]
        try:
            out = hook.output_gradient(state, ctx.module, relevance)
        finally:
            for key in ("z", "a", "inputs"):
                state.pop(key, None)
        return (out,) + (None,) * (3 + ctx.n_inputs)


class _InputPoint(torch.autograd.Function):
    """Identity on a layer's inputs; its backward turns the layer's transpose into input relevance."""

    @staticmethod
    def forward(ctx, hook, module, state, *inputs):
        ctx.hook, ctx.module, ctx.state = hook, module, state
        ctx.save_for_backward(*inputs)
        return tuple(t.view_as(t) for t in inputs)

    @staticmethod
    def backward(ctx, *grads):
        hook, state = ctx.hook, ctx.state
        if not hook.active or "z_seen" not in state:
            return (None, None, None) + grads
        inputs = _saved(ctx)
        state.update(a=inputs[0], inputs=inputs)
        try:
            out = hook.input_relevances(state, ctx.module, grads)
        finally:
            state.pop("a", None), state.pop("inputs", None)
        return (None, None, None) + tuple(out)


class RescaleHook(DescribedHook, Hook):
    """Base class: subclasses implement :meth:`output_gradient` and :meth:`input_relevance`.

    Both receive the :class:`CallState` of the forward call whose backward is running.
    """

    #: whether the backward needs the layer's output ``z``; a hook that recomputes it cheaply sets this
    #: False, so the output is not kept until the backward
    keeps_output = True
    #: whether the rule gives relevance to every input of a module with several (a residual ``Add``);
    #: a rule that only handles the first must not be bound to such a module
    multi_input = False

    def __init__(self, **kwargs):
        super().__init__()
        self.kwargs = kwargs
        #: set by the composite when an in-place operation (outside graph canonization) may overwrite z
        self.copy_output = False
        #: set by the composite: a proven-redundant ReLU follows, and the rescale reads its output
        self.rescale_after = False
        self._local = threading.local()

    def copy(self):
        hook = super().copy()
        hook.copy_output = self.copy_output   # zennit's register loop copies the template the composite flagged
        return hook

    # ------------------------------------------------------------------ subclass interface
    def prepare(self, state: CallState, module, a: torch.Tensor, z: torch.Tensor) -> None:
        """Forward time: compute what the backward needs (into ``state``)."""

    def output_gradient(self, state: CallState, module, relevance: torch.Tensor) -> torch.Tensor:
        """What the layer's own backward should transpose, given the relevance at its output."""
        raise NotImplementedError

    def input_relevance(self, state: CallState, module, transposed: torch.Tensor) -> torch.Tensor:
        """The relevance at the layer's input, given the layer's transpose of :meth:`output_gradient`."""
        raise NotImplementedError

    def input_relevances(self, state: CallState, module, transposed: tuple) -> tuple:
        """The relevance at each input of the layer; the default handles the first (a layer's only) input."""
        return (self.input_relevance(state, module, transposed[0]),) + tuple(transposed[1:])

    # ------------------------------------------------------------------ plumbing
    def _pending(self) -> list:
        """States of this thread's calls that have entered the module but not left it."""
        return self._local.__dict__.setdefault("pending", [])

    def pre_forward(self, module, input):
        """Route the inputs through an :class:`_InputPoint` (the backward's last stop at this layer)."""
        state = CallState(module_name=type(module).__name__)
        self._pending().append(state)
        if not isinstance(input, tuple):
            input = (input,)
        if not all(isinstance(t, torch.Tensor) for t in input) or not any(t.requires_grad for t in input):
            return None
        return _InputPoint.apply(self, module, state, *input)

    def post_forward(self, module, input, output):
        """Nothing: :meth:`forward` places the output point."""

    def forward(self, module, input, output):
        """Place the :class:`_OutputPoint` on the output (or hand the call to the ReLU that follows)."""
        pending = self._pending()
        state = pending.pop() if pending else CallState(module_name=type(module).__name__)
        if not isinstance(output, torch.Tensor) or output.grad_fn is None:
            return None
        inputs = tuple(t.detach() for t in input)
        self.prepare(state, module, inputs[0], output.detach())
        state["z_seen"] = True
        if self.rescale_after:
            self._local.after = (module, state, inputs)
            return None
        return _OutputPoint.apply(output, self, module, state, *inputs)

    def rescale_after_relu(self, relu, relu_input, relu_output: torch.Tensor) -> Optional[torch.Tensor]:
        """Forward hook for the proven-redundant ReLU after the layer: the output point goes behind it."""
        after = getattr(self._local, "after", None)
        self._local.after = None
        if after is None or not isinstance(relu_output, torch.Tensor) or relu_output.grad_fn is None:
            return None
        module, state, inputs = after
        return _OutputPoint.apply(relu_output, self, module, state, *inputs)

    def backward(self, module, grad_input, grad_output):  # pragma: no cover - the points do the work
        return None


def divide(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """``numerator / denominator`` into ``denominator``'s buffer (a temporary), unless autograd records
    the backward pass (``create_graph=True``), which cannot differentiate ``out=``.

    Example
    -------
    >>> divide(torch.tensor([2., 3.]), torch.tensor([4., 2.]))
    tensor([0.5000, 1.5000])
    """
    if numerator.requires_grad or denominator.requires_grad:
        return numerator / denominator
    return torch.div(numerator, denominator, out=denominator)


def bias_like(module, z: torch.Tensor):
    """The module's bias shaped to broadcast against its output ``z`` (None without bias)."""
    bias = getattr(module, "bias", None)
    if bias is None:
        return None
    shape = [1] * z.dim()
    shape[z.dim() - 1 if isinstance(module, torch.nn.Linear) else 1] = -1
    return bias.detach().reshape(shape)
