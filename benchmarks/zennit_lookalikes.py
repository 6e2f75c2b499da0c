"""How far composer's TF-reference presets are from the zennit rules that look like them.

For each pair, both presets share everything (``lrp_base``: activations pass, sums and pooling
norm) except the rule on the relevance layers, so the figures measure the rule alone. Models and
inputs are the reference's (``tests/data/reference``: trained weights, the reference's inputs and
target classes).

    .venv/bin/python -m benchmarks.zennit_lookalikes          # prints a Markdown table, writes JSON
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, List

import torch

import composer

#: (TF-reference preset, its parameters, the zennit rule that looks like it, that rule's parameters, what differs)
PAIRS = [
    ("lrp_epsilon", {"epsilon": 0.1}, "zennit_epsilon", {"epsilon": 0.1},
     "nothing: z + eps sgn(z) with sgn 0 = +1 in both"),
    ("lrp_z", {}, "zennit_epsilon", {"epsilon": 0.0},
     "nothing but exact zeros of z: TF adds 1e-7 there, zennit's eps = 0 divides by 0"),
    ("lrp_alpha_beta", {"alpha": 2.0, "beta": 1.0}, "zennit_alpha_beta", {"alpha": 2.0, "beta": 1.0},
     "TF puts the full bias b in both denominators; zennit gives b+ to the activating and b- to the "
     "inhibiting one, and adds a 1e-6 stabiliser"),
    ("lrp_z_plus", {}, "zennit_z_plus", {},
     "TF Z+ has no bias; zennit's ZPlus keeps b+ (both keep the a<0, w<0 term)"),
    ("lrp_w_square", {}, "zennit_w_square", {},
     "TF W-square has no bias; zennit's WSquare squares the bias too and keeps it in the denominator"),
    ("lrp_flat", {}, "zennit_flat", {},
     "nothing but the stabiliser: neither has a bias; zennit adds 1e-6 with the sign, TF guards zeros only"),
    ("lrp_gamma", {"gamma": 0.5}, "zennit_gamma", {"gamma": 0.5},
     "TF gamma is gamma A - B over two four-term denominators (-0.5 x textbook gamma = 1 after a ReLU, "
     "see reference.md); zennit's Gamma is textbook z = a (w + gamma w+), generalised to negative inputs"),
]

MODELS = ("mlp", "cnn2d", "cnn1d")


def _lookalike(rule: str, params: Dict) -> dict:
    return {"name": f"{rule}_everywhere", "extends": "lrp_base", "on_unmatched": "ignore",
            "layers": [{"select": "all", "rule": rule, "with": params}]}


def _compare(a: torch.Tensor, b: torch.Tensor) -> Dict[str, float]:
    a, b = a.flatten(1).double(), b.flatten(1).double()
    rel = ((a - b).norm(dim=1) / b.norm(dim=1).clamp_min(1e-30)).mean().item()
    ac, bc = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    spread = ac.norm(dim=1) * bc.norm(dim=1)
    # a constant map (Flat on a dense first layer) has no correlation to speak of
    corr = ((ac * bc).sum(1) / spread).mean().item() if bool((spread > 0).all()) else float("nan")
    return {"relative_l2": rel, "correlation": corr}


def measure(models=MODELS) -> List[dict]:
    """One row per (pair, model): relative L2 distance and correlation of the two maps, over the inputs."""
    from tests.reference_models import load_inputs, load_model, load_reference

    rows = []
    for tf_name, tf_params, rule, rule_params, differs in PAIRS:
        for model_name in models:
            model, x = load_model(model_name), load_inputs(model_name)
            target = torch.as_tensor(load_reference(model_name)["targets"]).long()
            ours = composer.explain(model, x, tf_name, target=target, **tf_params)
            theirs = composer.explain(model, x, _lookalike(rule, rule_params), target=target)
            rows.append({"preset": tf_name, "params": tf_params, "zennit_rule": rule, "rule_params": rule_params,
                         "model": model_name, "differs": differs, **_compare(ours, theirs)})
    return rows


def markdown(rows: List[dict]) -> str:
    """The rows as a Markdown table, one line per pair (models side by side)."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    head = "| TF-reference preset | zennit look-alike | what differs | " + " | ".join(
        f"{m}: rel. L2 / corr." for m in models) + " |"
    lines = [head, "|" + "---|" * (3 + len(models))]
    for tf_name, _, rule, rule_params, differs in PAIRS:
        cells = []
        for m in models:
            r = next(r for r in rows if r["preset"] == tf_name and r["zennit_rule"] == rule and r["model"] == m)
            corr = "const." if r["correlation"] != r["correlation"] else f"{r['correlation']:.3f}"
            cells.append(f"{r['relative_l2']:.2g} / {corr}")
        args = ", ".join(f"{k}={v:g}" for k, v in rule_params.items())
        lines.append(f"| `{tf_name}` | `{rule}({args})` | {differs} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results_lookalikes.json"))
    args = parser.parse_args(argv)
    rows = measure()
    args.out.write_text(json.dumps(rows, indent=1))
    print(markdown(rows))


if __name__ == "__main__":
    main()
