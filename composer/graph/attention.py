"""Attention as modules: what graph canonization puts where a transformer multiplies computed tensors.

A rule binds to a module, and attention is made of functions: two matrix products of computed tensors
and a softmax. So the canonical twin of a transformer computes attention with :class:`Attention`, a
container of three modules a preset can bind rules to by type — ``scores`` (:class:`MatMul`, ``q kᵀ``
with its scaling), ``softmax`` (``torch.nn.Softmax``) and ``context`` (:class:`MatMul`, weights times
values) — and gated MLPs multiply with :class:`Multiply`. What is replaced (:func:`expose_attention`,
run on the twin before tracing; the user's model is never changed):

* ``torch.nn.MultiheadAttention`` (without ``add_bias_kv`` / ``add_zero_attn``) by
  :class:`MultiheadAttention`, the same weights as ``q``/``k``/``v`` :class:`~torch.nn.Linear` layers;
* ``torch.nn.TransformerEncoderLayer`` by :class:`EncoderLayer` (same submodules, no fast path), so the
  residual sums are traced;
* in a Hugging Face ``transformers`` model (:func:`composer.graph.huggingface.adapt_huggingface`): the attention
  function (an attention implementation registered with ``transformers``), ``Conv1D`` (GPT-2),
  the activation classes and RMSNorm classes, and gated MLPs.

Each module computes what the original computes (float rounding aside); its backward is the plain
gradient until a rule is bound to it.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn
import torch.nn.functional as F


class MatMul(nn.Module):
    """``(a @ b) * scale``: a matrix product of two computed tensors (attention scores, attention context).

    Example
    -------
    >>> MatMul(scale=0.5)(torch.ones(1, 2, 3), torch.ones(1, 3, 2))
    tensor([[[1.5000, 1.5000],
             [1.5000, 1.5000]]])
    """

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.scale = scale

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        out = torch.matmul(a, b)
        return out if self.scale == 1.0 else out * self.scale

    def extra_repr(self) -> str:
        return f"scale={self.scale:g}"


class Multiply(nn.Module):
    """``a * b`` of two computed tensors (the gate of a gated MLP).

    Example
    -------
    >>> Multiply()(torch.tensor([2.]), torch.tensor([3.]))
    tensor([6.])
    """

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a * b


def additive_mask(mask: Optional[torch.Tensor], dtype: torch.dtype) -> Optional[torch.Tensor]:
    """A boolean (True = masked) or float mask as an additive float mask with finite values.

    ``-inf`` becomes the dtype's lowest number, so rules that multiply by the softmax input read 0, not NaN.

    Example
    -------
    >>> additive_mask(torch.tensor([False, True]), torch.float32)
    tensor([ 0.0000e+00, -3.4028e+38])
    """
    if mask is None:
        return None
    low = torch.finfo(dtype).min
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, low)
    return mask.to(dtype).clamp(min=low)


class Attention(nn.Module):
    """Scaled dot-product attention, ``softmax(q kᵀ · scale + mask) v``, as three modules.

    ``q``, ``k``, ``v`` are ``(..., tokens, head_dim)``; the mask is additive (see :func:`additive_mask`).

    Example
    -------
    >>> attention = Attention()
    >>> q = k = v = torch.randn(1, 2, 4, 8)
    >>> torch.allclose(attention(q, k, v), F.scaled_dot_product_attention(q, k, v), atol=1e-6)
    True
    """

    def __init__(self, causal: bool = False):
        super().__init__()
        self.causal = causal
        self.scores = MatMul()
        self.softmax = nn.Softmax(dim=-1)
        self.context = MatMul()

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Optional[torch.Tensor] = None,
                scale: Optional[float] = None, need_weights: bool = False):
        self.scores.scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
        scores = self.scores(q, k.transpose(-2, -1))
        if mask is not None:
            if mask.dtype == torch.bool:   # scaled_dot_product_attention's boolean masks: True = attend
                mask = additive_mask(~mask, scores.dtype)
            scores = scores + mask
        if self.causal:
            rows, cols = scores.shape[-2], scores.shape[-1]
            future = torch.ones(rows, cols, dtype=torch.bool, device=scores.device).triu(cols - rows + 1)
            scores = scores + additive_mask(future, scores.dtype)
        weights = self.softmax(scores)
        out = self.context(weights, v)
        return (out, weights) if need_weights else out


class MultiheadAttention(nn.Module):
    """``torch.nn.MultiheadAttention`` (eval mode) with its projections as ``Linear`` layers and its attention
    as :class:`Attention`; same weights (shared), same outputs.

    Example
    -------
    >>> mha = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    >>> x = torch.randn(3, 5, 8)
    >>> twin = MultiheadAttention.from_module(mha)
    >>> torch.allclose(twin(x, x, x)[0], mha(x, x, x)[0], atol=1e-6)
    True
    """

    def __init__(self, embed_dim: int, num_heads: int, batch_first: bool, q_proj: nn.Linear, k_proj: nn.Linear,
                 v_proj: nn.Linear, out_proj: nn.Linear):
        super().__init__()
        self.embed_dim, self.num_heads, self.batch_first = embed_dim, num_heads, batch_first
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = q_proj, k_proj, v_proj, out_proj
        self.attention = Attention()

    @staticmethod
    def supports(mha: nn.MultiheadAttention) -> bool:
        """Whether :meth:`from_module` can stand for ``mha`` (no ``add_bias_kv``, no ``add_zero_attn``)."""
        return mha.bias_k is None and mha.bias_v is None and not mha.add_zero_attn

    @classmethod
    def from_module(cls, mha: nn.MultiheadAttention) -> "MultiheadAttention":
        """The twin of ``mha``, sharing its parameters."""
        e = mha.embed_dim

        def linear(weight, bias):
            layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
            layer.weight = nn.Parameter(weight.detach(), requires_grad=False)
            if bias is not None:
                layer.bias = nn.Parameter(bias.detach(), requires_grad=False)
            return layer

        if mha.in_proj_weight is not None:
            weights = [mha.in_proj_weight[i * e:(i + 1) * e] for i in range(3)]
        else:
            weights = [mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight]
        biases = [mha.in_proj_bias[i * e:(i + 1) * e] if mha.in_proj_bias is not None else None for i in range(3)]
        projections = [linear(w, b) for w, b in zip(weights, biases)]
        out = nn.Linear(e, e, bias=mha.out_proj.bias is not None)
        out.weight = nn.Parameter(mha.out_proj.weight.detach(), requires_grad=False)
        if mha.out_proj.bias is not None:
            out.bias = nn.Parameter(mha.out_proj.bias.detach(), requires_grad=False)
        return cls(e, mha.num_heads, mha.batch_first, *projections, out)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        n, t = x.shape[0], x.shape[1]
        return x.reshape(n, t, self.num_heads, self.embed_dim // self.num_heads).transpose(1, 2)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        if not self.batch_first:
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        q, k, v = self._heads(self.q_proj(query)), self._heads(self.k_proj(key)), self._heads(self.v_proj(value))
        mask = _combined_mask(attn_mask, key_padding_mask, is_causal, q)
        out, weights = self.attention(q, k, v, mask, scale=1.0 / math.sqrt(self.embed_dim // self.num_heads),
                                      need_weights=True)
        out = self.out_proj(out.transpose(1, 2).reshape(out.shape[0], out.shape[2], self.embed_dim))
        if not self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        return out, weights.mean(1) if average_attn_weights else weights


def _combined_mask(attn_mask, key_padding_mask, is_causal, q):
    """The additive ``(N or 1, heads or 1, L, S)`` mask of ``nn.MultiheadAttention``'s arguments, or None."""
    mask = None
    if attn_mask is None and is_causal:
        size = q.shape[-2]
        attn_mask = torch.ones(size, size, dtype=torch.bool, device=q.device).triu(1)
    if attn_mask is not None:
        mask = additive_mask(attn_mask, q.dtype)
        if mask.dim() == 3:
            mask = mask.reshape(-1, q.shape[1], *mask.shape[-2:])
    if key_padding_mask is not None:
        padding = additive_mask(key_padding_mask, q.dtype)[:, None, None, :]
        mask = padding if mask is None else mask + padding
    return mask


