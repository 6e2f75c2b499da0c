"""AttnLRP / CP-LRP presets on transformers built by hand (torchvision ViT, nn.TransformerEncoder): rules by
hand, conservation, coverage; the Hugging Face and LXT checks are in test_transformers_lxt.py (heavy)."""
import warnings

import pytest
import torch
from torch import nn

import composer
from composer.errors import ComposerError
from composer.graph import canonize
from composer.graph.attention import Attention, MultiheadAttention
from composer.transformers import LogitsAt


def _no_bias(model):
    with torch.no_grad():
        for module in model.modules():
            for name in ("bias", "in_proj_bias"):
                if isinstance(getattr(module, name, None), torch.Tensor):
                    getattr(module, name).zero_()
    return model


class Classifier(nn.Module):
    """An nn.TransformerEncoder classifier over (batch, tokens, features)."""

    def __init__(self, bias=True, norm_first=False):
        super().__init__()
        layer = nn.TransformerEncoderLayer(8, 2, 16, batch_first=True, activation="gelu", bias=bias,
                                           norm_first=norm_first)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(8, 3, bias=bias)

    def forward(self, x):
        return self.head(self.encoder(x).mean(1))


def _vit(bias=True):
    from torchvision.models import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(image_size=8, patch_size=4, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32,
                              num_classes=4).eval()
    with torch.no_grad():
        model.heads.head.weight.normal_(0, 0.3)
        model.class_token.normal_(0, 0.3)
    return _no_bias(model) if not bias else model


@pytest.mark.parametrize("method", ["attnlrp", "cp_lrp"])
def test_vit_relevance_is_input_times_modified_gradient_and_cp_conserves(method):
    model = _vit(bias=False)
    with torch.no_grad():
        model.encoder.pos_embedding.zero_()   # a constant shift absorbs relevance like a bias,
        model.class_token.zero_()             # and so does a constant token
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    target = [0, 1, 3]
    relevance = composer.explain(model, x, method, target=target)
    assert relevance.shape == x.shape
    logits = model(x)[torch.arange(3), target]
    sums = relevance.sum((1, 2, 3))
    if method == "cp_lrp":  # LRP-0 everywhere, attention weights constant, no biases: conservative
        torch.testing.assert_close(sums, logits.detach(), rtol=1e-3, atol=1e-6)
    single = composer.explain(model, x[1:2], method, target=target[1])
    torch.testing.assert_close(single[0], relevance[1], rtol=1e-5, atol=1e-7)


def test_encoder_classifier_cp_lrp_conserves_and_attnlrp_differs():
    torch.manual_seed(1)
    model = _no_bias(Classifier(bias=False).eval())
    for module in model.modules():      # LayerNorm without bias: LRP-0 on a bias-free linear map
        if isinstance(module, nn.LayerNorm):
            module.bias = None
    x = torch.randn(4, 5, 8)
    logits = model(x)[torch.arange(4), 2]
    cp = composer.explain(model, x, "cp_lrp", target=2)
    torch.testing.assert_close(cp.sum((1, 2)), logits.detach(), rtol=1e-3, atol=1e-6)
    attn = composer.explain(model, x, "attnlrp", target=2)
    assert not torch.allclose(attn, cp)


def test_encoder_twin_computes_what_the_model_computes():
    torch.manual_seed(2)
    for norm_first in (False, True):
        model = Classifier(norm_first=norm_first).eval()
        twin = canonize(model)
        x = torch.randn(2, 5, 8)
        torch.testing.assert_close(twin(x), model(x), rtol=1e-5, atol=1e-6)
        kinds = {type(m).__name__ for m in twin.modules()}
        assert {"MatMul", "Softmax", "Add"} <= kinds and "TransformerEncoderLayer" not in kinds


def test_multihead_attention_masks():
    torch.manual_seed(3)
    mha = nn.MultiheadAttention(8, 2).eval()                       # sequence-first
    twin = MultiheadAttention.from_module(mha)
    x = torch.randn(5, 2, 8)
    padding = torch.zeros(2, 5).masked_fill(torch.tensor([[False, False, False, True, True], [False] * 5]),
                                            float("-inf"))
    causal = nn.Transformer.generate_square_subsequent_mask(5)
    expected = mha(x, x, x, key_padding_mask=padding, attn_mask=causal, need_weights=False)[0]
    got = twin(x, x, x, key_padding_mask=padding, attn_mask=causal, need_weights=False)[0]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    for average in (True, False):   # the attention weights, when asked for, as torch returns them
        torch.testing.assert_close(twin(x, x, x, average_attn_weights=average)[1],
                                   mha(x, x, x, average_attn_weights=average)[1], rtol=1e-5, atol=1e-6)


def test_softmax_rule_by_hand():
    """AttnLRP's softmax rule: R_x = x (R_s - s sum R_s), with R_s = s g (here g = 1 on one output)."""
    attention = Attention()
    x = torch.tensor([[1.0, 2.0, 0.5]], requires_grad=True)
    s = torch.softmax(x, -1)
    g = torch.tensor([[0.0, 1.0, 0.0]])
    grad, = torch.autograd.grad(s, x, g)
    r_s = s.detach() * g
    expected = x.detach() * (r_s - s.detach() * r_s.sum())
    torch.testing.assert_close(x.detach() * grad, expected)
    assert isinstance(attention.softmax, nn.Softmax)


