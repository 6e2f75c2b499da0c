"""DeepLIFT with the Rescale rule (Shrikumar et al. 2017), as the seed's DeepLiftAnalyzer describes."""
from __future__ import annotations

from typing import Annotated, Any

import torch
import zennit.types
from pydantic import Field

from .base import Backprop, _baseline, attributor


@attributor("deeplift")
def deeplift(backprop, x: torch.Tensor, target: torch.Tensor, baseline: Any = "zero", tolerance: Annotated[float, Field(ge=0, le=1)] = 1e-6):
    """``(x − x₀) ⊙ m``, where ``m`` is the gradient with every activation's derivative replaced by
    its Rescale multiplier ``(f(u) − f(u₀)) / (u − u₀)`` (the derivative where ``|u − u₀| <= tolerance``).

    Linear layers and pooling pass the gradient. On a network of linear layers and ReLUs the
    attributions sum to ``f(x)[c] − f(x₀)[c]`` (summation to delta); on a linear model they equal
    gradient × (input − baseline).
    """
    model = backprop.model
    base = _baseline(x, baseline)
    target = backprop.resolve(x, target)
    activations = [m for m in model.modules() if isinstance(m, zennit.types.Activation)]
    reference = {}  # module -> list of (input, output) at the baseline, in call order
    state = {"phase": "baseline", "input": {}}   # hooks do nothing in the "derivative" phase

    def pre(mod, inputs):
        if state["phase"] != "derivative":
            state["input"][mod] = inputs[0].detach().clone()

    def post(mod, inputs, output):
        if state["phase"] == "derivative":
            return None
        u = state["input"].pop(mod)
        if state["phase"] == "baseline":
            reference.setdefault(mod, []).append((u, output.detach().clone()))
            return None
        u0, y0 = reference[mod].pop(0)   # the baseline's values of the same call
        du = u - u0
        with torch.enable_grad():
            probe = u.detach().requires_grad_(True)
            state["phase"] = "derivative"
            try:
                y = mod(probe.clone())
                (deriv,) = torch.autograd.grad(y.sum(), probe)
            finally:
                state["phase"] = "input"
        big = du.abs() > tolerance
        slope = torch.where(big, (output.detach() - y0) / torch.where(big, du, torch.ones_like(du)), deriv)
        return output.detach() + (inputs[0] - inputs[0].detach()) * slope if inputs[0].requires_grad else output

    inplace = [m for m in activations if getattr(m, "inplace", False)]
    for m in inplace:  # an in-place activation would overwrite the input the multiplier needs
        m.inplace = False
    handles = [m.register_forward_pre_hook(pre) for m in activations]
    handles += [m.register_forward_hook(post) for m in activations]
    try:
        with torch.no_grad():
            backprop.logits(base)
        state["phase"] = "input"
        # one pass over the whole batch: the baseline activations above are matched call by call
        grad = Backprop(model).gradient(x, target, "one")
    finally:
        for h in handles:
            h.remove()
        for m in inplace:
            m.inplace = True
    return (x - base) * grad

