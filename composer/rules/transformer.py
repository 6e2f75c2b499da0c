"""AttnLRP and CP-LRP rules in the Gradient × Input framework (the *implicit* rules).

AttnLRP (Achtibat et al., ICML 2024) and CP-LRP (Ali et al., ICML 2022) are computed as LXT, the
authors' implementation, computes them: a backward pass of a *modified gradient* ``g`` from the target
logit (``g = 1`` there), and the relevance of any tensor ``x`` is ``x ⊙ g``. In that framework LRP-0 on
every linear map — linear layers, residual sums, constant shifts, rotary embeddings, reshapes — is the
plain gradient, so only the nonlinear operations need a rule:

================================  ===========================================  =====================
operation                         rule (relevance form)                        modified gradient
================================  ===========================================  =====================
elementwise ``y = f(x)``          identity: ``R_x = R_y``                      ``g · y / x``
LayerNorm / RMSNorm               identity on the scale: ``σ`` is a constant   ``Jᵀ g`` with ``σ`` fixed
softmax (AttnLRP)                 ``R_x = x ⊙ (R_s − s Σ R_s)``                 ``Jᵀ g`` (the gradient)
softmax (CP-LRP)                  none: attention weights are constants        ``0``
``a · b``, ``a @ b``              uniform: each operand gets half              ``½ Jᵀ g`` per operand
================================  ===========================================  =====================

These rules must only be combined with each other and with ``implicit_z`` (the plain gradient): a
relevance-domain rule of composer's other presets (``epsilon``, ``gamma``...) reads ``g`` as relevance.
The presets ``attnlrp`` and ``cp_lrp`` end with the ``x_input`` modifier that turns ``g`` into relevance.
"""
from __future__ import annotations

import inspect
from typing import Optional, Tuple

import torch
from zennit.core import Hook

from .base import DescribedHook, register_hook
from .gradient import GradientHook
from .rescale import RescaleHook


class _Implicit(torch.autograd.Function):
    """Identity on a module's output; its backward gives the module's inputs the hook's modified gradient."""

    @staticmethod
    def forward(ctx, hook, module, output, *inputs):
        ctx.hook, ctx.module, ctx.n_inputs = hook, module, len(inputs)
        if hook.keeps_output:
            ctx.save_for_backward(output, *inputs)
        elif hook.keeps_inputs:
            ctx.save_for_backward(*inputs)
        return output.view_as(output)

    @staticmethod
    def backward(ctx, grad):
        saved = [t.detach() for t in ctx.saved_tensors]
        output = saved.pop(0) if ctx.hook.keeps_output else None
        inputs = saved if saved else [None] * ctx.n_inputs
        grads = ctx.hook.input_gradients(ctx.module, tuple(inputs), output, grad)
        grads = tuple(grads) + (None,) * (ctx.n_inputs - len(grads))
        return (None, None, None) + grads


class ImplicitHook(DescribedHook, Hook):
    """Base of rules that replace a module's backward by :meth:`input_gradients` (the module's own backward
    is not used; its autograd graph is dropped right after the forward)."""

    #: what :meth:`input_gradients` reads: kept with ``save_for_backward`` until the backward pass
    keeps_output = True
    keeps_inputs = True

    def __init__(self, **kwargs):
        super().__init__()
        self.kwargs = kwargs

    def input_gradients(self, module, inputs: Tuple[torch.Tensor, ...], output: torch.Tensor,
                        grad: torch.Tensor) -> Tuple[Optional[torch.Tensor], ...]:  # pragma: no cover - abstract
        raise NotImplementedError

    def pre_forward(self, module, input):
        return None

    def post_forward(self, module, input, output):
        return None

    def forward(self, module, input, output):
        inputs = input if isinstance(input, tuple) else (input,)
        if not isinstance(output, torch.Tensor) or not any(
                isinstance(t, torch.Tensor) and t.requires_grad for t in inputs):
            return None
        return _Implicit.apply(self, module, output.detach(), *inputs)

    def backward(self, module, grad_input, grad_output):  # pragma: no cover - _Implicit does the work
        return None


