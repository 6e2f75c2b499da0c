"""The real ``composer`` console script, in a subprocess, on models saved each way people save them."""
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

COMMAND = Path(sys.executable).parent / "composer"

FACTORY = """import torch
def make():
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 8 * 8, 5))
"""


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A folder with a factory module, its weights, and the model saved in every format."""
    folder = tmp_path_factory.mktemp("models")
    (folder / "mynet.py").write_text(FACTORY)
    namespace = {}
    exec(FACTORY, namespace)  # noqa: S102 - our own factory text
    torch.manual_seed(0)
    model = namespace["make"]().eval()
    torch.save(model.state_dict(), folder / "weights.pt")
    torch.save({"epoch": 3, "model_state_dict": model.state_dict()}, folder / "checkpoint.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(model).save(str(folder / "scripted.ts"))
        torch.jit.trace(model, torch.randn(1, 3, 8, 8)).save(str(folder / "traced.ts"))
    torch.export.save(torch.export.export(model, (torch.randn(1, 3, 8, 8),)), str(folder / "program.pt2"))
    np.save(folder / "x.npy", np.random.default_rng(0).random((3, 3, 8, 8), dtype=np.float32))
    (folder / "mine").mkdir()
    (folder / "mine" / "eps.yaml").write_text("name: eps\nextends: lrp_epsilon\nparams: {epsilon: 1e-6}\n")
    (folder / "presets").mkdir()
    (folder / "presets" / "my_z.yaml").write_text("name: my_z\nextends: lrp_z\n")
    return folder, model


def composer(folder, *args):
    env = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run([str(COMMAND), *map(str, args)], cwd=folder, capture_output=True, text=True, env=env,
                            timeout=300)
    return result.returncode, result.stdout + result.stderr


def _explain(folder, model_args, *extra, method="lrp_epsilon"):
    return composer(folder, "explain", *model_args, "-i", "x.npy", "--batched", "--method", method, "-o", "out",
                    *extra)


def test_factory_with_weights_and_a_preset_file(saved):
    folder, model = saved
    code, out = _explain(folder, ["-m", "mynet:make", "--weights", "weights.pt"], "-t", "1,2,3",
                         method="mine/eps.yaml")
    assert code == 0, out
    relevance = np.load(folder / "out" / "x_eps.npy")
    assert relevance.shape == (3, 3, 8, 8)
    import composer as lib

    x = torch.from_numpy(np.load(folder / "x.npy"))
    expected = lib.explain(model, x, "lrp_epsilon", target=[1, 2, 3], epsilon=1e-6)
    np.testing.assert_allclose(relevance, expected.numpy(), rtol=1e-5, atol=1e-7)
    assert sorted(p.name for p in (folder / "out").glob("x_eps_*.png")) == ["x_eps_0.png", "x_eps_1.png",
                                                                           "x_eps_2.png"]
    code, out = _explain(folder, ["-m", "mynet:make", "--weights", "checkpoint.pt"], method="lrp_epsilon_0_1")
    assert code == 0, out   # a training checkpoint's model_state_dict


@pytest.mark.parametrize("model_args,message", [
    (["-m", "weights.pt"], "holds a state dict"),
    (["-m", "weights.pt", "--weights", "weights.pt"], "needs the architecture"),
    (["-m", "checkpoint.pt"], "holds a state dict"),
    (["-m", "traced.ts"], "traced TorchScript model"),
    (["-m", "program.pt2"], "torch.export program"),
    (["-m", "missing.pt"], "no such model file"),
    (["-m", "mynet:nothing"], "has no 'nothing'"),
    (["-m", "mynet:make", "--weights", "missing.pt"], "no such weights file"),
])
def test_unusable_models_get_one_clear_line(saved, model_args, message):
    folder, _ = saved
    code, out = composer(folder, "explain", *model_args, "-i", "x.npy", "--batched", "--method", "lrp_epsilon",
                         "-o", "refused")
    assert code == 1 and message in out, out
    assert "Traceback" not in out
    assert not (folder / "refused").exists()   # nothing written


def test_pickled_models_need_trust(saved):
    folder, model = saved
    torch.save(model, folder / "whole.pt")   # pickles the class by reference to the factory module
    code, out = _explain(folder, ["-m", "whole.pt"])
    assert code == 1 and "--trust-pickle" in out and "Traceback" not in out
    code, out = _explain(folder, ["-m", "whole.pt", "--trust-pickle"])
    assert code == 0, out


def test_scripted_model_runs_with_one_plain_note(saved):
    folder, _ = saved
    code, out = _explain(folder, ["-m", "scripted.ts"])
    assert code == 0, out
    assert out.count("TorchScript is deprecated") == 1 and "FutureWarning" not in out


def test_canonizer_and_preset_dir_options(saved):
    folder, _ = saved
    code, out = _explain(folder, ["-m", "mynet:make", "--preset-dir", "presets", "--canonizer", "merge_batchnorm"],
                         method="my_z")
    assert code == 0, out
    assert (folder / "out" / "x_my_z.npy").is_file()
    code, out = _explain(folder, ["-m", "mynet:make", "-t", "1,2"])
    assert code == 1 and "2 classes for 3 samples" in out


def test_list_with_a_bad_pattern_and_summaries_with_brackets(saved):
    folder, _ = saved
    code, out = composer(folder, "list", "(")
    assert code != 0 and "not a regular expression" in out and "Traceback" not in out
    code, out = composer(folder, "list", "^zbox$", "--kind", "rules")
    assert code == 0 and "[low, high]" in out


def test_scientific_parameters_on_the_command_line(saved):
    folder, _ = saved
    code, out = composer(folder, "show", "lrp_epsilon", "-p", "epsilon=1e-6")
    assert code == 0 and "epsilon(epsilon=1e-06" in out, out


def test_validate_prints_every_error(saved, tmp_path):
    folder, _ = saved
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nextends: lrp_base\nlayers:\n"
                   "  - {select: all, rule: epsilon, with: {epsilon: 1e-6}}\n"
                   "  - {select: all, rule: gamma, with: {gamma: -1}}\n"
                   "  - {select: all, rule: zbox, with: {low: 2, high: 1}}\n"
                   "  - {select: {index: [0, 2]}, rule: alpha_beta, with: {alpha: -2}}\n")
    code, out = composer(folder, "validate", bad)
    assert code == 1
    assert "bad.yaml:5, field 'layers[1].with.gamma'" in out and "bad.yaml:6, field 'layers[2].with.low'" in out
    assert "bad.yaml:7, field 'layers[3].with.alpha'" in out and out.count("error ") == 3
