"""Whole datasets into a zarr store: equal to explain() batch by batch, resumable bit for bit, refusing
another job's store, every kind of source, the command line; heavy: a killed subprocess, and Ray."""
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("zarr", reason="the dataset store needs zarr: pip install 'zennit-composer[dataset]'")

import composer  # noqa: E402
from composer import ComposerError, explain, explain_dataset, open_store  # noqa: E402
from composer.dataset import DatasetSource, FolderSource, NpySource, store_gallery  # noqa: E402
from composer.demo import digits_cnn  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
METHOD = "lrp_epsilon_0_1"


def tree_bytes(path: Path) -> dict:
    """Every file of a store, relative path -> sha256 of its bytes (the store 'bit for bit')."""
    return {p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's digits (1x8x8 in [0, 1]) and their labels: 600 of them, made at test time."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images[:600], dtype=torch.float32)[:, None] / 16.0
    return x, torch.tensor(data.target[:600], dtype=torch.long)


@pytest.fixture(scope="module")
def cnn(digits):
    """The demo's digits CNN, trained for a few steps (so that it predicts several classes)."""
    torch.manual_seed(0)
    model = digits_cnn()
    x, y = digits
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(15):
        rows = slice(32 * step, 32 * step + 32)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x[rows]), y[rows]).backward()
        optimizer.step()
    return model.eval()


class Interrupting(torch.utils.data.Dataset):
    """The digits, raising KeyboardInterrupt (as Ctrl-C does) the first time position ``at`` is read."""

    def __init__(self, x, y, at):
        self.x, self.y, self.at, self.reads = x, y, at, []

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        if i == self.at and self.at is not None:
            self.at = None
            raise KeyboardInterrupt
        self.reads.append(i)
        return self.x[i], self.y[i]


# --------------------------------------------------------------------------- the store equals explain()
def test_store_equals_explain_over_the_same_batches(tmp_path, digits, cnn):
    x, y = digits
    x, y = x[:420], y[:420]
    store = explain_dataset(cnn, torch.utils.data.TensorDataset(x, y), METHOD, tmp_path / "s.zarr", batch_size=64,
                            progress=False)
    assert store.complete and store.maps.shape == (420, 1, 8, 8) and store.batch_size == 64 and store.batches == 7
    with torch.no_grad():
        logits = cnn(x)
    for start in range(0, 420, 64):                       # the last batch has 36 samples
        rows = slice(start, start + 64)
        expected = explain(cnn, x[rows], METHOD)           # target None: each sample's arg-max
        assert np.array_equal(store.maps[rows], expected.numpy())
    assert np.array_equal(store.logits[:], torch.cat([cnn(x[i:i + 64]) for i in range(0, 420, 64)]).detach().numpy())
    assert np.allclose(store.logits[:], logits.numpy(), atol=1e-5)
    assert np.array_equal(store.predicted[:], logits.argmax(1).numpy())
    assert np.array_equal(store.target[:], store.predicted[:])
    assert np.array_equal(store.label[:], y.numpy()) and np.array_equal(store.index[:], np.arange(420))
    assert store.paths is None and store.maps.dtype == np.float32


def test_provenance_records_method_preset_model_and_versions(tmp_path, digits, cnn):
    import yaml

    x, _ = digits
    store = explain_dataset(cnn, x[:40], METHOD, tmp_path / "s.zarr", batch_size=16, progress=False)
    meta = open_store(tmp_path / "s.zarr").provenance
    assert meta["method"] == METHOD and meta["samples"] == 40 and meta["batch_size"] == 16 and meta["target"] == "predicted"
    preset = yaml.safe_load(meta["preset_yaml"])
    assert preset["name"] == METHOD and preset["params"] == {"epsilon": 0.1}
    assert preset["layers"][0] == {"select": "all", "rule": "epsilon", "with": {"epsilon": 0.1, "bias": True}}
    again = composer.compile_preset(preset)   # the resolved preset compiles back to the same rules
    assert [b.describe() for b in again.bindings] == [b.describe() for b in composer.compile_preset(METHOD).bindings]
    assert meta["model"]["class"] == "torch.nn.modules.container.Sequential"
    assert len(meta["model"]["fingerprint"]) == 64
    assert meta["versions"]["torch"] == torch.__version__ and meta["versions"]["zennit"]
    assert meta["data"]["sample_shape"] == [1, 8, 8] and meta["data"]["kind"] == "array"
    assert "lrp_epsilon_0_1, 40/40 samples" in repr(store)