class EncoderLayer(nn.Module):
    """``torch.nn.TransformerEncoderLayer`` in eval mode, written out (no fast path), over its own submodules.

    Example
    -------
    >>> layer = nn.TransformerEncoderLayer(8, 2, 16, batch_first=True).eval()
    >>> x = torch.randn(2, 5, 8)
    >>> torch.allclose(EncoderLayer.from_module(layer)(x), layer(x), atol=1e-5)
    True
    """

    def __init__(self, layer: nn.TransformerEncoderLayer, self_attn: nn.Module):
        super().__init__()
        self.self_attn = self_attn
        self.linear1, self.dropout, self.linear2 = layer.linear1, layer.dropout, layer.linear2
        self.norm1, self.norm2, self.dropout1, self.dropout2 = layer.norm1, layer.norm2, layer.dropout1, layer.dropout2
        self.norm_first = layer.norm_first
        activation = layer.activation
        if not isinstance(activation, nn.Module):
            activation = {F.relu: nn.ReLU(), F.gelu: nn.GELU()}.get(activation)
            if activation is None:
                raise ValueError(f"activation {layer.activation!r} has no module")
        self.activation = activation

    @classmethod
    def from_module(cls, layer: nn.TransformerEncoderLayer) -> "EncoderLayer":
        """The written-out twin of ``layer`` (its attention replaced by :class:`MultiheadAttention`)."""
        return cls(layer, MultiheadAttention.from_module(layer.self_attn))

    def _sa(self, x, mask, padding, is_causal):
        return self.dropout1(self.self_attn(x, x, x, attn_mask=mask, key_padding_mask=padding,
                                            need_weights=False, is_causal=is_causal)[0])

    def _ff(self, x):
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        x = src
        if self.norm_first:
            x = x + self._sa(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            return x + self._ff(self.norm2(x))
        x = self.norm1(x + self._sa(x, src_mask, src_key_padding_mask, is_causal))
        return self.norm2(x + self._ff(x))


class Encoder(nn.Module):
    """``torch.nn.TransformerEncoder`` in eval mode, written out (no nested-tensor fast path).

    Example
    -------
    >>> enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), 2,
    ...                             enable_nested_tensor=False).eval()
    >>> x = torch.randn(2, 5, 8)
    >>> torch.allclose(Encoder.from_module(enc)(x), enc(x), atol=1e-5)
    True
    """

    def __init__(self, layers: nn.ModuleList, norm: Optional[nn.Module]):
        super().__init__()
        self.layers, self.norm = layers, norm

    @classmethod
    def from_module(cls, encoder: nn.TransformerEncoder) -> "Encoder":
        """The written-out twin of ``encoder`` (its layers replaced by :class:`EncoderLayer`)."""
        layers = nn.ModuleList(EncoderLayer.from_module(layer) if isinstance(layer, nn.TransformerEncoderLayer)
                               else layer for layer in encoder.layers)
        return cls(layers, encoder.norm)

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=bool(is_causal))
        return self.norm(x) if self.norm is not None else x


#: modules this file adds to canonical twins (kept whole when tracing, selectable by type)
ATTENTION_MODULES = (MatMul, Multiply)


def _replace_children(module: nn.Module) -> int:
    count = 0
    for name, child in list(module.named_children()):
        new = None
        if isinstance(child, nn.TransformerEncoder):
            new = Encoder.from_module(child)
        elif isinstance(child, nn.TransformerEncoderLayer) and MultiheadAttention.supports(child.self_attn):
            new = EncoderLayer.from_module(child)
        elif isinstance(child, nn.MultiheadAttention) and MultiheadAttention.supports(child):
            new = MultiheadAttention.from_module(child)
        if new is not None:
            setattr(module, name, new)
            count += 1
        count += _replace_children(new if new is not None else child)
    return count


def expose_attention(twin: nn.Module) -> int:
    """Replace, inside ``twin`` (never a user's model), the attention modules whose internals are functions by
    their module-level twins; returns how many modules were replaced.

    Example
    -------
    >>> net = nn.Sequential(nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), 1,
    ...                                           enable_nested_tensor=False))
    >>> expose_attention(net), type(net[0].layers[0].self_attn).__name__
    (1, 'MultiheadAttention')
    """
    return _replace_children(twin)
