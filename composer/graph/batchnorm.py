"""Merging batch norms (and biases written apart) into the linear layers that feed them, by the graph's edges.

An eval-mode batch norm is the affine map ``y = s ⊙ (x − μ) + β``, ``s = γ / √(σ² + ε)``. When ``x``
is the output of a convolution or dense layer that nothing else reads, the two are one linear layer
with weight ``s ⊙ W`` and bias ``s ⊙ (b − μ) + β``: LRP rules then see the layer the batch norm
belongs to, as the reference's (Keras-fused) models do. When ``x`` is a concatenation of such
layers' outputs, the merge is split per input. Any other batch norm (DenseNet's, which follows a
concatenation of earlier blocks' outputs and precedes its convolution) stays a layer of its own,
which ``lrp_base`` binds to the ``z`` rule: relevance is redistributed in proportion to each
channel's contribution ``s ⊙ x`` to its output, as iNNvestigate does.

A bias kept as a separate tensor (``conv(x) + self.b``, ``linear(x) - c``, a constant per output
channel) is the layer's bias too: :func:`merge_biases` moves it into the layer, so its rule sees the
same layer as with ``bias=True``.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
import torch.fx as fx
import zennit.types
from torch import nn

from .modules import ElementwiseConstant
from .twin import share_module

MERGEABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _affine(bn: nn.Module) -> Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``(scale, mean, shift)`` of an eval-mode batch norm ``y = (x − mean) · scale + shift``, or None
    when it normalises by batch statistics."""
    if bn.running_mean is None or bn.running_var is None:
        return None
    scale = (bn.running_var + bn.eps) ** .5
    scale = (bn.weight.detach() if bn.weight is not None else torch.ones_like(scale)) / scale
    shift = bn.bias.detach() if bn.bias is not None else torch.zeros_like(scale)
    return scale, bn.running_mean, shift


def _fused(layer: nn.Module, scale: torch.Tensor, mean: torch.Tensor, shift: torch.Tensor) -> nn.Module:
    """A copy of ``layer`` followed by the channel-wise affine map (new parameters, same class).

    The arithmetic is zennit's (``MergeBatchNorm``), in the layer's precision, so both give the same bits.
    """
    fused = share_module(layer)
    weight = layer.weight.detach()
    bias = layer.bias.detach() if layer.bias is not None else torch.zeros_like(mean)
    fused.weight = nn.Parameter(weight * scale[(slice(None),) + (None,) * (weight.dim() - 1)], requires_grad=False)
    fused.bias = nn.Parameter((bias - mean) * scale + shift, requires_grad=False)
    return fused


def _exclusive_layer(gm: fx.GraphModule, node, reader: fx.Node) -> Optional[nn.Module]:
    """The mergeable layer that computes ``node``, if ``reader`` is its only reader."""
    if not isinstance(node, fx.Node) or node.op != "call_module" or list(node.users) != [reader]:
        return None
    layer = gm.get_submodule(node.target)
    return layer if isinstance(layer, MERGEABLE) else None


def _fits(plan, bn: nn.Module) -> bool:
    """Whether the layers' output channels, in order, are the batch norm's channels: each layer read once
    (``cat([y, y])`` reads one layer twice) and their channel counts summing to the batch norm's.
    A dense layer's features are its output's last axis, a batch norm's channels its second: on
    ``(batch, tokens, features)`` they differ, and where the counts happen to agree the twin's check
    against the model refuses the result (:func:`composer.graph.check.check_twin`)."""
    layers = [layer for _, layer in plan]
    return len({id(n) for n, _ in plan}) == len(plan) and sum(map(_channels, layers)) == bn.num_features


def _swap(gm: fx.GraphModule, path: str, module: nn.Module) -> None:
    """Put ``module`` at ``path`` in place of the layer there (the graph's node keeps calling ``path``)."""
    scope, _, name = path.rpartition(".")
    setattr(gm.get_submodule(scope) if scope else gm, name, module)


def _channels(layer: nn.Module) -> int:
    return layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels


