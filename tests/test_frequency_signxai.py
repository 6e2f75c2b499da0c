"""composer.frequency against an independent implementation: SignXAI's ``dftutils`` (signxai2 0.15.10).

The wheel declares Python >= 3.11.11 and depends on zennit 1.0 and LXT, but ``dftutils`` needs only
torch and numpy: it is fetched once, without dependencies, into ``<venv>/signxai2-0.15.10`` (as
``scripts/dev.sh`` does for zennit 1.0) and loaded from its file. ``heavy``: the first run downloads it.

Two conventions of the reference, found by these comparisons, are handled explicitly:

* it builds the short-time DFT's weight matrices in **float16** (``dtype = np.float16`` for real
  weights), so its time-frequency relevance carries float16 rounding (about 1e-3 of the largest
  value); the shipped code is compared at that tolerance, and the same code with float16 replaced
  by float64 at float32 tolerance;
* with ``leverage_symmetry`` its inverse DFT's Nyquist row is ``ones`` instead of ``(-1)^n``, so its
  Nyquist bin (even N) gets the wrong relevance and the sum over bins is not conserved whenever the
  signal has a Nyquist component; composer's Nyquist bin is checked against its own all-bins
  result instead (``test_frequency.py``), and the reference's error is shown here.
"""
import contextlib
import importlib.util
import subprocess
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from composer.frequency import frequency_relevance, time_frequency_relevance

pytestmark = pytest.mark.heavy

VERSION = "0.15.10"


def _install(target: Path) -> Path:
    module = target / "signxai2" / "dftutils.py"
    if module.is_file():
        return module
    wheels = target.with_name(target.name + ".wheel")
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    try:
        subprocess.run(pip + ["download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
                              f"signxai2=={VERSION}", "-d", str(wheels)], check=True, capture_output=True, timeout=300)
        wheel = next(wheels.glob(f"signxai2-{VERSION}-*.whl"))
        subprocess.run(pip + ["install", "--no-deps", "--ignore-requires-python", "--target", str(target), str(wheel)],
                       check=True, capture_output=True, timeout=300)
    except (subprocess.SubprocessError, StopIteration, OSError) as err:
        detail = err.stderr.decode(errors="replace")[-300:] if isinstance(err, subprocess.CalledProcessError) else err
        pytest.skip(f"signxai2=={VERSION} (SignXAI's dftutils) could not be fetched and installed: {detail}")
    return module