@register_hook
class IdentityRuleHook(ImplicitHook):
    """AttnLRP's identity rule for an elementwise nonlinearity ``y = f(x)``: ``R_x = R_y``, as the gradient
    ``g_x = g_y · y / (x + ε)`` (LXT's ``identity_rule_implicit``, ε = 1e-10 by default).

    Example
    -------
    >>> gelu = torch.nn.GELU(); handles = IdentityRuleHook().register(gelu)
    >>> x = torch.tensor([-1., 2.], requires_grad=True)
    >>> y = gelu(x); g, = torch.autograd.grad(y, x, torch.ones(2))
    >>> torch.allclose(x * g, y.detach())          # relevance x·g equals y·1: passed through unchanged
    True
    >>> handles.remove()
    """

    def __init__(self, epsilon: float = 1e-10):
        super().__init__(epsilon=epsilon)

    def forward(self, module, input, output):
        x = input[0] if isinstance(input, tuple) else input
        if not isinstance(output, torch.Tensor) or not x.requires_grad:
            return None
        with torch.no_grad():   # the ratio is all the backward needs: one tensor kept, as LXT keeps
            ratio = output / (x + self.kwargs["epsilon"])
        return _Scaled.apply(output.detach(), x, ratio)


class _Scaled(torch.autograd.Function):
    """Identity on an elementwise module's output; its backward hands the input ``g · ratio``."""

    @staticmethod
    def forward(ctx, output, x, ratio):
        ctx.save_for_backward(ratio)
        return output.view_as(output)

    @staticmethod
    def backward(ctx, grad):
        ratio, = ctx.saved_tensors
        return None, grad * ratio, None


def _fixed_scale_forward(module, x: torch.Tensor) -> torch.Tensor:
    """The norm's output with its scale (``σ`` or ``rms``) detached: a linear map of ``x``."""
    if isinstance(module, torch.nn.LayerNorm):
        dims = tuple(range(-len(module.normalized_shape), 0))
        centred = x - x.mean(dim=dims, keepdim=True)
        std = (centred.pow(2).mean(dim=dims, keepdim=True) + module.eps).sqrt()
        y = centred / std.detach()
        if module.weight is not None:
            y = y * module.weight
        return y + module.bias if module.bias is not None else y
    if isinstance(module, torch.nn.RMSNorm):
        dims = tuple(range(-len(module.normalized_shape), 0))
        eps = module.eps if module.eps is not None else torch.finfo(x.dtype).eps
        y = x * torch.rsqrt(x.pow(2).mean(dim=dims, keepdim=True) + eps).detach()
        return y * module.weight if module.weight is not None else y
    raise TypeError(f"norm_identity covers LayerNorm and RMSNorm, not {type(module).__name__}")


@register_hook
class NormIdentityHook(ImplicitHook):
    """LayerNorm / RMSNorm with the normalising scale as a constant (AttnLRP's identity rule, CP-LRP's
    constant scale): the layer is then the linear map ``x ↦ w ⊙ (x − mean x) / σ + b`` (RMSNorm: ``w ⊙ x / rms``),
    and its gradient is that map's transpose (LXT's ``stop_gradient`` on ``σ``).

    Example
    -------
    >>> norm = torch.nn.LayerNorm(3, bias=False); handles = NormIdentityHook().register(norm)
    >>> x = torch.tensor([[1., 2., 4.]], requires_grad=True)
    >>> y = norm(x); g, = torch.autograd.grad(y, x, torch.ones(1, 3))
    >>> torch.allclose((x * g).sum(), y.sum(), atol=1e-6)    # LRP-0 on a linear map without bias: conserved
    True
    >>> handles.remove()
    """

    keeps_output = False

    def input_gradients(self, module, inputs, output, grad):
        with torch.enable_grad():
            x = inputs[0].detach().requires_grad_()
            y = _fixed_scale_forward(module, x)
            return torch.autograd.grad(y, x, grad)