def merge_batchnorms(gm: fx.GraphModule, origin: Dict[str, str], aliases: Dict[str, str]) -> List[str]:
    """Merge every batch norm that directly follows linear layers; returns the paths of those kept.

    ``origin`` learns what each fused layer is; ``aliases`` maps a merged batch norm's path to the
    layer whose output now stands for its output (when there is one such layer).
    """
    kept = []
    for node in list(gm.graph.nodes):
        if node.op != "call_module":
            continue
        bn = gm.get_submodule(node.target)
        if not isinstance(bn, zennit.types.BatchNorm):
            continue
        affine = _affine(bn)
        source = node.args[0] if node.args else None
        plan = _merge_plan(gm, source, node) if affine is not None else None
        if plan is None or not _fits(plan, bn):
            kept.append(node.target)
            continue
        scale, mean, shift = affine
        start = 0
        for layer_node, layer in plan:
            stop = start + _channels(layer)
            _swap(gm, layer_node.target, _fused(layer, scale[start:stop], mean[start:stop], shift[start:stop]))
            origin[layer_node.target] = f"{origin.get(layer_node.target, layer_node.target)} + {node.target}"
            start = stop
        if len(plan) == 1:
            aliases[node.target] = plan[0][0].target
        node.replace_all_uses_with(source)
        gm.graph.erase_node(node)
    return kept


def _merge_plan(gm: fx.GraphModule, source, bn_node: fx.Node):
    """``[(layer node, layer)]`` whose outputs make up the batch norm's input, or None."""
    layer = _exclusive_layer(gm, source, bn_node)
    if layer is not None:
        return [(source, layer)]
    if not (isinstance(source, fx.Node) and source.op == "call_function" and source.target is torch.cat
            and list(source.users) == [bn_node]):
        return None
    parts = source.args[0] if source.args else source.kwargs.get("tensors")
    dim = source.args[1] if len(source.args) > 1 else source.kwargs.get("dim", 0)
    if dim != 1 or not isinstance(parts, (list, tuple)):
        return None
    plan = []
    for part in parts:
        layer = _exclusive_layer(gm, part, source)
        if layer is None:
            return None
        plan.append((part, layer))
    return plan


def _per_channel(layer: nn.Module, constant) -> Optional[torch.Tensor]:
    """``constant`` as one value per output channel of ``layer``, if adding it to the output adds that
    value to each channel and changes no shape; else None."""
    channels = _channels(layer)
    dims = 2 if isinstance(layer, nn.Linear) else layer.weight.dim()   # a dense layer: at least (batch, features)
    t = torch.as_tensor(constant, dtype=layer.weight.dtype, device=layer.weight.device)
    shape = (1,) * (dims - t.dim()) + tuple(t.shape)
    if t.dim() > dims or t.numel() not in (1, channels):
        return None
    axis = dims - 1 if isinstance(layer, nn.Linear) else 1
    if any(size != 1 for i, size in enumerate(shape) if i != axis):
        return None
    return t.reshape(-1).expand(channels)


def merge_biases(gm: fx.GraphModule, origin: Dict[str, str], aliases: Dict[str, str]) -> None:
    """Move every constant added to (or subtracted from) a layer's output, one per channel, into the
    layer's bias, when that sum is the output's only reader."""
    for node in list(gm.graph.nodes):
        if node.op != "call_module":
            continue
        shift = gm.get_submodule(node.target)
        source = node.args[0] if node.args else None
        if not isinstance(shift, ElementwiseConstant) or shift.op not in ("add", "sub"):
            continue
        layer = _exclusive_layer(gm, source, node)
        value = _per_channel(layer, shift.constant) if layer is not None else None
        if value is None:
            continue
        value = -value if shift.op == "sub" else value
        fused = share_module(layer)
        bias = layer.bias.detach() if layer.bias is not None else torch.zeros_like(value)
        fused.bias = nn.Parameter(bias + value, requires_grad=False)
        _swap(gm, source.target, fused)
        origin[source.target] = f"{origin.get(source.target, source.target)} + {origin.get(node.target, node.target)}"
        aliases[node.target] = source.target
        node.replace_all_uses_with(source)
        gm.graph.erase_node(node)