@pytest.fixture(scope="session")
def dftutils():
    path = _install(Path(sys.prefix) / f"signxai2-{VERSION}")
    spec = importlib.util.spec_from_file_location("signxai2_dftutils", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def dftutils_float64_weights(dftutils):
    """The same code with its float16 weight dtype replaced by float64 (nothing else changed)."""
    spec = importlib.util.spec_from_file_location("signxai2_dftutils_f64", dftutils.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.np = types.SimpleNamespace(**{k: getattr(np, k) for k in dir(np) if not k.startswith("__")})
    module.np.float16 = np.float64
    return module


def _reference(module, n, relevance, signal, short_time, **settings):
    """``(signal, relevance)`` in the domain from the reference's ``DFTLRP(n, **settings).dft_lrp``."""
    with _quiet():
        ref = module.DFTLRP(n, cuda=False, create_inverse=False, **settings)
        return ref.dft_lrp(relevance, signal, real=False, short_time=short_time)


@contextlib.contextmanager
def _quiet():
    """The reference copies its inputs with torch.tensor(tensor): a warning each time."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "To copy construct from a tensor", UserWarning)
        yield


def _inputs(n, seed=0, batch=3, nyquist=True):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, n))
    x = np.sign(x) * (0.3 + np.abs(x))              # away from zero: the two stabilisers' signs do not matter
    if not nyquist:                                 # no Nyquist component: sum_n (-1)^n x_n = 0
        alt = (-1.0) ** np.arange(n)
        x = x - np.outer(x @ alt / n, alt)
    return x.astype(np.float32), rng.normal(size=(batch, n)).astype(np.float32)


def _ours(fn, x, r, *args, **kwargs):
    signal, rel = fn(torch.from_numpy(x).double(), torch.from_numpy(r).double(), *args, **kwargs)
    return signal.numpy(), rel.numpy()


def _close(ours, ref, rtol):
    scale = np.abs(ours).max()
    assert np.abs(ours - ref).max() <= rtol * scale, (np.abs(ours - ref).max(), scale)


@pytest.mark.parametrize("symmetric", [False, True])
def test_frequency_relevance_equals_dftutils(dftutils, symmetric):
    x, r = _inputs(128, nyquist=not symmetric)
    ref_signal, ref_rel = _reference(dftutils, 128, r, x, False, leverage_symmetry=symmetric,   # epsilon 1e-6,
                                     create_stdft=False)                                          # as shipped
    signal, rel = _ours(frequency_relevance, x, r, symmetric=symmetric, epsilon=1e-6)
    assert ref_rel.shape == rel.shape
    _close(signal, ref_signal, 1e-6)
    _close(rel, ref_rel, 1e-5)
    assert np.allclose(rel.sum(-1), r.sum(-1), atol=1e-4)


def test_the_combined_call_equals_to_domain(dftutils):
    x, r = _inputs(256, seed=1, nyquist=False)
    with _quiet():
        sig_f, rel_f, sig_tf, rel_tf = dftutils.calculate_dft_explanation(x, r, window_width=64)   # its defaults
    signal, rel = _ours(frequency_relevance, x, r)
    _close(signal, sig_f, 1e-6)
    _close(rel, rel_f, 1e-5)
    signal, rel = _ours(time_frequency_relevance, x, r, 64)
    _close(signal, sig_tf, 2e-3)                    # its float16 short-time weights
    _close(rel[..., :-1], rel_tf[..., :-1], 5e-3)   # and its Nyquist row


@pytest.mark.parametrize("window", ["rectangle", "halfsine"])
@pytest.mark.parametrize("overlap", [1, 2, 4])
@pytest.mark.parametrize("symmetric", [False, True])
def test_time_frequency_relevance_equals_dftutils(dftutils, dftutils_float64_weights, window, overlap, symmetric):
    n, width = 96, 16
    x, r = _inputs(n, seed=overlap)
    bins = slice(None, -1) if symmetric else slice(None)   # the reference's Nyquist row (module docstring)
    signal, rel = _ours(time_frequency_relevance, x, r, width, width // overlap, window, symmetric, 1e-6)
    for module, rtol in ((dftutils_float64_weights, 1e-5), (dftutils, 5e-3)):
        ref_signal, ref_rel = _reference(module, n, r, x, True, leverage_symmetry=symmetric, create_dft=False,
                                         window_shift=overlap, window_width=width, window_shape=window)
        assert ref_rel.shape == rel.shape == (3, (n - width) // (width // overlap) + 1, n // 2 + 1 if symmetric else n)
        _close(signal, ref_signal, rtol)
        _close(rel[..., bins], ref_rel[..., bins], rtol)
    assert np.allclose(rel.sum((-2, -1)), r.sum(-1), atol=1e-4)


def test_the_references_nyquist_row_breaks_conservation(dftutils):
    x, r = _inputs(64, seed=5)                      # with a Nyquist component
    _, ref_rel = _reference(dftutils, 64, r, x, False, leverage_symmetry=True, create_stdft=False)
    _, rel = _ours(frequency_relevance, x, r)
    _close(rel[:, :-1], ref_rel[:, :-1], 1e-5)      # every other bin agrees
    assert np.abs(ref_rel.sum(-1) - r.sum(-1)).max() > 1e-2
    assert np.allclose(rel.sum(-1), r.sum(-1), atol=1e-6)