# --------------------------------------------------------------------------- resuming
def test_interrupted_run_resumes_to_the_identical_store(tmp_path, digits, cnn):
    x, y = digits
    x, y = x[:200], y[:200]
    whole = explain_dataset(cnn, Interrupting(x, y, None), METHOD, tmp_path / "whole.zarr", batch_size=32,
                            progress=False)
    broken = Interrupting(x, y, at=100)                   # Ctrl-C while reading chunk 3
    with pytest.raises(KeyboardInterrupt):
        explain_dataset(cnn, broken, METHOD, tmp_path / "part.zarr", batch_size=32, progress=False)
    part = open_store(tmp_path / "part.zarr")
    assert part.done().tolist() == [True, True, True, False, False, False, False]
    assert part.completed() == 96 and not part.complete
    resumed = Interrupting(x, y, None)
    explain_dataset(cnn, resumed, METHOD, tmp_path / "part.zarr", batch_size=32, progress=False)
    assert min(i for i in resumed.reads if i not in (0, 199)) == 96   # only the missing chunks were read
    assert tree_bytes(tmp_path / "part.zarr") == tree_bytes(tmp_path / "whole.zarr")
    assert whole.complete and open_store(tmp_path / "part.zarr").complete
    before = tree_bytes(tmp_path / "whole.zarr")        # a complete store: a rerun computes nothing
    again = Interrupting(x, y, None)
    explain_dataset(cnn, again, METHOD, tmp_path / "whole.zarr", batch_size=32, progress=False)
    assert sorted(set(again.reads)) == [0, 199] and tree_bytes(tmp_path / "whole.zarr") == before


def test_leftover_partial_files_of_a_killed_writer_are_removed(tmp_path, digits, cnn):
    x, _ = digits
    explain_dataset(cnn, x[:40], METHOD, tmp_path / "s.zarr", batch_size=16, progress=False)
    clean = tree_bytes(tmp_path / "s.zarr")
    (tmp_path / "s.zarr" / "maps" / "c" / "0" / "0" / "0" / "0.abc.partial").write_bytes(b"half")
    explain_dataset(cnn, x[:40], METHOD, tmp_path / "s.zarr", batch_size=16, progress=False)
    assert tree_bytes(tmp_path / "s.zarr") == clean


# --------------------------------------------------------------------------- refusing another job's store
def test_a_store_of_another_job_is_refused_and_kept(tmp_path, digits, cnn):
    x, _ = digits
    x = x[:48]
    out = tmp_path / "s.zarr"
    explain_dataset(cnn, x, METHOD, out, batch_size=16, progress=False)
    before = tree_bytes(out)
    other = digits_cnn()
    other.load_state_dict(cnn.state_dict())
    with torch.no_grad():
        other.fc2.bias[3] += 1e-3                          # one weight differs
    cases = [((cnn, x, "gradient"), {}, "method: the store has 'lrp_epsilon_0_1', this run 'gradient'"),
             ((cnn, x, "lrp_epsilon"), {"epsilon": 0.25}, "method"),
             ((other, x, METHOD), {}, "model: the store was written by another model"),
             ((cnn, x, METHOD), {"batch_size": 8}, "batch_size: the store has 16, this run 8"),
             ((cnn, x + 0.5, METHOD), {}, "data:"),
             ((cnn, x, METHOD), {"target": 3}, "target:")]
    for args, kwargs, text in cases:
        with pytest.raises(ComposerError, match="written by another job") as err:
            explain_dataset(*args, out, **{"batch_size": 16, "progress": False, **kwargs})
        assert text in str(err.value)
        assert tree_bytes(out) == before                    # never overwritten
    store = explain_dataset(cnn, x, "gradient", out, batch_size=16, progress=False, overwrite=True)
    assert store.method == "gradient"


