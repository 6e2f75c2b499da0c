"""Small random transformers shared by the transformer tests, the LXT reference script and the benchmark.

Every builder seeds torch itself, so two processes build the same weights.
"""
from __future__ import annotations

import torch


def gpt2(seed: int = 0, layers: int = 2, hidden: int = 32, heads: int = 2, vocab: int = 64, positions: int = 32):
    """A random GPT-2 causal LM (eager attention), eval mode."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(n_layer=layers, n_head=heads, n_embd=hidden, vocab_size=vocab, n_positions=positions,
                        bos_token_id=0, eos_token_id=0, attn_implementation="eager")
    return GPT2LMHeadModel(config).eval()


def llama(seed: int = 0, layers: int = 2, hidden: int = 32, heads: int = 4, kv_heads: int = 2, vocab: int = 64):
    """A random Llama causal LM (grouped-query attention, RoPE, gated MLP, RMSNorm), eval mode."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=kv_heads, vocab_size=vocab,
                         max_position_embeddings=64, bos_token_id=0, eos_token_id=0, pad_token_id=0,
                         attn_implementation="eager")
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # random RMSNorm weights (ones by default) make the check stricter
        for module in model.modules():
            if type(module).__name__.endswith("RMSNorm"):
                module.weight.uniform_(0.5, 1.5)
    return model


def vit(seed: int = 0, image: int = 16, patch: int = 4, layers: int = 2, heads: int = 2, hidden: int = 32,
        classes: int = 5):
    """A random torchvision VisionTransformer, eval mode."""
    from torchvision.models import VisionTransformer

    torch.manual_seed(seed)
    model = VisionTransformer(image_size=image, patch_size=patch, num_layers=layers, num_heads=heads,
                              hidden_dim=hidden, mlp_dim=2 * hidden, num_classes=classes).eval()
    with torch.no_grad():  # torchvision zero-initialises the head and class token: random weights instead
        model.heads.head.weight.normal_(0, 0.2)
        model.class_token.normal_(0, 0.2)
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
    return model


BUILDERS = {"gpt2": gpt2, "llama": llama, "vit": vit}


def inputs(kind: str, batch: int = 3, tokens: int = 7, seed: int = 1):
    """Token ids (language models) or images (ViT) for ``kind``."""
    generator = torch.Generator().manual_seed(seed)
    if kind == "vit":
        return torch.randn(batch, 3, 16, 16, generator=generator)
    return torch.randint(1, 64, (batch, tokens), generator=generator)
