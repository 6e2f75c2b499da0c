"""Preset tuning: the parameters found, their ranges, the search on the digits CNN (better SRG on held-out
digits, reproducible), the tuned preset file, and presets with nothing to tune."""
import pytest
import torch
import yaml

import composer
from composer import ComposerError
from composer.evaluation import evaluate, tunable_parameters, tune

pytest.importorskip("sklearn", reason="the digits CNN needs scikit-learn (the cli extra)")

SETTINGS = dict(steps=8, patch=2, perturbation="baseline:0")


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    from composer.demo import cache_dir, load_digits, train_digits_cnn

    cache = cache_dir()                      # the demo's weights when it has run (else trained once, ~5 s)
    model = train_digits_cnn(epochs=12, cache=cache)
    _, _, x_test, _ = load_digits()
    return model, x_test[:48], x_test[64:264], cache


def test_parameters_and_ranges_come_from_the_rule_specs(tmp_path):
    params = tunable_parameters("epsilon_gamma_box")
    assert set(params) == {"epsilon", "gamma", "stabilizer"}       # low/high are tensors, zero_params names
    gamma = params["gamma"]
    assert (gamma.value, gamma.low, gamma.high, gamma.scale) == (0.25, 0.0025, 25.0, "log")
    assert {"zennit_zbox", "zennit_gamma"} <= set(params["stabilizer"].rules)
    mu = tunable_parameters({"name": "m", "extends": ["lrpsign", "lrp_epsilon"]})["mu"]
    assert (mu.low, mu.high, mu.scale) == (-1.0, 1.0, "linear")      # signed: value +- 1
    # per-selector parameters, one per block; the bounds of every rule taking a parameter intersect
    preset = tmp_path / "blocks.yaml"
    preset.write_text(yaml.safe_dump({
        "name": "blocks", "extends": "lrp_base", "params": {"gamma_early": 0.5, "gamma_late": 20.0, "eps": 0.1},
        "layers": [{"select": {"index": 0}, "rule": "gamma", "with": {"gamma": "$gamma_early"}},
                   {"select": {"index": 1}, "rule": "gamma", "with": {"gamma": "$gamma_late"}},
                   {"select": "all", "rule": "epsilon", "with": {"epsilon": "$eps"}}]}))
    blocks = tunable_parameters(str(preset))
    assert list(blocks) == ["gamma_early", "gamma_late", "eps"]
    assert blocks["gamma_late"].high == 1000.0                         # the gamma spec's le: 1000, not 20 * 100
    assert list(tunable_parameters(str(preset), names=["eps"])) == ["eps"]
    assert tunable_parameters(str(preset), ranges={"eps": (0.5, 2.0, "linear")})["eps"].scale == "linear"
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3), torch.nn.ReLU(),
                              torch.nn.Flatten(), torch.nn.Linear(16, 3))
    result = tune(net, str(preset), torch.rand(8, 1, 6, 6), budget=4, seed=0, steps=4, patch=3)
    assert set(result.params) == {"gamma_early", "gamma_late", "eps"}
    assert all(result.trials[1][0][p] != result.trials[0][0][p] for p in result.params)   # each block on its own
    tuned = yaml.safe_load(result.write(tmp_path / "blocks_tuned.yaml").read_text())
    assert tuned["extends"] == "blocks"                                # beside the original: by name
    assert composer.compile_preset(str(tmp_path / "blocks_tuned.yaml")).params["gamma_late"] == \
        result.params["gamma_late"]
    elsewhere = result.write(tmp_path / "sub" / "blocks_tuned.yaml")
    assert yaml.safe_load(elsewhere.read_text())["extends"] == str(preset.resolve())   # elsewhere: by path
    assert composer.compile_preset(str(elsewhere)).params["eps"] == result.params["eps"]


@pytest.mark.parametrize("preset, says", [("gradient", "its parameters: none"),
                                          ("smoothgrad", "noise_level"),
                                          ("lrp_z", "no tunable parameter")])
def test_presets_with_nothing_to_tune_are_refused(preset, says):
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    with pytest.raises(ComposerError, match="no tunable parameter") as err:
        tune(net, preset, torch.randn(8, 4), budget=3)
    assert says in str(err.value)


