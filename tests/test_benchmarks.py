"""The benchmark's quick mode runs in CI so it cannot rot; its targets are reported, not enforced here."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_benchmark_runs_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", "--models", "vgg16,conv1d",
                             "--batches", "1", "--json", str(out)], cwd=ROOT, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(out.read_text())
    methods = {r["method"] for r in data["rows"]}
    assert {"gradient", "lrp_epsilon_0_1", "lrpz_sequential_composite_a", "zennit_epsilon_0_1", "grad_cam"} <= methods
    assert all(r["seconds"] > 0 and r["ratio"] > 0 for r in data["rows"])
    assert data["compose"]["cached_ms"] > 0
    assert any(r["memory_ratio"] is not None for r in data["rows"])
    assert "| vgg16 | 1 | lrp_epsilon_0_1 |" in result.stdout


def test_zennit_lookalikes_measure_what_the_docs_table_says():
    from benchmarks.zennit_lookalikes import markdown, measure

    rows = {(r["preset"], r["zennit_rule"]): r for r in measure(models=("mlp",))}
    assert rows["lrp_epsilon", "zennit_epsilon"]["relative_l2"] == 0.0          # the same rule
    assert rows["lrp_flat", "zennit_flat"]["relative_l2"] < 1e-5                # only the stabiliser differs
    assert 0.01 < rows["lrp_z_plus", "zennit_z_plus"]["relative_l2"] < 0.1      # the bias
    assert rows["lrp_gamma", "zennit_gamma"]["relative_l2"] > 1.0               # another rule
    table = markdown(list(rows.values()))
    docs = (ROOT / "docs" / "zennit.md").read_text()
    assert "| `lrp_z_plus` | `zennit_z_plus()` |" in table and "| `lrp_z_plus` | `zennit_z_plus()` |" in docs