def test_uniform_and_stop_rules_on_attention_by_hand():
    """q k^T: each operand of a bilinear map gets half (AttnLRP); CP-LRP gives the values all of it."""
    from composer.rules import StopHook, UniformHook

    attention = Attention()
    q, k, v = (torch.randn(1, 3, 4, generator=torch.Generator().manual_seed(i)).requires_grad_() for i in range(3))
    handles = [UniformHook().register(attention.scores), UniformHook().register(attention.context)]
    out = attention(q, k, v)
    gq, gk, gv = torch.autograd.grad(out.sum(), (q, k, v))
    plain = torch.autograd.grad(Attention()(q, k, v).sum(), (q, k, v))
    torch.testing.assert_close(gq, plain[0] / 4)
    torch.testing.assert_close(gk, plain[1] / 4)
    torch.testing.assert_close(gv, plain[2] / 2)
    for h in handles:
        h.remove()
    handles = [StopHook().register(attention.softmax), UniformHook(first=0.0, second=1.0).register(attention.context)]
    out = attention(q, k, v)
    (gv,) = torch.autograd.grad(out.sum(), (v,))
    torch.testing.assert_close((v * gv).sum(), out.sum())     # A constant: LRP-0 on a linear map of v
    assert torch.autograd.grad(attention(q, k, v).sum(), q, allow_unused=True)[0] is None
    for h in handles:
        h.remove()


def test_layer_norm_rule_by_hand():
    from composer.rules import NormIdentityHook

    norm = nn.LayerNorm(4)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([1.0, 2.0, 0.5, 1.5]))
        norm.bias.copy_(torch.tensor([0.1, -0.2, 0.0, 0.3]))
    handles = NormIdentityHook().register(norm)
    x = torch.tensor([[1.0, -2.0, 3.0, 0.5]], requires_grad=True)
    y = norm(x)
    g = torch.tensor([[1.0, 0.0, -1.0, 2.0]])
    grad, = torch.autograd.grad(y, x, g)
    handles.remove()
    sigma = x.detach().var(-1, unbiased=False, keepdim=True).add(norm.eps).sqrt()
    v = norm.weight.detach() * g / sigma                     # J^T g with sigma constant: centre (w g / sigma)
    torch.testing.assert_close(grad, v - v.mean(-1, keepdim=True))


def test_presets_compose_with_signxai_modifiers():
    x = torch.randn(2, 5, 8)
    torch.manual_seed(4)
    model = Classifier().eval()
    base = composer.explain(model, x, "attnlrp", target=1)
    torch.testing.assert_close(composer.explain(model, x, "attnlrp_x_input", target=1), base * x)
    torch.testing.assert_close(composer.explain(model, x, "cp_lrp_x_sign", target=1),
                               composer.explain(model, x, "cp_lrp", target=1) * torch.where(x >= 0, 1.0, -1.0))


class GatedAttention(nn.Module):
    """Attention whose output is gated by a sigmoid of the input: a product of two computed tensors that no
    preset rule covers (a transformer variant outside attnlrp's modules)."""

    def __init__(self):
        super().__init__()
        self.attention = nn.MultiheadAttention(8, 2, batch_first=True)
        self.gate = nn.Linear(8, 8)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        out = self.attention(x, x, x, need_weights=False)[0] * torch.sigmoid(self.gate(x))
        return self.head(out.mean(1))


def test_coverage_error_names_uncovered_attention_variant():
    with pytest.raises(ComposerError, match=r"operator\.mul: a product of two input-dependent tensors"):
        composer.explain(GatedAttention().eval(), torch.randn(2, 4, 8), "attnlrp", target=0)


def test_logits_at_position():
    lm = nn.Linear(4, 6)
    x = torch.randn(2, 3, 4)
    torch.testing.assert_close(LogitsAt(lm, position=1)(x), lm(x)[:, 1])
    with pytest.raises(ComposerError, match="outside"):
        LogitsAt(lm, position=5)(x)
    with pytest.raises(ComposerError, match="position"):
        LogitsAt(lm, position="last")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = composer.explain(LogitsAt(lm, position=-1), x, "gradient_x_input", target=2)
    assert r.shape == x.shape and r[:, :2].abs().sum() == 0


class HandWritten(nn.Module):
    """Attention written with functions: ``@``, ``softmax`` and ``scaled_dot_product_attention``."""

    def __init__(self, sdpa):
        super().__init__()
        self.sdpa = sdpa
        self.qkv = nn.Linear(8, 24)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, -1)
        if self.sdpa:
            out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            out = torch.softmax(q @ k.transpose(-2, -1) / 8 ** 0.5, dim=-1) @ v
        return self.head(self.norm(out + x).mean(1))


@pytest.mark.parametrize("sdpa", [False, True])
def test_functional_attention_becomes_modules(sdpa):
    torch.manual_seed(5)
    model = HandWritten(sdpa).eval()
    twin = canonize(model)
    x = torch.randn(2, 4, 8)
    torch.testing.assert_close(twin(x), model(x), rtol=1e-5, atol=1e-6)
    kinds = [type(m).__name__ for m in twin.modules()]
    assert kinds.count("MatMul") == 2 and "Softmax" in kinds
    relevance = composer.explain(model, x, "attnlrp", target=1)     # covered: no error
    assert torch.isfinite(relevance).all() and relevance.abs().sum() > 0
    with pytest.raises(ComposerError, match="MatMul"):
        composer.explain(model, x, "lrp_epsilon_0_1", target=1)
