"""Faithfulness metrics on hand-built cases where the curves are known exactly: a linear model f(x) = w.x + b,
whose true relevance is w * x, under baseline-0 perturbation."""
import json

import pytest
import torch

from composer import ComposerError
from composer.evaluation import (Evaluation, Perturbation, evaluate, faithfulness, faithfulness_scores,
                                 perturbation_curves)
from composer.evaluation.perturb import region_ids, replacement, step_counts


class Linear(torch.nn.Module):
    """f(x) = W flatten(x) + b, counting its forward calls."""

    def __init__(self, features, classes=3, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.weight = torch.nn.Parameter(torch.randn(classes, features, generator=g, dtype=torch.float64))
        self.bias = torch.nn.Parameter(torch.randn(classes, generator=g, dtype=torch.float64))
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x.flatten(1) @ self.weight.T + self.bias

    def true_map(self, x, target):
        return (self.weight[target] * x.flatten(1)).view_as(x).detach()


def _data(n, *shape, seed=1):
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_pixel_flipping_curves_of_the_true_map_are_the_sorted_partial_sums():
    model, x = Linear(12), _data(5, 12)
    target = torch.tensor([0, 1, 2, 0, 1])
    r = model.true_map(x, target)
    curves, t = perturbation_curves(model, x, r, target, steps=12)
    f0 = model(x).gather(1, target[:, None]).detach()
    desc = r.sort(1, descending=True).values
    expected_morf = torch.cat([f0, f0 - desc.cumsum(1)], 1)
    expected_lerf = torch.cat([f0, f0 - desc.flip(1).cumsum(1)], 1)
    torch.testing.assert_close(curves["morf"], expected_morf)
    torch.testing.assert_close(curves["lerf"], expected_lerf)
    torch.testing.assert_close(t, torch.arange(13, dtype=torch.float64) / 12)
    # the end point of both curves is the bias: every feature replaced by 0
    torch.testing.assert_close(curves["morf"][:, -1], model.bias[target].detach())


def test_the_true_map_scores_best_on_every_sample_and_a_random_map_near_zero():
    model, x = Linear(16), _data(2000, 16)
    target = model(x).argmax(1).detach()
    g = torch.Generator().manual_seed(5)
    maps = {"true": model.true_map(x, target), "random": torch.randn(x.shape, generator=g, dtype=x.dtype),
            "input": x, "gradient": model.weight[target].detach(), "negated": -model.true_map(x, target)}
    scores = {name: faithfulness(model, x, m, target, steps=16) for name, m in maps.items()}
    for name in maps:
        if name != "true":   # sorted partial sums are the extremes over all orders: exactly best, per sample
            assert (scores["true"]["srg"] >= scores[name]["srg"] - 1e-9).all(), name
            assert (scores["true"]["aopc_morf"] >= scores[name]["aopc_morf"] - 1e-9).all(), name
            assert (scores["true"]["aopc_lerf"] <= scores[name]["aopc_lerf"] + 1e-9).all(), name
    true_srg, random_srg = scores["true"]["srg"].mean().item(), scores["random"]["srg"].mean().item()
    assert true_srg > 1.0
    assert abs(random_srg) < 0.03 * true_srg
    torch.testing.assert_close(scores["negated"]["srg"], -scores["true"]["srg"])   # SRG is antisymmetric


def test_evaluate_ranks_methods_with_confidence_intervals(tmp_path):
    model, x = Linear(10), _data(400, 10)
    g = torch.Generator().manual_seed(2)
    methods = {"true": lambda x, t: model.true_map(x, t),
               "random": lambda x, t: torch.randn(x.shape, generator=g, dtype=x.dtype)}
    ev = evaluate(model, x, methods, steps=10)
    assert [m for m, _ in ev.ranked("srg")] == ["true", "random"]
    rows = {(r["method"], r["metric"]): r for r in ev.table()}
    random_srg = rows[("random", "srg")]
    assert random_srg["ci_low"] < 0 < random_srg["ci_high"]            # a random map: no gain
    true_srg = rows[("true", "srg")]
    assert true_srg["ci_low"] > random_srg["ci_high"] and true_srg["n"] == 400
    assert rows[("true", "aopc_lerf")]["higher_is_better"] is False
    assert ev.curves["true"]["morf"].shape == (400, 11)
    doc = json.loads(ev.to_json(tmp_path / "e.json").read_text())
    assert doc["settings"]["steps"] == 10 and len(doc["curves"]["true"]["lerf"]) == 11
    assert (tmp_path / "e.csv").exists() is False and ev.to_csv(tmp_path / "e.csv").read_text().count("\n") == 11


def test_image_patches_sum_relevance_over_the_patch_and_channels():
    model, x = Linear(2 * 4 * 6), _data(3, 2, 4, 6)
    target = torch.tensor([0, 1, 2])
    r = model.true_map(x, target)
    curves, t = perturbation_curves(model, x, r, target, steps=6, patch=2)
    # region contributions: 2x2 patches over both channels, 6 of them
    contrib = r.view(3, 2, 2, 2, 3, 2).sum((1, 3, 5)).reshape(3, 6)
    f0 = model(x).gather(1, target[:, None]).detach()
    torch.testing.assert_close(curves["morf"], torch.cat([f0, f0 - contrib.sort(1, descending=True).values.cumsum(1)], 1))
    # uneven patches: 3x4 on a 4x6 grid gives 2x2 regions of 12, 6, 4 and 2 pixels
    ids, n = region_ids((4, 6), (3, 4))
    assert n == 4 and torch.bincount(ids).tolist() == [12, 6, 4, 2]


def test_time_series_segments():
    model, x = Linear(3 * 10), _data(4, 3, 10)
    target = torch.zeros(4, dtype=torch.long)
    r = model.true_map(x, target)
    curves, t = perturbation_curves(model, x, r, target, steps=2, patch=5)
    contrib = r.view(4, 3, 2, 5).sum((1, 3))
    f0 = model(x)[:, 0].detach()
    expected = torch.stack([f0, f0 - contrib.max(1).values, f0 - contrib.sum(1)], 1)
    torch.testing.assert_close(curves["morf"], expected)
    assert t.tolist() == [0.0, 0.5, 1.0]


def test_forward_passes_are_batched_and_chunking_changes_nothing():
    model, x = Linear(8), _data(50, 8)
    target, r = torch.zeros(50, dtype=torch.long), _data(50, 8, seed=3)
    model.calls = 0
    big, _ = perturbation_curves(model, x, r, target, steps=4, batch_size=10_000)
    assert model.calls == 2                      # one forward per order for all 50 samples x 5 steps
    model.calls = 0
    small, _ = perturbation_curves(model, x, r, target, steps=4, batch_size=15)
    assert model.calls == 2 * 17                 # 3 samples (15 inputs) per call
    for order in big:
        torch.testing.assert_close(big[order], small[order])


def test_fraction_and_probability_output():
    model, x = Linear(10), _data(6, 10)
    target = torch.zeros(6, dtype=torch.long)
    curves, t = perturbation_curves(model, x, model.true_map(x, target), target, steps=5, fraction=0.5,
                                    output="probability")
    assert t.tolist() == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    torch.testing.assert_close(curves["morf"][:, 0], model(x).softmax(1)[:, 0].detach())
    assert ((curves["morf"] >= 0) & (curves["morf"] <= 1)).all()


def test_perturbations():
    x = _data(2, 1, 6, 6)
    blurred = replacement(x, "blur:1")
    assert blurred.shape == x.shape and blurred.std() < x.std()
    torch.testing.assert_close(blurred.mean((2, 3)), x.mean((2, 3)), atol=0.2, rtol=0)
    torch.testing.assert_close(replacement(x, "noise:0.1:4"), replacement(x, "noise:0.1:4"))
    assert not torch.equal(replacement(x, "noise:0.1:4"), replacement(x, "noise:0.1:5"))
    assert (replacement(x, "noise:0.1") - x).std().item() == pytest.approx(0.1, rel=0.25)
    torch.testing.assert_close(replacement(x, "baseline:mean")[:, :, 0, 0], x.mean((2, 3)))
    assert (replacement(x, "baseline:-1") == -1).all()
    ts = _data(2, 3, 20)
    assert replacement(ts, "blur:2").shape == ts.shape                     # 1-D blur for time series
    flat = _data(2, 9)
    assert replacement(flat, Perturbation("blur", sigma=1.0)).shape == flat.shape
    # a blur-perturbed linear model: each step's output is computed from the blurred values
    model = Linear(36)
    target = torch.zeros(2, dtype=torch.long)
    curves, _ = perturbation_curves(model, x, model.true_map(x, target), target, steps=36, perturbation="blur:1")
    torch.testing.assert_close(curves["morf"][:, -1], model(blurred)[:, 0].detach())


@pytest.mark.parametrize("kwargs, message", [
    ({"perturbation": "smudge"}, "cannot read perturbation"),
    ({"perturbation": "blur:-1"}, "sigma must be a positive"),
    ({"steps": 13}, "only 12 regions"),
    ({"patch": 0}, "patch must be a positive integer"),
    ({"fraction": 0.0}, "fraction"),
    ({"output": "softmax"}, "output is 'logit' or 'probability'"),
])
def test_bad_settings_are_refused(kwargs, message):
    model, x = Linear(12), _data(2, 12)
    with pytest.raises(ComposerError, match=message):
        perturbation_curves(model, x, x, torch.zeros(2, dtype=torch.long), **kwargs)


def test_bad_inputs_are_refused():
    model, x = Linear(12), _data(2, 12)
    with pytest.raises(ComposerError, match="relevance map has shape"):
        perturbation_curves(model, x, x[:, :5], torch.zeros(2, dtype=torch.long))
    with pytest.raises(ComposerError, match="NaN"):
        perturbation_curves(model, x, x * float("nan"), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ComposerError, match="missing lerf"):
        faithfulness_scores({"morf": torch.zeros(1, 3)}, torch.zeros(3))
    with pytest.raises(ComposerError, match="no labels"):
        evaluate(model, x, ["gradient"], target="labels")
    with pytest.raises(ComposerError, match="no 'srg' for method 'b'"):
        Evaluation({"a": {"srg": torch.ones(1)}}, {}, torch.zeros(1)).mean("b")


def test_evaluate_explains_named_methods_and_leaves_the_model_alone(small_mlp):
    from tests.conftest import assert_state_equal, hooks_left, state_of

    x = _data(20, 6).float()
    before = state_of(small_mlp)
    small_mlp.train()
    ev = evaluate(small_mlp, (x, torch.zeros(20, dtype=torch.long)), {"gxi": "gradient_x_input", "eps": ("lrp_epsilon", {"epsilon": 0.5})},
                  target="labels", steps=6)
    assert small_mlp.training and hooks_left(small_mlp) == 0
    assert_state_equal(small_mlp, before)
    assert set(ev.methods) == {"gxi", "eps"} and ev.settings["samples"] == 20
    loader = [(x[:8], torch.zeros(8)), (x[8:], torch.zeros(12))]   # an iterable of batches
    again = evaluate(small_mlp, loader, {"gxi": "gradient_x_input"}, target="labels", steps=6)
    torch.testing.assert_close(again.scores["gxi"]["srg"], ev.scores["gxi"]["srg"])


def test_step_counts_spread_evenly():
    assert step_counts(20, 20).tolist() == list(range(21))
    assert step_counts(100, 3).tolist() == [0, 33, 67, 100]
