"""LXT's AttnLRP / CP-LRP relevances for the small models of ``transformer_models`` (run in a subprocess:
LXT patches classes of ``torch`` and ``transformers`` process-wide).

``python tests/lxt_reference.py OUT.pt`` writes ``{(kind, method): relevance}`` with relevance = input ⊙ LXT's
modified gradient of the target logit (token ids: the embeddings; ViT: the pixels).
"""
from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import transformer_models as tm  # noqa: E402

TARGETS = {"gpt2": [3, 5, 7], "llama": [3, 5, 7], "vit": [1, 2, 4]}


def _patch_hf(module_name: str, method: str) -> None:
    """LXT's patch map for a transformers model file. LXT 2.1 replaces ``ALL_ATTENTION_FUNCTIONS`` by a
    plain dict, which transformers 5 cannot call ``get_interface`` on; the eager function is what these
    eager-attention models call, so only it is wrapped - with LXT's own wrapper."""
    import importlib
    from lxt.efficient import patches

    maps = importlib.import_module(f"lxt.efficient.models.{module_name}")
    patch_map = dict(maps.attnLRP if method == "attnlrp" else maps.cp_LRP)
    modeling = importlib.import_module(f"transformers.models.{module_name}.modeling_{module_name}")
    wrap = patches.wrap_attention_forward if method == "attnlrp" else patches.cp_wrap_attention_forward
    for target, patch in patch_map.items():
        if target is modeling:
            modeling.eager_attention_forward = wrap(modeling.eager_attention_forward)
        else:
            patch(target)


def _patch_vit(method: str) -> None:
    from torchvision.models import vision_transformer
    from lxt.efficient.models.vit_torch import cp_LRP
    from lxt.efficient.patches import patch_method, divide_gradient

    def attnlrp_mha_forward(self, query, key, value, *args, **kwargs):   # LXT's wrap_attention_forward, for MHA
        return self.original_forward(divide_gradient(query, 4), divide_gradient(key, 4), divide_gradient(value, 2),
                                     *args, **kwargs)

    patch_map = dict(cp_LRP)
    if method == "attnlrp":
        patch_map[vision_transformer.nn.MultiheadAttention] = partial(patch_method, attnlrp_mha_forward,
                                                                      keep_original=True)
    for target, patch in patch_map.items():
        patch(target)


#: LXT's vision-transformer example: gamma on convolutions and linear layers (zennit's Gamma, patched by LXT)
GAMMA = {"conv": 0.25, "linear": 0.05}


def relevance(kind: str, batch: int = 3, gamma: bool = False) -> torch.Tensor:
    model = tm.BUILDERS[kind]()
    x = tm.inputs(kind, batch)
    target = torch.tensor(TARGETS[kind][:batch])
    if kind == "vit":
        x = x.clone().requires_grad_()
        if gamma:
            from zennit.composites import LayerMapComposite
            from zennit.rules import Gamma

            composite = LayerMapComposite([(torch.nn.Conv2d, Gamma(GAMMA["conv"])),
                                           (torch.nn.Linear, Gamma(GAMMA["linear"]))])
            with composite.context(model) as modified:
                logits = modified(x)
                logits[torch.arange(batch), target].sum().backward()
            return (x * x.grad).detach()
        logits = model(x)
    else:
        x = model.get_input_embeddings()(x).detach().requires_grad_()
        logits = model(inputs_embeds=x).logits[:, -1]
    logits[torch.arange(batch), target].sum().backward()
    return (x * x.grad).detach()


def _skip_lxt_bert() -> None:
    """LXT 2.1 ships a copy of an old transformers BERT file that transformers 5 cannot import; its package
    imports it eagerly. BERT is not compared, so a stand-in module takes its place."""
    import types

    stub = types.ModuleType("lxt.efficient.models.bert")
    stub.modeling_bert, stub.attnLRP, stub.cp_LRP = types.ModuleType("modeling_bert_unused"), {}, {}
    sys.modules["lxt.efficient.models.bert"] = stub


def main(out: str, method: str) -> None:
    torch.set_num_threads(1)
    _skip_lxt_bert()
    if method not in ("attnlrp", "cp_lrp"):
        raise SystemExit(f"unknown method {method}")
    _patch_hf("gpt2", method)
    _patch_hf("llama", method)
    _patch_vit(method)
    results = {kind: {"batched": relevance(kind), "single": relevance(kind, 1)} for kind in tm.BUILDERS}
    if method == "cp_lrp":   # LXT's default for torchvision ViTs: CP-LRP with gamma (zennit patched by LXT)
        from lxt.efficient import monkey_patch_zennit

        monkey_patch_zennit()
        results["vit_gamma"] = {"batched": relevance("vit", gamma=True), "single": relevance("vit", 1, gamma=True)}
    torch.save(results, out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