@register_hook
class StopHook(ImplicitHook):
    """No relevance through the module (CP-LRP's softmax: attention weights are constants).

    Example
    -------
    >>> softmax = torch.nn.Softmax(-1); handles = StopHook().register(softmax)
    >>> x = torch.ones(1, 3, requires_grad=True)
    >>> torch.autograd.grad(softmax(x).sum() + x.sum(), x)[0]
    tensor([[1., 1., 1.]])
    >>> handles.remove()
    """

    keeps_output = keeps_inputs = False

    def input_gradients(self, module, inputs, output, grad):
        return (None,) * len(inputs)


@register_hook
class UniformHook(RescaleHook):
    """AttnLRP's uniform rule for a product of two computed tensors (``a @ b``, ``a * b``): each operand's
    relevance is its share of Gradient × Input, ``R_a = share_a · a ⊙ J_aᵀ g``. Shares ½, ½ split the
    relevance evenly (AttnLRP, LXT's ``divide_gradient``); 0, 1 hold ``a`` constant (CP-LRP's attention
    weights and gates), so ``b`` gets all of it.

    Example
    -------
    >>> from composer.graph.attention import Multiply
    >>> mul = Multiply(); handles = UniformHook().register(mul)
    >>> a = torch.tensor([2.], requires_grad=True); b = torch.tensor([3.], requires_grad=True)
    >>> ga, gb = torch.autograd.grad(mul(a, b), (a, b), torch.ones(1))
    >>> (a * ga).item(), (b * gb).item()          # 6 split in halves
    (3.0, 3.0)
    >>> handles.remove()
    """

    keeps_output = False
    multi_input = True

    def __init__(self, first: float = 0.5, second: float = 0.5):
        super().__init__(first=first, second=second)

    def output_gradient(self, state, module, relevance):
        return relevance

    def input_relevances(self, state, module, transposed):
        shares = (self.kwargs["first"], self.kwargs["second"])
        return tuple(None if grad is None or share == 0 else grad * share
                     for grad, share in zip(transposed, shares)) + tuple(transposed[2:])


@register_hook
class ImplicitZHook(GradientHook):
    """LRP-0 in the Gradient × Input framework: the module keeps its plain gradient (linear layers, sums,
    constant shifts). Unlike ``gradient`` it may be bound to residual sums of several inputs.

    Example
    -------
    >>> ImplicitZHook().register(torch.nn.Linear(2, 2))
    []
    """

    multi_input = True

    def copy(self):
        return ImplicitZHook()


def _zennit_gamma():
    from zennit.rules import Gamma

    return Gamma


_TAKES_KWARGS = "kwargs" in inspect.signature(_zennit_gamma().forward).parameters


@register_hook
class ImplicitGammaHook(DescribedHook, _zennit_gamma()):
    """zennit's LRP-gamma rule inside the Gradient × Input framework, as LXT applies it to the linear layers and
    convolutions of vision transformers: the arriving gradient becomes relevance (``R = g ⊙ z``), zennit's
    ``Gamma`` redistributes it, and the input relevance becomes a gradient again (``g = R ⊘ x``, x stabilised
    by 1e-10) - LXT's ``monkey_patch_zennit``, for this rule's modules only.

    Example
    -------
    >>> ImplicitGammaHook(gamma=0.25).copy()
    ImplicitGammaHook(gamma=0.25, stabilizer=1e-06)
    """

    def __init__(self, gamma: float = 0.25, stabilizer: float = 1e-6):
        super().__init__(gamma=gamma, stabilizer=stabilizer)
        self.kwargs = {"gamma": gamma, "stabilizer": stabilizer}

    def forward(self, module, input, output):
        if _TAKES_KWARGS:   # zennit 1.0's BasicHook.forward(module, args, kwargs, output); 0.5's (module, input, output)
            super().forward(module, input, {}, output)
        else:
            super().forward(module, input, output)
        self.stored_tensors["output"] = output.detach()

    def backward(self, module, grad_input, grad_output):
        from zennit.core import stabilize

        relevance = super().backward(module, grad_input, (grad_output[0] * self.stored_tensors["output"],))
        x = self.stored_tensors["input"][0].detach()
        return tuple(None if r is None else r / stabilize(x, epsilon=1e-10) for r in relevance)
