"""Every preset and method on extreme inputs; state safety when a call fails; two threads at once."""
import threading

import pytest
import torch

import composer
from composer import ComposerError
from tests.conftest import assert_state_equal, hooks_left, state_of

METHODS = sorted(set(composer.list_presets()) | {
    "lrpsign_epsilon_0_25_std_x_mu_0_5", "lrp_alpha_2_beta_1", "w2lrp_sequential_composite_b", "zblrp_z_VGG16ILSVRC",
    "flatlrp_epsilon_0_1_std_x", "gradient_x_sign_mu_neg_0_5", "smoothgrad_x_input", "vargrad_x_sign",
    "integrated_gradients_x_input_x_sign", "guided_backprop_x_sign", "deconvnet_x_input", "deeplift_x_input"})
INPUTS = {"zero": lambda: torch.zeros(2, 3, 8, 8), "constant": lambda: torch.full((2, 3, 8, 8), 0.7),
          "large": lambda: torch.randn(2, 3, 8, 8) * 1e6, "tiny": lambda: torch.randn(2, 3, 8, 8) * 1e-30,
          "normal": lambda: torch.randn(2, 3, 8, 8)}
FAST = {"steps": 4, "num_samples": 3}


def _params(method):
    plan = composer.compile_preset(method)
    return {k: v for k, v in FAST.items() if k in plan.params}


@pytest.mark.parametrize("kind", sorted(INPUTS))
def test_every_method_is_finite_on_extreme_inputs(small_cnn, kind):
    torch.manual_seed(0)
    x = INPUTS[kind]()
    bad = []
    for method in METHODS:
        relevance = composer.explain(small_cnn, x, method, seed=0, **_params(method))
        if not torch.isfinite(relevance).all():
            bad.append(method)
    assert not bad, f"non-finite output for {kind} inputs: {bad}"
    assert hooks_left(small_cnn) == 0


def test_float64_supported_and_half_precision_refused(small_cnn):
    x = torch.randn(1, 3, 8, 8)
    model = small_cnn.double()
    try:
        assert composer.explain(model, x.double(), "lrp_alpha_2_beta_1").dtype == torch.float64
    finally:
        small_cnn.float()
    for dtype in (torch.float16, torch.bfloat16):
        with pytest.raises(ComposerError, match="half precision"):
            composer.explain(small_cnn.to(dtype), x.to(dtype), "lrp_epsilon_0_1")
        small_cnn.float()


class RaisesInBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("backward exploded")


class Fragile(torch.nn.Module):
    """Raises in the forward (mode 'forward') or in the backward (mode 'backward') of the attribution pass."""

    def __init__(self, mode):
        super().__init__()
        self.conv, self.relu = torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU()
        self.bn = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4 * 8 * 8, 3)
        self.mode = mode

    def forward(self, x):
        h = self.relu(self.bn(self.conv(x)))
        if self.mode == "forward" and torch.is_grad_enabled():
            raise RuntimeError("forward exploded")
        if self.mode == "backward":
            h = RaisesInBackward.apply(h)
        return self.fc(h.flatten(1))


@pytest.mark.parametrize("mode", ["forward", "backward"])
@pytest.mark.parametrize("method", ["lrp_epsilon_0_1", "lrp_alpha_2_beta_1", "lrp_gamma", "guided_backprop",
                                    "integrated_gradients", "grad_cam", "deeplift", "smoothgrad"])
@pytest.mark.parametrize("training", [False, True])
def test_state_restored_when_forward_or_backward_raises(mode, method, training):
    torch.manual_seed(0)
    model = Fragile(mode).train(training)
    flags = [p.requires_grad for p in model.parameters()]
    before = state_of(model)
    with pytest.raises((ComposerError, RuntimeError), match="exploded"):
        composer.explain(model, torch.randn(2, 3, 8, 8), method, canonizers=["merge_batchnorm"], target=0, on_uncovered="ignore",
                         **_params(method))
    assert hooks_left(model) == 0
    assert model.training == training and all(m.training == training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == flags
    assert_state_equal(model, before)
    assert model.relu.inplace is False


def test_two_models_from_two_threads(small_cnn, small_mlp):
    torch.manual_seed(0)
    jobs = [(small_cnn, torch.randn(3, 3, 8, 8), "lrpsign_epsilon_0_25_std_x_mu_0_5"),
            (small_mlp, torch.randn(3, 6), "lrp_alpha_2_beta_1"),
            (small_cnn, torch.randn(3, 3, 8, 8), "lrpz_sequential_composite_a")]
    sequential = [composer.explain(m, x, method) for m, x, method in jobs[:2]]
    results, errors = {}, []

    def work(i, repeats=8):
        try:
            m, x, method = jobs[i]
            results[i] = [composer.explain(m, x, method) for _ in range(repeats)]
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i in range(2):
        for r in results[i]:
            assert torch.equal(r, sequential[i])
    assert hooks_left(small_cnn) == 0 and hooks_left(small_mlp) == 0
