"""Quantus (0.6.0) as an independent oracle: its PixelFlipping and RegionPerturbation on the same model, data
and maps give the same curves as composer's region perturbation; composer.quantus.explain_func works inside it."""
import numpy as np
import pytest
import torch

import composer
import composer.quantus
from composer.evaluation import perturbation_curves

quantus = pytest.importorskip("quantus", reason="Quantus is not installed: pip install 'zennit-composer[heavy]'")
pytestmark = pytest.mark.heavy


def _cnn():
    torch.manual_seed(3)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(6, 8, 3, padding=1), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(8 * 4 * 4, 5)).eval()


def _data(n=12):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, 8, 8, generator=g) + 0.05        # no exact zeros: LRP maps without ties
    return x


def _no_ties(a):
    flat = a.reshape(a.shape[0], -1)
    return all(len(np.unique(row)) == row.size for row in flat)


def test_pixel_flipping_matches_quantus():
    model, x = _cnn(), _data()
    with torch.no_grad():
        y = model(x).argmax(1)
    a = composer.explain(model, x, "lrp_epsilon_0_1", target=y)
    assert _no_ties(a.numpy())     # Quantus sorts with an unstable sort: ties would make the orders differ
    mine, _ = perturbation_curves(model, x, a, y, steps=64, patch=1, perturbation="baseline:0", output="logit")
    metric = quantus.PixelFlipping(features_in_step=1, perturb_baseline=0.0, normalise=False, abs=False,
                                   disable_warnings=True)
    theirs = np.array(metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.numpy(), softmax=False,
                             device="cpu"))
    assert theirs.shape == (12, 64)
    np.testing.assert_allclose(mine["morf"][:, 1:].numpy(), theirs, rtol=1e-5, atol=1e-5)


def test_pixel_flipping_in_steps_of_four_with_probabilities():
    model, x = _cnn(), _data()
    with torch.no_grad():
        y = model(x).argmax(1)
    a = composer.explain(model, x, "gradient_x_input", target=y)
    assert _no_ties(a.numpy())
    mine, _ = perturbation_curves(model, x, a, y, steps=16, patch=1, perturbation="baseline:0.5",
                                  output="probability")
    metric = quantus.PixelFlipping(features_in_step=4, perturb_baseline=0.5, normalise=False, abs=False,
                                   disable_warnings=True)
    theirs = np.array(metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.numpy(), softmax=True,
                             device="cpu"))
    np.testing.assert_allclose(mine["morf"][:, 1:].numpy(), theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("order", ["morf", "lerf"])
def test_region_perturbation_matches_quantus_with_explain_func(order):
    """Quantus computes the maps itself through composer.quantus.explain_func (method and parameters in
    explain_func_kwargs); its curve is f(x) - f(x_k) over 2x2 patches."""
    model, x = _cnn(), _data()
    with torch.no_grad():
        y = model(x).argmax(1)
    kwargs = {"method": "lrp_epsilon", "epsilon": 0.25}
    a = composer.quantus.explain_func(model=model, inputs=x.numpy(), targets=y.numpy(), **kwargs)
    np.testing.assert_array_equal(a, composer.explain(model, x, "lrp_epsilon", target=y, epsilon=0.25).numpy())
    patch_sums = a.reshape(12, 4, 2, 4, 2).sum((2, 4))
    assert _no_ties(patch_sums)
    mine, _ = perturbation_curves(model, x, torch.from_numpy(a), y, steps=10, patch=2, fraction=10 / 16,
                                  perturbation="baseline:0", output="logit", orders=[order])
    metric = quantus.RegionPerturbation(patch_size=2, order=order, regions_evaluation=10, perturb_baseline=0.0,
                                        normalise=False, abs=False, disable_warnings=True)
    theirs = np.array(metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=None, softmax=False,
                             device="cpu", explain_func=composer.quantus.explain_func, explain_func_kwargs=kwargs))
    assert theirs.shape == (12, 10)
    curve = mine[order].numpy()
    np.testing.assert_allclose(curve[:, :1] - curve[:, 1:], theirs, rtol=1e-5, atol=1e-5)


def test_explain_func_passes_preset_parameters():
    model, x = _cnn(), _data(4)
    y = np.array([0, 1, 2, 3])
    a = composer.quantus.explain_func(model, x.numpy(), y, method="lrp_epsilon", epsilon=5.0)
    b = composer.quantus.explain_func(model, x.numpy(), y, method="lrp_epsilon", epsilon=0.01)
    assert a.shape == x.shape and a.dtype == np.float32
    assert not np.allclose(a, b)
    np.testing.assert_allclose(a, composer.explain(model, x, "lrp_epsilon", target=torch.tensor(y), epsilon=5.0))
