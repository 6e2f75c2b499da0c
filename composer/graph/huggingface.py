"""Hugging Face ``transformers`` models in a canonical twin: their functional parts as modules.

``transformers`` models do not trace with ``torch.fx`` in general, so their twin is explained with module
hooks (``docs/transformers.md``). What a rule must see is made a module here, on the twin only:

* **attention**: the twin's configuration names ``composer_lrp`` as its attention implementation, an
  attention function registered with ``transformers`` that computes eager attention with the attention
  module's :class:`~composer.graph.attention.Attention` child (added here), so ``q kᵀ``, softmax and
  ``weights · v`` are modules; grouped-query heads are repeated as eager attention does. Soft-capping,
  attention sinks and sliding windows are refused with a :class:`~composer.errors.ComposerError`;
* ``Conv1D`` (GPT-2's transposed linear layer) becomes ``torch.nn.Linear`` over the same storage;
* activation classes (``NewGELUActivation``, ``GELUActivation``, ``SiLUActivation``...) become their
  ``torch.nn`` equivalents and RMSNorm classes ``torch.nn.RMSNorm``, each only when a probe input gives
  the same numbers (to 1e-5), so a variant with other maths (Gemma's ``1 + weight``) stays itself and the
  coverage check names it;
* gated MLPs (``down_proj(act_fn(gate_proj(x)) * up_proj(x))``) get their product as
  :class:`~composer.graph.attention.Multiply`.

``transformers`` is never imported by composer: a model that is one already imported it.
"""
from __future__ import annotations

import sys
from typing import Optional

import torch
from torch import nn

from ..errors import ComposerError
from .attention import Attention, Multiply

IMPLEMENTATION = "composer_lrp"


def _transformers():
    return sys.modules.get("transformers")


