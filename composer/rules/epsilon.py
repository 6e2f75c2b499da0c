"""The epsilon family as one hook: Z, Epsilon, StdX-Epsilon, SIGN and SIGN-mu.

All five are ``R_in = m(a) ⊙ Wᵀ (R ⊘ (z + ε·sgn z))`` with ``z = W a + b`` the layer's own output:

=============  ====================  =========================
rule           ε                     m(a)
=============  ====================  =========================
Z              0                     a
Epsilon        epsilon               a
StdX-Epsilon   stdfactor · std(a)    a
SIGN           0                     sign(a), sign(0) = +1
SIGN-mu        0                     +1 if a >= mu else -1
=============  ====================  =========================

Because the rule only rescales the gradient, the hook never re-runs the layer: it divides the
gradient arriving at the layer's output by the stabilised ``z`` (a pre-hook on the output's autograd
node), lets the layer's own backward apply ``Wᵀ``, and multiplies the result by ``m(a)``. That costs
a few elementwise operations per layer on top of a plain backward pass, and no stored copies:
``a`` and ``z`` are the tensors the forward pass made, guarded by autograd's version counters.
"""
from __future__ import annotations

import functools
import weakref

import torch
from zennit.core import Hook, Identity

from ..errors import ComposerError
from .base import SAFE_DIVIDE_EPS, register_hook, sign_map


def _bias_shape(module, z):
    bias = getattr(module, "bias", None)
    if bias is None:
        return None
    shape = [1] * z.dim()
    channel_dim = z.dim() - 1 if isinstance(module, torch.nn.Linear) else 1
    shape[channel_dim] = -1
    return bias.detach().reshape(shape)


def stabilized(z: torch.Tensor, eps) -> torch.Tensor:
    """``z + eps·sgn(z)`` (sgn 0 = +1), exact zeros replaced by SafeDivide's 1e-7; a new tensor.

    ``eps`` is a float or a per-sample tensor broadcastable to ``z``.

    Example
    -------
    >>> stabilized(torch.tensor([-1., 0., 2.]), 0.5)
    tensor([-1.5000,  0.5000,  2.5000])
    >>> stabilized(torch.tensor([0., 2.]), 0.0)
    tensor([1.0000e-07, 2.0000e+00])
    """
    if isinstance(eps, torch.Tensor):
        # copysign gives -eps only for z = -0.0, where every product a_i w_i is zero: no relevance moves
        den = torch.copysign(eps.to(z.dtype), z).add_(z)
        if bool((eps == 0).any()):
            den = torch.where(den == 0, SAFE_DIVIDE_EPS, den)
        return den
    if eps > 0:
        return torch.copysign(z.new_tensor(eps), z).add_(z)
    return torch.where(z == 0, SAFE_DIVIDE_EPS, z)


@register_hook
class EpsilonHook(Hook):
    """``R_in = m(a) ⊙ Wᵀ (R ⊘ (z + ε·sgn z))``, ε = epsilon + stdfactor · std(a) per sample.

    Parameters
    ----------
    epsilon : float
        Absolute stabiliser, added with the sign of ``z`` (``sgn 0 = +1``); 0 gives the Z rule.
    stdfactor : float
        Adds ``stdfactor × std(a)``, the population std over all elements of this layer's input,
        computed per sample (iNNvestigate's StdxEpsilon).
    sign : bool
        Replace the input factor ``a`` by ``+1 if a >= mu else -1`` (the SIGN / SIGN-mu rules).
    mu : float
        Threshold of SIGN-mu; ``mu = 0`` is SIGN.
    bias : bool
        Keep the bias in ``z`` (the reference does); False uses ``z - b``.

    Exactly-zero denominators are guarded as iNNvestigate's SafeDivide does (+1e-7).

    Example
    -------
    >>> import torch
    >>> layer = torch.nn.Linear(2, 1, bias=False); _ = layer.weight.data.copy_(torch.tensor([[1., 2.]]))
    >>> hook = EpsilonHook(epsilon=0.0); handles = hook.register(layer)
    >>> x = torch.tensor([[1., 1.]], requires_grad=True); z = layer(x)
    >>> torch.autograd.grad(z, x, z)[0]   # Z rule: R_in = a * w * R / z, sums to R = z = 3
    tensor([[1., 2.]])
    >>> handles.remove()
    """

    def __init__(self, epsilon: float = 0.0, stdfactor: float = 0.0, sign: bool = False, mu: float = 0.0,
                 bias: bool = True):
        super().__init__()
        self.kwargs = dict(epsilon=epsilon, stdfactor=stdfactor, sign=sign, mu=mu, bias=bias)
        #: set by the composite when an in-place ReLU overwrites z with max(z, 0) and that is exact
        #: (every rule above gives zero relevance to zero inputs, so R = 0 wherever z <= 0)
        self.relu_overwrites_output = False
        #: set by the composite when another in-place operation may overwrite z: keep a copy
        self.copy_output = False

    def copy(self):
        return type(self)(**self.kwargs)

    def __repr__(self):
        return f"EpsilonHook({', '.join(f'{k}={v!r}' for k, v in self.kwargs.items())})"

    def pre_forward(self, module, input):
        """Identity on the input for the backward hook point; no copy (its version is checked)."""
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
        """Nothing: the output's gradient is rescaled by a pre-hook registered in :meth:`forward`."""

    def forward(self, module, input, output):
        """Remember ``a``, ``z`` and ε; hook the output's autograd node."""
        if output.grad_fn is None:
            return
        a = input[0].detach()
        k = self.kwargs
        eps = k["epsilon"]
        if k["stdfactor"]:
            std = a.flatten(1).std(dim=1, unbiased=False).view(-1, *([1] * (output.dim() - 1)))
            eps = eps + k["stdfactor"] * std
        z = output.detach()
        store = self.stored_tensors
        store.update(a=a, a_version=a._version, z=z.clone() if self.copy_output else z, z_version=z._version,
                     eps=eps, module_name=type(module).__name__)
        hook_ref = weakref.ref(self)

        def scale_output_gradient(grad_outputs):
            hook = hook_ref()
            if hook is None or not hook.active:
                return None
            return (grad_outputs[0] / hook.denominator(module),) + tuple(grad_outputs[1:])

        self.tensor_handles.append(output.grad_fn.register_prehook(scale_output_gradient))

    def denominator(self, module) -> torch.Tensor:
        """The stabilised ``z`` (a temporary: made when the gradient arrives, freed after)."""
        store = self.stored_tensors
        z = store["z"]
        if not self.copy_output and z._version != store["z_version"] and not self.relu_overwrites_output:
            raise ComposerError(f"an in-place operation changed the output of a {store['module_name']} before "
                                "the backward pass; LRP needs it (use inplace=False)")
        if not self.kwargs["bias"]:
            bias = _bias_shape(module, z)
            z = z - bias if bias is not None else z
        return stabilized(z, store["eps"])

    def backward(self, module, grad_input, grad_output):
        """``Wᵀ s`` arrives as the gradient at the layer input; multiply it by ``m(a)``."""
        store = self.stored_tensors
        a = store["a"]
        if a._version != store["a_version"]:
            raise ComposerError(f"an in-place operation changed the input of a {store['module_name']} before "
                                "the backward pass; LRP needs it (use inplace=False)")
        factor = sign_map(a, self.kwargs["mu"]) if self.kwargs["sign"] else a
        return (grad_input[0] * factor,) + tuple(grad_input[1:])
