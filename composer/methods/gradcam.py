"""Grad-CAM for 2-D images and 1-D signals, with the reference's resizing conventions."""
from __future__ import annotations

from typing import Literal, Optional

import torch
import torch.nn.functional as F
import zennit.layer
import zennit.types

from ..errors import ComposerError, closest
from ..graph.canonical import graph_info
from ..graph.modules import Add
from .base import attributor
from ..selectors import ElementwiseActivation


def _target_layer(model: torch.nn.Module, layer: Optional[str], fuse_activation: bool) -> torch.nn.Module:
    """The module whose output Grad-CAM weighs: the one named, or the default described in :func:`grad_cam`."""
    modules = dict(model.named_modules())
    info = graph_info(model)
    if layer is not None:
        name = layer
        if info is not None:  # a merged batch norm's output is its layer's; a shared module's last call
            name = info.aliases.get(name, name)
            name = info.sites.get(name, [name])[-1]
        if name not in modules:
            raise ComposerError(f"the model has no module named '{layer}'", field="layer",
                                suggestions=closest(layer, [n for n in modules if n]))
        return modules[name]
    if info is not None and info.traced:
        return model.get_submodule(_graph_default(model, fuse_activation).target)
    convs = [m for m in modules.values() if isinstance(m, zennit.types.Convolution)]
    if not convs:
        raise ComposerError(f"Grad-CAM needs a convolution layer; {type(model).__name__} has none "
                            "(name another layer with layer=...)")
    return convs[-1]


def _graph_default(model, fuse_activation: bool):
    """The last convolution's node, followed while its only reader is its batch norm, activation,
    residual sum or concatenation: the activated feature map the reference's fused layer outputs."""
    convs = [n for n in model.graph.nodes if n.op == "call_module"
             and isinstance(model.get_submodule(n.target), zennit.types.Convolution)]
    if not convs:
        raise ComposerError(f"Grad-CAM needs a convolution layer; {model.composer_graph.model_type} has none "
                            "(name another layer with layer=...)")
    node = last = convs[-1]
    follow = (zennit.types.BatchNorm, zennit.layer.Sum, Add) + ((ElementwiseActivation,) if fuse_activation else ())
    while len(node.users) == 1:
        (user,) = node.users
        if user.op == "call_module" and isinstance(model.get_submodule(user.target), follow):
            node = last = user
        elif user.op == "call_function" and user.target is torch.cat:
            node = user
        else:
            break
    return last


@attributor("grad_cam")
def grad_cam(backprop, x: torch.Tensor, target: torch.Tensor, layer: Optional[str] = None,
             fuse_activation: bool = True, mode: Literal["image", "timeseries"] = "image"):
    """``ReLU(Σ_k w_k A_k)``, ``w_k`` = mean over positions of ``∂z_c/∂A_k``, scaled to max 1, resized.

    ``layer``: a module name of the model; default the last convolution's output as the graph uses it:
    after its batch norm, residual sum and (with ``fuse_activation``, as Keras fuses it into the
    layer) activation. With ``fuse_activation`` an activation applied directly to a named layer's
    output is included too.
    ``mode="image"`` resizes with linear interpolation and half-pixel centres (OpenCV's
    ``INTER_LINEAR``); ``mode="timeseries"`` resamples with ``align_corners=True`` (scipy's
    ``interp1d`` on ``linspace``). A map whose maximum is 0 stays 0. The result has one channel:
    ``(N, 1, *spatial)``.
    """
    module = _target_layer(backprop.model, layer, fuse_activation)
    found = {}

    def keep_output(mod, inputs, output):
        found["conv"] = output

    def keep_activation(mod, inputs, output):
        if fuse_activation and "conv" in found and inputs and inputs[0] is found["conv"]:
            found["act"] = output

    handles = [module.register_forward_hook(keep_output)]
    handles += [m.register_forward_hook(keep_activation) for m in backprop.model.modules()
                if isinstance(m, zennit.types.Activation) and m is not module]
    try:
        with torch.enable_grad():
            xr = x.detach().requires_grad_(True)
            out = backprop.logits(xr)
            acts = found.get("act", found.get("conv"))
            if acts is None:
                raise ComposerError("the Grad-CAM layer was not used in the forward pass")
            target = backprop.checked(target, out)
            grad_out = torch.zeros_like(out).scatter_(1, target[:, None], 1.0)
            (grads,) = torch.autograd.grad(out, acts, grad_out)
    finally:
        for h in handles:
            h.remove()
    acts = acts.detach()
    if acts.dim() < 3:
        raise ComposerError(f"Grad-CAM needs a layer with spatial axes; '{layer}' gives shape {tuple(acts.shape)}")
    weights = grads.mean(dim=tuple(range(2, grads.dim())), keepdim=True)
    cam = torch.relu((weights * acts).sum(1, keepdim=True))
    peak = cam.flatten(1).amax(1).view(-1, *([1] * (cam.dim() - 1)))
    cam = torch.where(peak > 0, cam / torch.where(peak > 0, peak, torch.ones_like(peak)), torch.zeros_like(cam))
    resize = {3: "linear", 4: "bilinear"}.get(cam.dim(), "trilinear")
    return F.interpolate(cam, size=tuple(x.shape[2:]), mode=resize, align_corners=(mode == "timeseries"))