def test_a_folder_that_is_not_a_store_is_never_touched(tmp_path, digits, cnn):
    x, _ = digits
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(ComposerError, match="not a composer store"):
            explain_dataset(cnn, x[:8], METHOD, tmp_path / "mine", progress=False, overwrite=overwrite)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(ComposerError, match="no such store"):
        open_store(tmp_path / "absent.zarr")
    with pytest.raises(ComposerError, match="not written by explain_dataset|not a zarr store"):
        open_store(tmp_path / "mine")


# --------------------------------------------------------------------------- sources and targets
def test_npy_files_with_labels_read_in_chunks(tmp_path, digits, cnn):
    x, y = digits
    np.save(tmp_path / "x.npy", (x[:50].numpy() * 255).astype(np.uint8))   # integers become float32
    np.save(tmp_path / "y.npy", y[:50].numpy())
    src = NpySource(tmp_path / "x.npy", tmp_path / "y.npy")
    got, labels = src.read([3, 4, 5, 9])
    assert np.array_equal(got.numpy(), (x[[3, 4, 5, 9]].numpy() * 255).astype(np.uint8).astype(np.float32))
    assert labels.tolist() == y[[3, 4, 5, 9]].tolist()
    store = explain_dataset(cnn, tmp_path / "x.npy", METHOD, tmp_path / "s.zarr", labels=tmp_path / "y.npy",
                            target="label", batch_size=20, progress=False)
    xs = torch.from_numpy(np.load(tmp_path / "x.npy").astype(np.float32))
    assert np.array_equal(store.target[:], y[:50].numpy()) and np.array_equal(store.label[:], y[:50].numpy())
    assert np.array_equal(store.maps[20:40], explain(cnn, xs[20:40], METHOD, target=y[20:40]).numpy())
    assert store.provenance["data"]["kind"] == "npy"


def test_folder_of_images_with_class_subfolders(tmp_path, digits, cnn):
    from PIL import Image

    x, y = digits
    for i in range(12):
        folder = tmp_path / "images" / f"class_{int(y[i])}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((x[i, 0].numpy() * 255).round().astype(np.uint8), mode="L").save(folder / f"{i:03d}.png")
    src = FolderSource(tmp_path / "images", mode="L")
    assert len(src) == 12 and src.classes == sorted({f"class_{int(v)}" for v in y[:12]})
    store = explain_dataset(cnn, tmp_path / "images", METHOD, tmp_path / "s.zarr", image_mode="L", batch_size=5,
                            progress=False)
    names = store.paths[:].tolist()
    assert names == src.files and all(n.startswith("class_") for n in names)
    first, _ = src.read([0])
    assert first.shape == (1, 1, 8, 8) and float(first.max()) <= 1.0
    assert np.array_equal(store.maps[0:5], explain(cnn, src.read(range(5))[0], METHOD).numpy())
    assert store.label[:].tolist() == [src.classes.index(n.split("/")[0]) for n in names]


def test_dataloader_is_read_in_order_and_a_shuffled_one_is_refused(tmp_path, digits, cnn):
    x, y = digits
    data = torch.utils.data.TensorDataset(x[:40], y[:40])
    loader = torch.utils.data.DataLoader(data, batch_size=16)
    store = explain_dataset(cnn, loader, METHOD, tmp_path / "s.zarr", progress=False)
    assert store.batch_size == 16                                # the loader's batch size
    assert np.array_equal(store.maps[16:32], explain(cnn, x[16:32], METHOD).numpy())
    with pytest.raises(ComposerError, match="shuffle=False"):
        explain_dataset(cnn, torch.utils.data.DataLoader(data, shuffle=True), METHOD, tmp_path / "t.zarr")

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(x[:4])

    with pytest.raises(ComposerError, match="IterableDataset"):
        explain_dataset(cnn, Stream(), METHOD, tmp_path / "t.zarr")
    assert not (tmp_path / "t.zarr").exists()