def test_bad_requests_are_refused():
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    x = torch.randn(8, 4)
    with pytest.raises(ComposerError, match="unknown metric"):
        tune(net, "lrp_epsilon", x, metric="accuracy")
    with pytest.raises(ComposerError, match="budget"):
        tune(net, "lrp_epsilon", x, budget=1)
    with pytest.raises(ComposerError, match="not tunable in preset 'lrp_epsilon'; tunable: epsilon"):
        tune(net, "lrp_epsilon", x, names=["gamma"])
    with pytest.raises(ComposerError, match="low < high"):
        tune(net, "lrp_epsilon", x, ranges={"epsilon": (1.0, 0.1)})
    with pytest.raises(ComposerError, match="not the method name"):
        tune(net, "lrp_epsilon_0_1", x)


def test_tuning_the_digits_cnn_improves_held_out_srg_and_is_reproducible(digits, tmp_path):
    model, val, held_out, _ = digits
    result = tune(model, "epsilon_gamma_box", val, budget=8, seed=0, **SETTINGS)
    assert result.score > result.untuned_score
    again = tune(model, "epsilon_gamma_box", val, budget=8, seed=0, **SETTINGS)
    assert again.params == result.params and again.score == result.score and again.trials == result.trials
    other = tune(model, "epsilon_gamma_box", val, budget=3, seed=1, **SETTINGS)
    assert other.trials[1:] != result.trials[1:3]                      # the seed drives the search

    path = result.write(tmp_path / "egb_tuned.yaml")
    doc = yaml.safe_load(path.read_text())
    assert doc["extends"] == "epsilon_gamma_box" and doc["params"] == result.params
    for recorded in ("seed=0", "budget=8", "steps=8", result.fingerprint, f"{result.score:.6g}"):
        assert recorded in doc["summary"]
    held = evaluate(model, held_out, {"untuned": "epsilon_gamma_box", "tuned": str(path)}, **SETTINGS)
    assert held.mean("tuned") > held.mean("untuned") + 0.2            # also on digits it never saw
    assert composer.compile_preset(str(path)).params["gamma"] == result.params["gamma"]


def test_cli_tune_and_evaluate(digits, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from composer.cli import app

    _, _, _, cache = digits
    monkeypatch.setenv("COMPOSER_CACHE", str(cache))
    runner = CliRunner()
    out = tmp_path / "tuned.yaml"
    result = runner.invoke(app, ["tune", "lrp_epsilon", "-m", "composer.demo:train_digits_cnn", "-d", "digits",
                                 "--samples", "32", "--budget", "3", "--steps", "4", "--patch", "2", "--range",
                                 "epsilon=0.01:1:linear", "-o", str(out)])
    assert result.exit_code == 0, result.output
    tuned = yaml.safe_load(out.read_text())
    assert tuned["extends"] == "lrp_epsilon" and 0.01 <= tuned["params"]["epsilon"] <= 1
    assert "'epsilon': [0.01, 1.0, 'linear']" in tuned["summary"]
    result = runner.invoke(app, ["evaluate", "-m", "composer.demo:train_digits_cnn", "-d", "digits", "--samples",
                                 "32", "--method", "gradient", "--method", str(out), "--steps", "4", "--patch", "2",
                                 "-o", str(tmp_path / "ev")])
    assert result.exit_code == 0, result.output
    assert {p.name for p in (tmp_path / "ev").iterdir()} == {"evaluation.csv", "evaluation.json", "evaluation.png"}
    assert "SRG" in result.output
    refused = runner.invoke(app, ["tune", "gradient", "-m", "composer.demo:train_digits_cnn", "-d", "digits"])
    assert refused.exit_code == 1 and "no tunable parameter" in refused.output


def test_faithfulness_benchmark_runs_quickly(digits, tmp_path):
    """benchmarks/faithfulness.py cannot rot: a tiny run checks batched against looped curves and writes JSON."""
    import json

    from benchmarks.faithfulness import main

    threads = torch.get_num_threads()
    try:
        main(["--samples", "24", "--steps", "4", "--loop-samples", "3", "--threads", "1", "--json",
              str(tmp_path / "b.json")])
    finally:
        torch.set_num_threads(threads)
    result = json.loads((tmp_path / "b.json").read_text())
    assert result["perturbed_forwards"] == 2 * 5 * 24 * 5 and result["loop_over_batched"] > 0
    assert set(result["srg"]) == {"gradient", "gradient_x_input", "integrated_gradients", "lrp_epsilon_0_1",
                                  "lrpz_sequential_composite_a"}
