"""composer's attnlrp / cp_lrp against LXT (the AttnLRP authors' implementation) on small random GPT-2, Llama
and torchvision ViT models, batched and single; Hugging Face coverage and conservation (heavy group)."""
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("transformers", reason="the transformer checks need transformers (the heavy extra)")
pytest.importorskip("lxt", reason="the LXT comparison needs lxt (the heavy extra: pip install --no-deps lxt==2.1)")

import composer  # noqa: E402
from composer.errors import ComposerError  # noqa: E402
from composer.transformers import LogitsAt, embed, explain_tokens  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import transformer_models as tm  # noqa: E402
from lxt_reference import TARGETS  # noqa: E402

pytestmark = pytest.mark.heavy


def _composer(kind, method, batch):
    model = tm.BUILDERS[kind]()
    x = tm.inputs(kind, batch)
    target = TARGETS[kind][:batch]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # transformers models are not torch.fx-traceable: module hooks (a warning)
        if kind == "vit":
            return composer.explain(model, x, method, target=target)
        return composer.explain(LogitsAt(model, -1), embed(model, x), method, target=target)


@pytest.fixture(scope="module", params=["attnlrp", "cp_lrp"])
def lxt_run(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("lxt") / f"{request.param}.pt"
    done = subprocess.run([sys.executable, str(HERE / "lxt_reference.py"), str(out), request.param],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return request.param, torch.load(out)


@pytest.mark.parametrize("kind", ["gpt2", "llama", "vit"])
def test_matches_lxt_batched_and_single(lxt_run, kind):
    method, reference = lxt_run
    for mode, batch in (("batched", 3), ("single", 1)):
        ours, theirs = _composer(kind, method, batch), reference[kind][mode]
        assert ours.shape == theirs.shape
        for a, b in zip(ours.flatten(1).double(), theirs.flatten(1).double()):
            corr = torch.corrcoef(torch.stack([a, b]))[0, 1]
            assert corr >= 0.999, (method, kind, mode, corr)
            assert (a - b).norm() / b.norm() <= 1e-3, (method, kind, mode)


def test_vit_gamma_matches_lxt(lxt_run):
    """LXT's ViT recipe: CP-LRP with zennit's Gamma on Conv2d (0.25) and Linear (0.05). torch's MultiheadAttention
    computes its projections functionally, so LXT's Gamma never reaches them: the same in composer, by name."""
    method, reference = lxt_run
    if method != "cp_lrp":
        pytest.skip("the gamma reference is computed with the CP-LRP run")
    preset = {"name": "vit_gamma_as_lxt", "extends": "cp_lrp_gamma", "layers": [
        {"select": {"name_regex": r".*\.(q|k|v|out)_proj"}, "rule": "implicit_z"}]}
    for mode, batch in (("batched", 3), ("single", 1)):
        ours = composer.explain(tm.vit(), tm.inputs("vit", batch), preset, target=TARGETS["vit"][:batch])
        for a, b in zip(ours.flatten(1).double(), reference["vit_gamma"][mode].flatten(1).double()):
            assert torch.corrcoef(torch.stack([a, b]))[0, 1] >= 0.999
            assert (a - b).norm() / b.norm() <= 1e-3


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_cp_lrp_conserves_the_logit_without_biases(kind):
    model = tm.BUILDERS[kind]()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "wpe" in name:   # biases and GPT-2's position embeddings (a constant shift)
                p.zero_()
    ids = tm.inputs(kind, 2)
    emb = embed(model, ids)
    adapter = LogitsAt(model, -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        relevance = composer.explain(adapter, emb, "cp_lrp", target=[3, 9])
    logits = adapter(emb)[[0, 1], [3, 9]].detach()
    torch.testing.assert_close(relevance.sum((1, 2)), logits, rtol=1e-3, atol=1e-6)


def test_bert_classifier_and_tokens():
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        vocab_size=64, max_position_embeddings=32, num_labels=3, attn_implementation="eager")
    model = BertForSequenceClassification(config).eval()
    ids = tm.inputs("gpt2", 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tokens = explain_tokens(model, ids, "attnlrp", target=1, position=None)
    assert tokens.shape == ids.shape and torch.isfinite(tokens).all() and tokens.abs().sum() > 0


def test_huggingface_vit_and_the_model_left_untouched():
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    config = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                       image_size=16, patch_size=4, num_labels=3, attn_implementation="eager")
    model = ViTForImageClassification(config).eval()
    x = torch.randn(2, 3, 16, 16)
    adapter = LogitsAt(model, position=None)
    before = adapter(x).detach()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        relevance = composer.explain(adapter, x, "cp_lrp", target=1)
    assert relevance.shape == x.shape and torch.isfinite(relevance).all() and relevance.abs().sum() > 0
    assert model.config._attn_implementation == "eager"           # the twin had composer's attention, not the model
    assert not any(hasattr(m, "composer_attention") for m in model.modules())
    torch.testing.assert_close(adapter(x), before, rtol=0, atol=0)


def test_coverage_error_on_an_uncovered_transformer_variant():
    """Gemma's RMSNorm scales by (1 + weight): not torch's RMSNorm, so no rule covers it - a clear error."""
    from transformers import Gemma2Config, Gemma2ForCausalLM

    torch.manual_seed(0)
    config = Gemma2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                          num_key_value_heads=1, head_dim=16, vocab_size=64, attn_implementation="eager")
    model = Gemma2ForCausalLM(config).eval()
    ids = tm.inputs("gpt2", 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ComposerError, match="Gemma2RMSNorm"):
            composer.explain(LogitsAt(model, -1), embed(model, ids), "attnlrp", target=1)


def _model_folder(folder, classifier=False):
    """A tiny GPT-2 (or GPT-2 classifier) and a word-level tokenizer saved as a Hugging Face folder."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel, PreTrainedTokenizerFast

    words = ["[UNK]", "the", "cat", "sat", "on", "mat", "a", "dog"]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[UNK]").save_pretrained(folder)
    torch.manual_seed(0)
    config = GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=len(words), n_positions=16, num_labels=2,
                        bos_token_id=0, eos_token_id=0, pad_token_id=0)
    (GPT2ForSequenceClassification if classifier else GPT2LMHeadModel)(config).save_pretrained(folder)
    return words


def test_cli_explains_text_with_a_model_folder(tmp_path):
    from typer.testing import CliRunner

    from composer.cli import app
    from composer.transformers import explain_text

    words = _model_folder(tmp_path / "lm")
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = CliRunner().invoke(app, ["explain", "--model", str(tmp_path / "lm"), "--text", "the cat sat on the",
                                          "--method", "cp_lrp", "--target", "mat", "-o", str(out)])
        assert result.exit_code == 0, result.output
        relevance = np.load(out / "text_cp_lrp.npy")
        tokens, expected, target = explain_text(tmp_path / "lm", "the cat sat on the", "cp_lrp", target="mat")
    assert target == words.index("mat") and tokens == ["the", "cat", "sat", "on", "the"]
    np.testing.assert_allclose(relevance, expected.numpy(), rtol=1e-6)
    assert "cat" in (out / "text_cp_lrp.html").read_text() and (out / "text_cp_lrp.png").stat().st_size > 0
    _model_folder(tmp_path / "clf", classifier=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tokens, relevance, target = explain_text(tmp_path / "clf", "a dog sat", "attnlrp", target=1)
    assert len(tokens) == 3 and relevance.shape == (3,) and target == 1
    bad = CliRunner().invoke(app, ["explain", "--model", str(tmp_path), "--text", "x", "--method", "attnlrp"])
    assert bad.exit_code != 0 and "config.json" in bad.output
