"""The shared mechanism of composer's fast rules: rescale the gradient, let the layer do the transpose.

A :class:`RescaleHook` sees the relevance ``R`` arriving at its layer's output (a pre-hook on the
output's autograd node) and returns what the layer's *own* backward should transpose; it then sees
that transpose arrive at the layer's input (zennit's Identity hook point) and returns the input
relevance. No forward pass is repeated and nothing is copied: ``a`` and ``z`` are the tensors the
forward pass made, guarded by autograd's version counters.
"""
from __future__ import annotations

import functools
import threading
import weakref

import torch
from zennit.core import Hook, Identity

from ..errors import ComposerError


class CallState(dict):
    """What one call of a hooked module leaves for its backward: ``a``, ``z`` and the rule's own values.

    Every forward call gets its own state, held only by the autograd nodes of that call, so a
    module called at several sites, several backward passes through one forward
    (``retain_graph=True``) and ``create_graph=True`` each see the tensors of their own call.
    """

    def input(self) -> torch.Tensor:
        """The layer's input ``a``, checked not to have been changed in place since the forward."""
        if self["a"]._version != self["a_version"]:
            raise ComposerError(f"an in-place operation changed the input of a {self['module_name']} before the "
                                "backward pass; LRP needs it (use inplace=False)")
        return self["a"]

    def output(self) -> torch.Tensor:
        """The layer's output ``z`` (checked as :meth:`input`, unless an exact ReLU overwrote it)."""
        z = self["z"]
        if z._version != self["z_version"] and not self["z_may_change"]:
            raise ComposerError(f"an in-place operation changed the output of a {self['module_name']} before the "
                                "backward pass; LRP needs it (use inplace=False)")
        return z


class RescaleHook(Hook):
    """Base class: subclasses implement :meth:`output_gradient` and :meth:`input_relevance`.

    Both receive the :class:`CallState` of the forward call whose backward is running.
    """

    def __init__(self, **kwargs):
        super().__init__()
        self.kwargs = kwargs
        #: set by the composite when an in-place ReLU overwrites z with max(z, 0) and that is exact
        #: (every later rule gives zero relevance to zero inputs, so R = 0 wherever z <= 0)
        self.relu_overwrites_output = False
        #: set by the composite when another in-place operation may overwrite z: keep a copy
        self.copy_output = False
        self._local = threading.local()

    #: whether the backward needs the layer's output ``z`` (kept from the forward); a hook that
    #: recomputes it cheaply sets this False, so the output is not held until the backward
    keeps_output = True
    #: whether the rule gives relevance to every input of a module with several (a residual ``Add``);
    #: a rule that only handles the first must not be bound to such a module
    multi_input = False

    def copy(self):
        return type(self)(**self.kwargs)

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.kwargs.items())})"

    # ------------------------------------------------------------------ subclass interface
    def prepare(self, state: CallState, module, a: torch.Tensor, z: torch.Tensor) -> None:
        """Forward time: compute what the backward needs (into ``state``)."""

    def output_gradient(self, state: CallState, module, relevance: torch.Tensor) -> torch.Tensor:
        """What the layer's own backward should transpose, given the relevance at its output."""
        raise NotImplementedError

    def input_relevance(self, state: CallState, module, transposed: torch.Tensor) -> torch.Tensor:
        """The relevance at the layer's input, given the layer's transpose of :meth:`output_gradient`."""
        raise NotImplementedError

    # ------------------------------------------------------------------ zennit Hook plumbing
    def _pending(self) -> list:
        """States of this thread's forward calls that have entered the module but not left it."""
        pending = getattr(self._local, "pending", None)
        if pending is None:
            pending = self._local.pending = []
        return pending

    def pre_forward(self, module, input):
        """An Identity on the input gives the backward hook point; no copy (its version is checked)."""
        state = CallState()
        self._pending().append(state)
        hook_ref = weakref.ref(self)

        @functools.wraps(self.backward)
        def wrapper(grad_input, grad_output):
            hook = hook_ref()
            if hook is not None and hook.active and "a" in state:
                return hook.backward(state, module, grad_input)
            return None

        if not isinstance(input, tuple):
            input = (input,)
        if not any(isinstance(t, torch.Tensor) and t.requires_grad for t in input):
            return None
        post_input = Identity.apply(*input)
        self.tensor_handles.append(post_input[0].grad_fn.register_hook(wrapper))
        return post_input

    def post_forward(self, module, input, output):
        """Nothing: the output gradient is handled by the pre-hook registered in :meth:`forward`."""

    def forward(self, module, input, output):
        pending = self._pending()
        state = pending.pop() if pending else CallState()
        if output.grad_fn is None:
            return
        inputs = tuple(t.detach() for t in input)
        a, z = inputs[0], output.detach() if self.keeps_output else output.new_empty(0)
        state.update(a=a, a_version=a._version, inputs=inputs, z=z.clone() if self.copy_output else z,
                     z_version=z._version, z_may_change=self.copy_output or self.relu_overwrites_output,
                     module_name=type(module).__name__)
        self.prepare(state, module, a, z)
        hook_ref = weakref.ref(self)

        def on_output_gradient(grad_outputs):
            hook = hook_ref()
            if hook is None or not hook.active:
                return None
            return (hook.output_gradient(state, module, grad_outputs[0]),) + tuple(grad_outputs[1:])

        self.tensor_handles.append(output.grad_fn.register_prehook(on_output_gradient))

    def input_relevances(self, state: CallState, module, transposed: tuple) -> tuple:
        """The relevance at each input of the layer; the default handles the first (a layer's only) input."""
        return (self.input_relevance(state, module, transposed[0]),) + tuple(transposed[1:])

    def backward(self, state: CallState, module, grad_input):
        return self.input_relevances(state, module, tuple(grad_input))


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
