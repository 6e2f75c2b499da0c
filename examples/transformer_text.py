"""A worked text example for docs/transformers.md: a tiny GPT-2 learns to name the word a list repeats most,
and AttnLRP shows which tokens its answer rests on (red: for the predicted word, blue: against).

    python examples/transformer_text.py [--out docs/img]     # a few minutes on 2 busy CPU cores, no downloads

The "tokenizer" is a word list: the point is the relevance, not the language.
"""
from __future__ import annotations

import argparse
import random
from pathlib import Path

import torch

from composer.transformers import explain_tokens
from composer.viz import save_token_heatmap, token_html

WORDS = ["tea", "jam", "rice", "soup", "cake", "figs"]
VOCAB = WORDS + ["?"]
INDEX = {word: i for i, word in enumerate(VOCAB)}
LENGTH = 9


def sample(rng: random.Random):
    """Nine words, one of them four or five times and the others at most three times, then ``?``; the answer
    is the repeated word."""
    winner, *others = rng.sample(WORDS, 4)
    count = rng.choice([4, 5])
    words = [winner] * count
    while len(words) < LENGTH:
        word = rng.choice(others)
        if words.count(word) < 3 and words.count(word) + 1 < count:
            words.append(word)
    rng.shuffle(words)
    return [INDEX[w] for w in words + ["?"]], INDEX[winner]


def train(steps: int = 400, seed: int = 0):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    rng = random.Random(seed)
    config = GPT2Config(n_layer=2, n_head=2, n_embd=48, vocab_size=len(VOCAB), n_positions=LENGTH + 1,
                        attn_implementation="eager", bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(steps):
        batch = [sample(rng) for _ in range(64)]
        ids = torch.tensor([b[0] for b in batch])
        answers = torch.tensor([b[1] for b in batch])
        loss = torch.nn.functional.cross_entropy(model(ids).logits[:, -1], answers)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    test = [sample(random.Random(seed + 1 + i)) for i in range(200)]
    with torch.no_grad():
        predicted = model(torch.tensor([t[0] for t in test])).logits[:, -1].argmax(-1)
    accuracy = (predicted == torch.tensor([t[1] for t in test])).float().mean().item()
    return model, accuracy


def main(out: str = "docs/img") -> None:
    torch.set_num_threads(2)
    model, accuracy = train()
    print(f"accuracy on 200 new questions: {accuracy:.2f}")
    words = ["figs", "tea", "figs", "jam", "tea", "figs", "jam", "figs", "tea", "?"]
    ids = torch.tensor([[INDEX[w] for w in words]])
    prediction = VOCAB[model(ids).logits[0, -1].argmax().item()]
    print(f"{' '.join(words)} -> {prediction}")
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    for method in ("attnlrp", "cp_lrp"):
        relevance = explain_tokens(model, ids, method, target=None)[0]   # target None: the predicted token
        print(method, " ".join(f"{w}:{r:+.2f}" for w, r in zip(words, relevance.tolist())))
        tokens = [w + " " for w in words]
        save_token_heatmap(out_dir / f"transformer_tokens_{method}.png", tokens, relevance,
                           title=f"{method}: relevance for '{prediction}'")
        (out_dir / f"transformer_tokens_{method}.html").write_text(token_html(tokens, relevance) + "\n")
    print("gradient_x_input", " ".join(f"{r:+.2f}" for r in explain_tokens(
        model, ids, "gradient_x_input")[0].tolist()))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="docs/img")
    main(ap.parse_args().out)