def test_dataset_items_are_collated_and_read_by_loader_workers(tmp_path, digits, cnn):
    x, y = digits

    class Plain(torch.utils.data.Dataset):          # one item at a time, read by two worker processes
        def __len__(self):
            return 30

        def __getitem__(self, i):
            return x[i], int(y[i])

    store = explain_dataset(cnn, torch.utils.data.DataLoader(Plain(), batch_size=8, num_workers=2), METHOD,
                            tmp_path / "s.zarr", target="label", progress=False)
    assert np.array_equal(store.label[:], y[:30].numpy()) and np.array_equal(store.target[:], y[:30].numpy())
    assert np.array_equal(store.maps[24:30], explain(cnn, x[24:30], METHOD, target=y[24:30]).numpy())
    assert DatasetSource(Plain()).read([2, 3])[1].tolist() == y[2:4].tolist()


def test_indices_targets_and_seeded_stochastic_methods(tmp_path, digits, cnn):
    x, y = digits
    picked = [5, 3, 99, 42, 7]
    store = explain_dataset(cnn, x, METHOD, tmp_path / "a.zarr", indices=picked, target=[1, 2, 3, 4, 5],
                            batch_size=2, progress=False)
    assert store.index[:].tolist() == picked and store.target[:].tolist() == [1, 2, 3, 4, 5]
    assert np.array_equal(store.maps[2:4], explain(cnn, x[[99, 42]], METHOD, target=[3, 4]).numpy())
    store = explain_dataset(cnn, x[:12], "smoothgrad", tmp_path / "b.zarr", seed=7, batch_size=6,
                            num_samples=4, progress=False)
    for chunk in (0, 1):                                    # chunk c draws its noise with seed + c
        rows = slice(6 * chunk, 6 * chunk + 6)
        assert np.array_equal(store.maps[rows], explain(cnn, x[rows], "smoothgrad", seed=7 + chunk,
                                                        num_samples=4).numpy())
    bad = [({"target": "labels"}, "target is 'predicted', 'label'"), ({"target": "label"}, "no labels"),
           ({"target": [1, 2]}, "12 integer classes"), ({"target": 10}, "out of range"),
           ({"indices": [0, 12]}, r"indices must lie in \[0, 12\)"), ({"batch_size": 0}, "batch_size"),
           ({"backend": "spark"}, "backend is 'local' or 'ray'")]
    for i, (kwargs, text) in enumerate(bad):
        with pytest.raises(ComposerError, match=text):
            explain_dataset(cnn, x[:12], METHOD, tmp_path / f"bad{i}.zarr", progress=False, **kwargs)


def test_without_zarr_or_ray_the_error_names_the_extra(tmp_path, monkeypatch):
    net = torch.nn.Linear(3, 2)
    monkeypatch.setitem(sys.modules, "ray", None)             # importing it raises ImportError
    with pytest.raises(ComposerError, match=r"pip install 'zennit-composer\[ray\]'"):
        explain_dataset(net, torch.randn(4, 3), "gradient", tmp_path / "r.zarr", backend="ray", progress=False)
    monkeypatch.setitem(sys.modules, "zarr", None)
    with pytest.raises(ComposerError, match=r"pip install 'zennit-composer\[dataset\]'"):
        explain_dataset(net, torch.randn(4, 3), "gradient", tmp_path / "s.zarr", progress=False)
    assert not (tmp_path / "r.zarr").exists() and not (tmp_path / "s.zarr").exists()
    assert explain(net, torch.randn(4, 3), "gradient").shape == (4, 3)   # the plain path needs neither


