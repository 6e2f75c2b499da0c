"""The composer command, driven as a user would."""
import json

import numpy as np
import torch
from PIL import Image
from typer.testing import CliRunner

from composer.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_list_presets_rules_methods():
    result = run("list")
    assert result.exit_code == 0 and "lrp_sequential_composite_a" in result.output
    result = run("list", "sign", "--kind", "rules")
    assert result.exit_code == 0 and "sign_mu" in result.output and "epsilon " not in result.output
    result = run("list", "^gradient_x", "--kind", "methods")
    assert "gradient_x_sign_mu_neg_0_5" in result.output.split()


def test_show_resolves_bindings_and_origins():
    result = run("show", "lrpsign_epsilon_0_25_std_x_mu_0_5")
    assert result.exit_code == 0, result.output
    assert "sign_mu(mu=0.5" in result.output and "stdx_epsilon(stdfactor=0.25" in result.output
    assert "lrpsign.yaml" in result.output
    result = run("show", "lrp_epsilon", "-p", "epsilon=0.5")
    assert "epsilon(epsilon=0.5" in result.output


def test_validate_reports_line_and_exit_code(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("name: good\nextends: lrp_epsilon\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nlayers:\n  - select: all\n    rule: epsilon\n    with: {epsilon: -2}\n")
    result = run("validate", good)
    assert result.exit_code == 0 and "ok" in result.output
    result = run("validate", good, bad)
    assert result.exit_code == 1
    assert f"{bad}:5" in result.output and "layers[0].with.epsilon" in result.output


def test_schema_prints_json():
    result = run("schema")
    assert result.exit_code == 0 and json.loads(result.output)["title"] == "Preset"


def test_explain_torchscript_model(tmp_path, small_cnn):
    scripted = tmp_path / "model.pt"
    torch.jit.script(small_cnn).save(str(scripted))
    x = np.random.RandomState(0).randn(3, 8, 8).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    result = run("explain", "-m", scripted, "-i", tmp_path / "x.npy", "--method", "lrpz_sequential_composite_a",
                 "-o", tmp_path / "out", "-t", "2")
    assert result.exit_code == 0, result.output
    relevance = np.load(tmp_path / "out" / "x_lrpz_sequential_composite_a.npy")
    assert relevance.shape == (1, 3, 8, 8) and np.isfinite(relevance).all()
    import composer  # the scripted model is rebuilt eagerly: real LRP, not a silently plain gradient

    eager = composer.explain(small_cnn, torch.from_numpy(x)[None], "lrpz_sequential_composite_a", target=2)
    assert np.allclose(relevance, eager.numpy(), atol=1e-6)
    assert (tmp_path / "out" / "x_lrpz_sequential_composite_a.png").stat().st_size > 1000


def test_explain_image_input_and_factory(tmp_path, monkeypatch):
    (tmp_path / "mymodels.py").write_text(
        "import torch\n"
        "def make():\n"
        "    torch.manual_seed(0)\n"
        "    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),\n"
        "                               torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 3))\n")
    Image.fromarray((np.random.RandomState(0).rand(6, 6, 3) * 255).astype(np.uint8)).save(tmp_path / "img.png")
    monkeypatch.chdir(tmp_path)
    result = run("explain", "-m", "mymodels:make", "-i", "img.png", "--method", "gradient_x_sign", "-o", "out")
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "out" / "img_gradient_x_sign.npy").shape == (1, 3, 6, 6)


def test_explain_reports_bad_method(tmp_path, small_cnn):
    scripted = tmp_path / "model.pt"
    torch.jit.script(small_cnn).save(str(scripted))
    np.save(tmp_path / "x.npy", np.zeros((3, 8, 8), np.float32))
    result = run("explain", "-m", scripted, "-i", tmp_path / "x.npy", "--method", "lrp_epsilom")
    assert result.exit_code == 1 and "lrp_epsilon" in result.output


def test_demo_fast_writes_a_non_blank_gallery(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPOSER_CACHE", str(tmp_path / "cache"))
    result = run("demo", "--fast", "-o", tmp_path / "demo")
    assert result.exit_code == 0, result.output
    assert "lrpsign_epsilon_0_25_std_x_mu_0_5" in result.output
    image = np.asarray(Image.open(tmp_path / "demo" / "gallery.png").convert("RGB"), dtype=np.float32)
    assert image.shape[0] > 100 and image.std() > 10          # not blank
    assert (tmp_path / "cache").is_dir()                      # weights cached for the next run
    from composer.demo import run_demo

    maps = run_demo(tmp_path / "again", n_samples=3, epochs=2, cache=tmp_path / "cache")["maps"]
    names = list(maps)
    same = [(a, b) for i, a in enumerate(names) for b in names[i + 1:] if torch.allclose(maps[a], maps[b])]
    assert not same                                           # every column shows something of its own


def test_python_dash_m(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "composer", "list", "--kind", "rules"], capture_output=True, text=True)
    assert out.returncode == 0 and "stdx_epsilon" in out.stdout


def test_scripted_custom_module_is_refused(tmp_path):
    class Custom(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(x) * 2

    torch.jit.script(Custom()).save(str(tmp_path / "custom.pt"))
    np.save(tmp_path / "x.npy", np.zeros(4, np.float32))
    result = run("explain", "-m", tmp_path / "custom.pt", "-i", tmp_path / "x.npy", "--method", "lrp_z")
    assert result.exit_code == 1 and "TorchScript ignores Python hooks" in result.output
