"""``Explainer``: explain() for many batches with one set-up gives explain()'s maps bit for bit, leaves the
model as it was, refuses a model changed under it, and is safe to share between threads."""
import threading
import warnings

import pytest
import torch
from torch import nn

import composer
from composer import ComposerError, Explainer
from composer.compiler import ComposerWarning
from tests.conftest import assert_state_equal, hooks_left, state_of
from tests.test_graph import FunctionalNet, _net

METHODS = [
    ("lrp_epsilon_0_1", {}),
    ("lrpsign_epsilon_0_25_std_x_mu_0_5", {}),
    ("lrp_alpha_2_beta_1", {}),
    ("lrpz_sequential_composite_a", {}),
    ("gradient_x_sign", {}),
    ("guided_backprop", {}),
    ("deconvnet", {}),
    ("integrated_gradients", {"steps": 4}),
    ("grad_cam", {}),
    ("epsilon_plus", {}),
]


@pytest.fixture(scope="module")
def net():
    return _net(FunctionalNet)   # residual sum, functional and in-place operations


@pytest.mark.parametrize("method, params", METHODS, ids=[m for m, _ in METHODS])
def test_every_batch_equals_explain_bit_for_bit(net, method, params):
    torch.manual_seed(1)
    x, targets = torch.randn(6, 3, 8, 8), [0, 3, 1, 4, 2, 2]
    before = state_of(net)
    with Explainer(net, method, **params) as explainer:
        maps = [explainer(batch, targets[2 * i:2 * i + 2]) for i, batch in enumerate(x.split(2))]
        predicted = explainer(x[:3])   # target None: each sample's arg-max, as explain() takes it
    for i, batch in enumerate(x.split(2)):
        assert torch.equal(maps[i], composer.explain(net, batch, method, target=targets[2 * i:2 * i + 2], **params))
    assert torch.equal(predicted, composer.explain(net, x[:3], method, **params))
    assert_state_equal(net, before)
    assert hooks_left(net) == 0 and not any(p.requires_grad is False for p in net.parameters())


def test_seeded_stochastic_method_equals_explain_per_call(net):
    x = torch.randn(4, 3, 8, 8)
    with Explainer(net, "smoothgrad", noise_level=0.2, num_samples=3) as explainer:
        first, second = explainer(x, seed=7), explainer(x, seed=8)
    assert torch.equal(first, composer.explain(net, x, "smoothgrad", noise_level=0.2, num_samples=3, seed=7))
    assert torch.equal(second, composer.explain(net, x, "smoothgrad", noise_level=0.2, num_samples=3, seed=8))
    assert not torch.equal(first, second)


def test_a_model_changed_while_open_is_refused_when_the_block_ends(net):
    model = _net(FunctionalNet)
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(ComposerError, match="changed .* while its Explainer was open"):
        with Explainer(model, "lrp_epsilon_0_1") as explainer:
            explainer(x)
            with torch.no_grad():
                model.fc.weight.mul_(2)
    with pytest.raises(ZeroDivisionError):   # the block's own error is what the caller sees
        with Explainer(model, "lrp_epsilon_0_1") as explainer:
            with torch.no_grad():
                model.fc.weight.mul_(2)
            1 / 0


def test_misuse_is_a_clear_error(net):
    explainer = Explainer(net, "lrp_epsilon_0_1")
    with pytest.raises(ComposerError, match="inside its with block"):
        explainer(torch.randn(2, 3, 8, 8))
    with explainer:
        with pytest.raises(ComposerError, match="already open"):
            explainer.__enter__()
        with pytest.raises(ComposerError, match="float32 or float64"):
            explainer(torch.zeros(2, 3, 8, 8, dtype=torch.int64))
        with pytest.raises(ComposerError, match="target has 3 entries"):
            explainer(torch.randn(2, 3, 8, 8), [0, 1, 2])
    with pytest.raises(ComposerError, match="epsilon"):
        Explainer(net, "lrp_epsilon_0_1", epsilon=-1)   # parameters are checked when it is made


def test_an_uncopyable_model_is_hooked_for_the_block_and_restored():
    class Uncopyable(nn.Sequential):
        def __deepcopy__(self, memo):
            raise TypeError("holds a handle")

    torch.manual_seed(0)
    model = Uncopyable(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).train()
    x = torch.randn(5, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ComposerWarning)
        expected = composer.explain(model, x, "lrp_epsilon_0_1")
        with Explainer(model, "lrp_epsilon_0_1") as explainer:
            assert hooks_left(model) > 0 and not model.training
            got = explainer(x)
    assert torch.equal(got, expected)
    assert hooks_left(model) == 0 and model.training and all(p.requires_grad for p in model.parameters())


def test_threads_sharing_one_explainer_take_turns(net):
    torch.manual_seed(2)
    xs = [torch.randn(2, 3, 8, 8) for _ in range(8)]
    expected = [composer.explain(net, x, "lrp_alpha_2_beta_1") for x in xs]
    got = [None] * len(xs)
    with Explainer(net, "lrp_alpha_2_beta_1") as explainer:
        def work(i):
            got[i] = explainer(xs[i])
        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert all(torch.equal(a, b) for a, b in zip(got, expected))