# --------------------------------------------------------------------------- command line and gallery
def test_command_line_explains_data_and_draws_a_gallery(tmp_path, digits, cnn):
    from typer.testing import CliRunner

    from composer.cli import app

    x, y = digits
    np.save(tmp_path / "x.npy", x[:30].numpy())
    np.save(tmp_path / "y.npy", y[:30].numpy())
    torch.save(cnn.state_dict(), tmp_path / "w.pt")
    args = ["explain", "-m", "composer.demo:digits_cnn", "--weights", str(tmp_path / "w.pt"), "--data",
            str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"), "--method", METHOD, "-t", "label",
            "--batch-size", "8", "-o", str(tmp_path / "out")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    path = tmp_path / "out" / "x_lrp_epsilon_0_1.zarr"
    assert f"wrote {path}" in result.output.replace("\n", "")
    store = open_store(path)
    assert np.array_equal(store.maps[8:16], explain(cnn, x[8:16], METHOD, target=y[8:16]).numpy())
    assert CliRunner().invoke(app, args).exit_code == 0     # complete: nothing to do
    refused = CliRunner().invoke(app, [a if a != METHOD else "gradient" for a in args[:-1]] + [str(path)])
    assert refused.exit_code == 1 and "another job" in refused.output
    result = CliRunner().invoke(app, ["gallery", str(path), "-n", "6"])
    assert result.exit_code == 0, result.output
    png = tmp_path / "out" / "x_lrp_epsilon_0_1_gallery.png"
    assert png.stat().st_size > 1000
    from PIL import Image

    with Image.open(png) as image:
        assert image.size[0] > 200
    assert store_gallery(store, tmp_path / "g.png", rows=[0, 29]).exists()
    assert CliRunner().invoke(app, ["explain", "-m", "composer.demo:digits_cnn", "--method", METHOD]).exit_code == 2


# --------------------------------------------------------------------------- heavy: a killed process, and Ray
RUNNER = textwrap.dedent("""
    import sys, time, torch
    torch.set_num_threads(2)
    from pathlib import Path
    from composer import explain_dataset
    from composer.dataset import store
    from composer.demo import digits_cnn

    store.MAX_GROUP = 4                       # store chunks of 4 batches: several groups in 38 batches

    class Slow(torch.utils.data.Dataset):     # time to be interrupted between batches; a file per batch read
        def __init__(self, x, y):
            self.x, self.y = x, y
        def __len__(self):
            return len(self.x)
        def __getitem__(self, i):
            if i % 16 == 0:
                time.sleep(0.1)
                (Path(sys.argv[2]).parent / "reads" / f"{i}-{time.time_ns()}").touch()
            return self.x[i], self.y[i]

    data = torch.load(sys.argv[1])
    model = digits_cnn()
    model.load_state_dict(data["model"])
    explain_dataset(model.eval(), Slow(data["x"], data["y"]), "lrp_epsilon_0_1", sys.argv[2], batch_size=16,
                    progress=False)
""")


def _run_until(args, reads: Path, batches: int, sig) -> int:
    """Start the runner, send ``sig`` once it has read ``batches`` more batches; its exit code."""
    start = len(list(reads.iterdir()))
    proc = subprocess.Popen(args, cwd=ROOT, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            if len(list(reads.iterdir())) >= start + batches:
                proc.send_signal(sig)
                break
            time.sleep(0.02)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode


@pytest.mark.heavy
def test_subprocess_sigint_then_sigkill_then_resume_gives_the_identical_store(tmp_path, digits, cnn, monkeypatch):
    from composer.dataset import store as layout

    x, y = digits
    x, y = x[:600], y[:600]                                     # 38 batches of 16, store chunks of 4 batches
    torch.save({"model": cnn.state_dict(), "x": x, "y": y}, tmp_path / "data.pt")
    (tmp_path / "runner.py").write_text(RUNNER)
    (tmp_path / "reads").mkdir()
    path = tmp_path / "s.zarr"
    args = [sys.executable, str(tmp_path / "runner.py"), str(tmp_path / "data.pt"), str(path)]
    assert _run_until(args, tmp_path / "reads", 8, signal.SIGINT) != 0
    after_int = open_store(path).done()                         # Ctrl-C: every batch computed is flagged done
    assert 5 <= after_int.sum() < 38 and after_int[:after_int.sum()].all()
    assert _run_until(args, tmp_path / "reads", 14, signal.SIGKILL) == -signal.SIGKILL
    after_kill = open_store(path).done()                        # killed: complete groups were written, the open
    assert after_int.sum() < after_kill.sum() < 38              # one was lost
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    monkeypatch.setattr(layout, "MAX_GROUP", 4)
    whole = explain_dataset(cnn, Interrupting(x, y, None), METHOD, tmp_path / "w.zarr", batch_size=16,
                            progress=False)                     # never interrupted, the same kind of source
    assert whole.complete and open_store(path).complete
    assert open_store(path).maps.chunks == (64, 1, 8, 8) and open_store(path).done().size == 38
    assert tree_bytes(path) == tree_bytes(tmp_path / "w.zarr")


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray", reason="the Ray backend needs ray[data]: pip install 'zennit-composer[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.mark.heavy
def test_local_ray_with_two_workers_gives_the_single_process_store(tmp_path, digits, cnn, local_ray):
    x, y = digits
    data = torch.utils.data.TensorDataset(x[:320], y[:320])
    local = explain_dataset(cnn, data, METHOD, tmp_path / "local.zarr", batch_size=32, progress=False)
    store = explain_dataset(cnn, data, METHOD, tmp_path / "ray.zarr", batch_size=32, backend="ray", workers=2,
                            progress=False)
    assert store.complete and local.complete
    assert tree_bytes(tmp_path / "ray.zarr") == tree_bytes(tmp_path / "local.zarr")
    import zarr

    group = zarr.open_group(str(tmp_path / "ray.zarr"), mode="r+")
    for batch in (3, 4, 8):                  # as if interrupted: Ray computes what is missing, and only that
        group["done"][batch] = False
        group["maps"][32 * batch:32 * batch + 32] = 0.0
    assert open_store(tmp_path / "ray.zarr").done().sum() == 7
    explain_dataset(cnn, data, METHOD, tmp_path / "ray.zarr", batch_size=32, backend="ray", workers=2, progress=False)
    assert tree_bytes(tmp_path / "ray.zarr") == tree_bytes(tmp_path / "local.zarr")
    with pytest.raises(ComposerError, match="out of range"):    # a worker's error, unwrapped
        explain_dataset(cnn, data, METHOD, tmp_path / "bad.zarr", batch_size=160, target=12, backend="ray",
                        workers=2, progress=False)


@pytest.mark.heavy
def test_xarray_reads_the_store_as_the_docs_say(tmp_path, digits, cnn):
    xr = pytest.importorskip("xarray", reason="reading a store with xarray needs xarray (the heavy extra)")
    x, y = digits
    store = explain_dataset(cnn, (x[:100], y[:100]), METHOD, tmp_path / "val.zarr", batch_size=32, progress=False)
    maps = store.maps[:]
    assert (maps == 0).any()                                    # digits' background: exact zeros, not missing
    ds = xr.open_zarr(tmp_path / "val.zarr", consolidated=False)
    assert ds.maps.dims == ("sample", "channel", "height", "width") and ds.logits.dims == ("sample", "class")
    assert np.array_equal(ds.maps.values, maps) and np.array_equal(ds.label.values, y[:100].numpy())
    mean_map_of_3 = ds.maps.where(ds.predicted == 3, drop=True).mean("sample")
    assert np.allclose(mean_map_of_3.values, maps[store.predicted[:] == 3].mean(0), atol=1e-6)
    assert ds.attrs["composer"]["method"] == METHOD


def test_gallery_draws_one_dimensional_maps_as_curves(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(20, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    store = explain_dataset(net, torch.randn(7, 20), "gradient", tmp_path / "s.zarr", batch_size=3, progress=False)
    assert store.maps.shape == (7, 20) and store.done().tolist() == [True, True, True]
    from composer.dataset.gallery import pick_samples

    assert pick_samples(store, 4).tolist() == [0, 2, 4, 6]
    assert store_gallery(store, tmp_path / "g.png", count=5).stat().st_size > 1000