def attention_forward(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """The ``composer_lrp`` attention implementation: eager attention through ``module.composer_attention``."""
    attention: Optional[Attention] = getattr(module, "composer_attention", None)
    if attention is None:
        raise ComposerError(f"{type(module).__name__} uses composer's attention implementation but has no "
                            "composer_attention module: only composer's canonical twins use it")
    for unsupported in ("softcap", "s_aux", "sinks"):
        if kwargs.get(unsupported) is not None:
            raise ComposerError(f"{type(module).__name__}: attention with {unsupported} has no LRP rule in composer "
                                "(an operation of the model without a rule)")
    if kwargs.get("sliding_window") is not None:
        raise ComposerError(f"{type(module).__name__}: sliding-window attention is not covered by composer's twin")
    groups = getattr(module, "num_key_value_groups", 1) or 1
    if groups > 1:
        key = key.repeat_interleave(groups, dim=1)
        value = value.repeat_interleave(groups, dim=1)
    mask = attention_mask
    if mask is not None:
        if mask.dtype == torch.bool:  # True = attend in transformers' boolean masks
            mask = ~mask
        from .attention import additive_mask
        mask = additive_mask(mask, query.dtype)[:, :, :, : key.shape[-2]]
    out = attention(query, key, value, mask, scaling)
    return out.transpose(1, 2).contiguous(), None


def _register(transformers) -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask

    if IMPLEMENTATION not in AttentionInterface._global_mapping:
        AttentionInterface.register(IMPLEMENTATION, attention_forward)
    if IMPLEMENTATION not in ALL_MASK_ATTENTION_FUNCTIONS:
        ALL_MASK_ATTENTION_FUNCTIONS.register(IMPLEMENTATION, eager_mask)


def _same(a: nn.Module, b: nn.Module, width: int) -> bool:
    probe = torch.linspace(-3, 3, 2 * width).reshape(2, width)
    with torch.no_grad():
        try:
            return bool(torch.allclose(a(probe), b(probe), atol=1e-5, rtol=1e-5))
        except Exception:  # noqa: BLE001 - a module that does not take the probe is not replaced
            return False


def _torch_equivalent(module: nn.Module, width: int) -> Optional[nn.Module]:
    """``torch.nn`` module computing what an activation or RMSNorm class of ``transformers`` computes."""
    name = type(module).__name__
    candidates = []
    if name.endswith("RMSNorm") and isinstance(getattr(module, "weight", None), torch.Tensor):
        eps = getattr(module, "variance_epsilon", getattr(module, "eps", None))
        if eps is not None and module.weight.dim() == 1:
            norm = nn.RMSNorm(module.weight.shape[0], eps=eps)
            norm.weight = nn.Parameter(module.weight.detach(), requires_grad=False)
            candidates.append((norm, module.weight.shape[0]))
    elif type(module).__module__.startswith("transformers.activations"):
        candidates += [(nn.GELU(approximate="tanh"), width), (nn.GELU(), width), (nn.SiLU(), width),
                       (nn.ReLU(), width), (nn.Tanh(), width), (nn.Sigmoid(), width)]
    for candidate, size in candidates:
        if _same(candidate, module, size):
            return candidate
    return None


def _conv1d_as_linear(conv) -> nn.Linear:
    layer = nn.Linear(conv.weight.shape[0], conv.weight.shape[1], bias=conv.bias is not None)
    layer.weight = nn.Parameter(conv.weight.detach().t(), requires_grad=False)
    if conv.bias is not None:
        layer.bias = nn.Parameter(conv.bias.detach(), requires_grad=False)
    return layer


class GatedMLP(nn.Module):
    """``down_proj(act_fn(gate_proj(x)) * up_proj(x))`` with the product as :class:`Multiply` (same submodules).

    Example
    -------
    >>> mlp = GatedMLP(nn.Linear(4, 6), nn.Linear(4, 6), nn.Linear(6, 4), nn.SiLU())
    >>> mlp(torch.ones(1, 4)).shape
    torch.Size([1, 4])
    """

    def __init__(self, gate_proj: nn.Module, up_proj: nn.Module, down_proj: nn.Module, act_fn: nn.Module):
        super().__init__()
        self.gate_proj, self.up_proj, self.down_proj, self.act_fn = gate_proj, up_proj, down_proj, act_fn
        self.multiply = Multiply()

    def forward(self, x):
        return self.down_proj(self.multiply(self.act_fn(self.gate_proj(x)), self.up_proj(x)))


def _gated_mlp(module: nn.Module, width: int) -> Optional[GatedMLP]:
    parts = [getattr(module, n, None) for n in ("gate_proj", "up_proj", "down_proj", "act_fn")]
    if not all(isinstance(p, nn.Module) for p in parts) or set(dict(module.named_children())) != {
            "gate_proj", "up_proj", "down_proj", "act_fn"}:
        return None
    gated = GatedMLP(*parts)
    return gated if _same(gated, module, parts[0].in_features) else None


def adapt_huggingface(twin: nn.Module) -> int:
    """Make the functional parts of the ``transformers`` models inside ``twin`` modules (see the module
    docstring); returns how many modules were added or replaced. A twin without such a model is left as it is.

    Example
    -------
    >>> adapt_huggingface(torch.nn.Linear(2, 2))
    0
    """
    transformers = _transformers()
    if transformers is None:
        return 0
    pretrained = [m for m in twin.modules() if isinstance(m, transformers.PreTrainedModel)]
    if not pretrained:
        return 0
    from transformers.pytorch_utils import Conv1D

    _register(transformers)
    count = 0
    for model in pretrained:
        model.config._attn_implementation = IMPLEMENTATION
        for sub in model.config.sub_configs if hasattr(model.config, "sub_configs") else ():
            sub_config = getattr(model.config, sub, None)
            if sub_config is not None and hasattr(sub_config, "_attn_implementation"):
                sub_config._attn_implementation = IMPLEMENTATION
    width = max((getattr(m.config, "hidden_size", 8) for m in pretrained), default=8)
    for parent in list(twin.modules()):          # leaves first: a gated MLP below takes the replaced ones
        for name, child in list(parent.named_children()):
            new = _conv1d_as_linear(child) if isinstance(child, Conv1D) else (
                _torch_equivalent(child, width) if not list(child.children()) else None)
            if new is not None:
                setattr(parent, name, new)
                count += 1
    for parent in list(twin.modules()):
        for name, child in list(parent.named_children()):
            new = _gated_mlp(child, width) if list(child.children()) else None
            if new is not None:
                setattr(parent, name, new)
                count += 1
        if _is_attention(parent):
            parent.composer_attention = Attention()
            count += 1
    return count


def _is_attention(module: nn.Module) -> bool:
    """A ``transformers`` attention module: it calls the configured attention function (its class is named
    ``...Attention`` and it has a config and a ``scaling`` or head size)."""
    name = type(module).__name__
    return name.endswith("Attention") and hasattr(module, "config") and type(module).__module__.startswith(
        "transformers.") and not isinstance(module, Attention)
