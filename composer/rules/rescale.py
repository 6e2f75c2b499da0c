"""The shared mechanism of composer's fast rules: rescale the gradient, let the layer do the transpose.

A :class:`RescaleHook` sees the relevance ``R`` arriving at its layer's output (a pre-hook on the
output's autograd node) and returns what the layer's *own* backward should transpose; it then sees
that transpose arrive at the layer's input (zennit's Identity hook point) and returns the input
relevance. No forward pass is repeated and nothing is copied: ``a`` and ``z`` are the tensors the
forward pass made, guarded by autograd's version counters.
"""
from __future__ import annotations

import functools
import weakref

import torch
from zennit.core import Hook, Identity

from ..errors import ComposerError


class RescaleHook(Hook):
    """Base class: subclasses implement :meth:`output_gradient` and :meth:`input_relevance`."""

    def __init__(self, **kwargs):
        super().__init__()
        self.kwargs = kwargs
        #: set by the composite when an in-place ReLU overwrites z with max(z, 0) and that is exact
        #: (every later rule gives zero relevance to zero inputs, so R = 0 wherever z <= 0)
        self.relu_overwrites_output = False
        #: set by the composite when another in-place operation may overwrite z: keep a copy
        self.copy_output = False

    def copy(self):
        return type(self)(**self.kwargs)

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.kwargs.items())})"

    # ------------------------------------------------------------------ subclass interface
    def prepare(self, module, a: torch.Tensor, z: torch.Tensor) -> None:
        """Forward time: compute what the backward needs (into ``self.stored_tensors``)."""

    def output_gradient(self, module, relevance: torch.Tensor) -> torch.Tensor:
        """What the layer's own backward should transpose, given the relevance at its output."""
        raise NotImplementedError

    def input_relevance(self, module, transposed: torch.Tensor) -> torch.Tensor:
        """The relevance at the layer's input, given the layer's transpose of :meth:`output_gradient`."""
        raise NotImplementedError

    # ------------------------------------------------------------------ stored tensors
    def input_tensor(self) -> torch.Tensor:
        store = self.stored_tensors
        if store["a"]._version != store["a_version"]:
            raise ComposerError(f"an in-place operation changed the input of a {store['module_name']} before the "
                                "backward pass; LRP needs it (use inplace=False)")
        return store["a"]

    def output_tensor(self) -> torch.Tensor:
        store = self.stored_tensors
        z = store["z"]
        if not self.copy_output and z._version != store["z_version"] and not self.relu_overwrites_output:
            raise ComposerError(f"an in-place operation changed the output of a {store['module_name']} before the "
                                "backward pass; LRP needs it (use inplace=False)")
        return z

    # ------------------------------------------------------------------ zennit Hook plumbing
    def pre_forward(self, module, input):
        """An Identity on the input gives the backward hook point; no copy (its version is checked)."""
        hook_ref = weakref.ref(self)

        @functools.wraps(self.backward)
        def wrapper(grad_input, grad_output):
            hook = hook_ref()
            if hook is not None and hook.active:
                return hook.backward(module, grad_input, None)
            return None

        if not isinstance(input, tuple):
            input = (input,)
        if not input[0].requires_grad:
            return None
        post_input = Identity.apply(*input)
        self.tensor_handles.append(post_input[0].grad_fn.register_hook(wrapper))
        return post_input

    def post_forward(self, module, input, output):
        """Nothing: the output gradient is handled by the pre-hook registered in :meth:`forward`."""

    def forward(self, module, input, output):
        if output.grad_fn is None:
            return
        a, z = input[0].detach(), output.detach()
        self.stored_tensors.update(a=a, a_version=a._version, z=z.clone() if self.copy_output else z,
                                   z_version=z._version, module_name=type(module).__name__)
        self.prepare(module, a, z)
        hook_ref = weakref.ref(self)

        def on_output_gradient(grad_outputs):
            hook = hook_ref()
            if hook is None or not hook.active:
                return None
            return (hook.output_gradient(module, grad_outputs[0]),) + tuple(grad_outputs[1:])

        self.tensor_handles.append(output.grad_fn.register_prehook(on_output_gradient))

    def backward(self, module, grad_input, grad_output):
        relevance = self.input_relevance(module, grad_input[0])
        self.stored_tensors.clear()  # this layer is done: let its activations go, as autograd does
        return (relevance,) + tuple(grad_input[1:])


def bias_like(module, z: torch.Tensor):
    """The module's bias shaped to broadcast against its output ``z`` (None without bias)."""
    bias = getattr(module, "bias", None)
    if bias is None:
        return None
    shape = [1] * z.dim()
    shape[z.dim() - 1 if isinstance(module, torch.nn.Linear) else 1] = -1
    return bias.detach().reshape(shape)
