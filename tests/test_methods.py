"""explain() across the method grid: definitions, batches, targets, reproducibility, errors, state."""
import numpy as np
import pytest
import torch

import composer
from composer import ComposerError, analyzers
from tests.conftest import assert_state_equal, hooks_left, state_of
from tests.reference_models import load_inputs, load_model, load_reference


def conv1d_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv1d(1, 4, 7, padding=3), torch.nn.ReLU(), torch.nn.MaxPool1d(4),
        torch.nn.Conv1d(4, 8, 5, padding=2), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool1d(8),
        torch.nn.Flatten(), torch.nn.Linear(64, 3)).eval()


BATCH_METHODS = ["gradient", "gradient_x_sign_mu_neg_0_5", "lrp_epsilon_0_1", "lrpsign_epsilon_0_25_std_x_mu_0_5",
                 "lrpz_sequential_composite_a", "lrp_alpha_2_beta_1", "guided_backprop_x_sign", "deconvnet",
                 "integrated_gradients_x_input", "grad_cam", "deeplift_x_input"]


@pytest.mark.parametrize("arch", ["vgg16", "resnet18", "conv1d"])
def test_batch_equals_per_sample(arch, request):
    # a fixed input: with the global random state other tests leave, one full run drew a vgg16 input whose plain
    # gradient differed between batched and single kernels by 0.6% of its maximum (float32 noise near a ReLU's kink)
    torch.manual_seed(5)
    if arch == "conv1d":
        model, x = conv1d_net(), torch.randn(3, 1, 200)
    else:
        model, x = request.getfixturevalue(arch), torch.randn(2, 3, 48, 48)
    before = state_of(model)
    targets = torch.arange(x.shape[0])
    for method in BATCH_METHODS:
        params = {"steps": 8} if method.startswith("integrated") else {}
        batch = composer.explain(model, x, method, target=targets, **params)
        single = torch.cat([composer.explain(model, x[i:i + 1], method, target=int(targets[i]), **params)
                            for i in range(x.shape[0])])
        assert batch.shape[0] == x.shape[0] and batch.shape[2:] == x.shape[2:], method
        # the project's bar (compare.py): max |difference| <= 1e-3 max |map|; float32 kernels differ by batch size
        assert (batch - single).abs().max() <= 1e-3 * single.abs().max(), method
        assert torch.isfinite(batch).all(), method
    assert hooks_left(model) == 0
    assert_state_equal(model, before)


def test_shapes_dtype_and_default_target(small_cnn):
    x = torch.randn(3, 3, 8, 8)
    assert composer.explain(small_cnn, x, "lrp_z").shape == x.shape
    assert composer.explain(small_cnn, x, "grad_cam").shape == (3, 1, 8, 8)
    assert composer.explain(small_cnn, x, "grad_cam_x_input").shape == x.shape
    argmax = small_cnn(x).argmax(1)
    assert torch.equal(composer.explain(small_cnn, x, "gradient"),
                       composer.explain(small_cnn, x, "gradient", target=argmax))
    model64 = small_cnn.double()
    try:
        out = composer.explain(model64, x.double(), "lrp_epsilon_0_1")
        assert out.dtype == torch.float64
    finally:
        small_cnn.float()


def test_deeplift_equals_gradient_times_input_on_a_linear_model():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Linear(4, 3))
    x = torch.randn(4, 5)
    assert torch.allclose(composer.explain(model, x, "deeplift"), composer.explain(model, x, "gradient_x_input"),
                          atol=1e-6)


def test_deeplift_sums_to_delta(small_mlp):
    x = torch.randn(5, 6)
    for baseline in ("zero", torch.full((6,), 0.3)):
        relevance = composer.explain(small_mlp, x, "deeplift", target=1, baseline=baseline)
        base = torch.zeros(1, 6) if isinstance(baseline, str) else baseline[None]
        delta = small_mlp(x)[:, 1] - small_mlp(base)[:, 1]
        assert torch.allclose(relevance.sum(1), delta, atol=1e-5)


def _noisy_loop(model, x, target, noise_level, num_samples, seed):
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn((num_samples,) + tuple(x.shape), generator=generator)
    sigma = noise_level * (x.flatten(1).amax(1) - x.flatten(1).amin(1))
    grads = []
    for k in range(num_samples):
        xk = (x + noise[k] * sigma.view(-1, *([1] * (x.dim() - 1)))).requires_grad_(True)
        out = model(xk)
        (g,) = torch.autograd.grad(out.gather(1, target[:, None]).sum(), xk)
        grads.append(g)
    return torch.stack(grads)


def test_smoothgrad_and_vargrad_equal_a_handwritten_loop(small_cnn):
    x, target = torch.randn(2, 3, 8, 8), torch.tensor([1, 2])
    grads = _noisy_loop(small_cnn, x, target, 0.2, 6, seed=3)
    smooth = composer.explain(small_cnn, x, "smoothgrad", target=target, num_samples=6, seed=3)
    var = composer.explain(small_cnn, x, "vargrad", target=target, num_samples=6, seed=3)
    assert torch.allclose(smooth, grads.mean(0), atol=1e-6)
    assert torch.allclose(var, grads.var(0, unbiased=False), atol=1e-7)
    again = composer.explain(small_cnn, x, "smoothgrad_x_sign", target=target, num_samples=6,
                             generator=torch.Generator().manual_seed(3))
    assert torch.allclose(again, smooth * torch.where(x >= 0, 1.0, -1.0))
    other = composer.explain(small_cnn, x, "smoothgrad", target=target, num_samples=6, seed=4)
    assert not torch.allclose(other, smooth)


def test_integrated_gradients_baselines(small_mlp):
    x = torch.rand(2, 6)
    zero = composer.explain(small_mlp, x, "integrated_gradients", steps=16)
    black = composer.explain(small_mlp, x, "integrated_gradients", steps=16, baseline="black")
    custom = composer.explain(small_mlp, x, "integrated_gradients", steps=16, baseline=torch.zeros(6))
    assert torch.allclose(zero, custom) and not torch.allclose(zero, black)
    # completeness, approximately: sums to f(x) - f(baseline) with enough steps
    fine = composer.explain(small_mlp, x, "integrated_gradients", target=0, steps=400)
    with torch.no_grad():
        delta = small_mlp(x)[:, 0] - small_mlp(torch.zeros(1, 6))[:, 0]
    assert torch.allclose(fine.sum(1), delta, atol=2e-2 * float(delta.abs().max()))


def test_grad_cam_layer_choice_and_errors(small_cnn, small_mlp):
    x = torch.randn(1, 3, 8, 8)
    by_default = composer.explain(small_cnn, x, "grad_cam")
    by_name = composer.explain(small_cnn, x, "grad_cam", layer="3")
    assert torch.allclose(by_default, by_name)
    assert by_default.min() >= 0 and by_default.max() <= 1
    with pytest.raises(ComposerError, match="has none"):
        composer.explain(small_mlp, torch.randn(1, 6), "grad_cam")
    with pytest.raises(ComposerError, match="no module named 'conv9'"):
        composer.explain(small_cnn, x, "grad_cam", layer="conv9")


def test_grad_cam_matches_reference_with_analyzer_class():
    model, x = load_model("cnn2d"), load_inputs("cnn2d")
    ref = load_reference("cnn2d")
    ours = analyzers.GradCAMAnalyzer(model, target_layer=model.conv2).analyze(x, torch.from_numpy(ref["targets"]))
    assert np.abs(ours[:, 0] - ref["grad_cam"]).max() < 1e-4


def test_input_and_target_errors(small_mlp):
    with pytest.raises(ComposerError, match="rejected an input of shape"):
        composer.explain(small_mlp, torch.randn(2, 7), "gradient")
    with pytest.raises(ComposerError, match="out of range"):
        composer.explain(small_mlp, torch.randn(2, 6), "gradient", target=3)
    with pytest.raises(ComposerError, match="2 entries for a batch of 3"):
        composer.explain(small_mlp, torch.randn(3, 6), "gradient", target=[0, 1])
    with pytest.raises(ComposerError, match="batch axis"):
        composer.explain(small_mlp, torch.randn(6), "gradient")
    with pytest.raises(ComposerError, match="NaN"):
        composer.explain(small_mlp, torch.full((1, 6), float("nan")), "gradient")
    with pytest.raises(ComposerError, match="float64"):
        composer.explain(small_mlp, torch.randn(1, 6, dtype=torch.float64), "gradient")


class Exploding(torch.nn.Module):
    def __init__(self, when="forward"):
        super().__init__()
        self.fc, self.relu, self.out = torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)
        self.when = when

    def forward(self, x):
        h = self.relu(self.fc(x))
        if self.when == "forward" and not torch.is_grad_enabled():
            return self.out(h)
        if self.when == "forward":
            raise RuntimeError("boom")
        return self.out(h)


def test_model_restored_when_the_call_raises():
    model = Exploding().train()
    flags = [p.requires_grad for p in model.parameters()]
    before = state_of(model)
    with pytest.raises(ComposerError, match="boom"):
        composer.explain(model, torch.randn(2, 4), "lrp_epsilon_0_1")
    assert hooks_left(model) == 0 and model.training
    assert [p.requires_grad for p in model.parameters()] == flags
    assert_state_equal(model, before)


def test_every_reference_method_name_parses_and_list_methods_covers_families():
    names = set()
    for model in ("mlp", "cnn2d", "cnn1d"):
        names |= {m for m in load_reference(model) if m not in ("targets", "logits_tf")}
    names |= {"smoothgrad_x_sign_mu_0_5", "vargrad_x_input_x_sign", "deeplift_x_input", "deeplift_method"}
    for name in sorted(names):
        composer.compile_preset(name)
    listed = composer.list_methods()
    for name in ("gradient_x_sign_mu_neg_0_5", "smoothgrad_x_input", "vargrad_x_sign", "grad_cam",
                 "guided_backprop_x_sign_mu_0_5", "deconvnet_x_sign", "integrated_gradients_x_input_x_sign",
                 "deeplift_x_input", "lrpsign_epsilon_0_25_std_x_mu_0_5", "w2lrp_sequential_composite_b"):
        assert name in listed, name
        composer.compile_preset(name)


@pytest.mark.parametrize("name,extends,params", [
    ("lrpsign_epsilon_0_25_std_x_mu_0_5", ("lrpsign", "lrp_epsilon_std_x"), {"stdfactor": 0.25, "mu": 0.5}),
    ("lrp_epsilon_0_001", ("lrp_epsilon",), {"epsilon": 0.001}),
    ("lrpsign_epsilon_100_mu_neg_0_5", ("lrpsign", "lrp_epsilon"), {"epsilon": 100.0, "mu": -0.5}),
    ("lrp_alpha_2_beta_1", ("lrp_alpha_beta",), {"alpha": 2.0, "beta": 1.0}),
    ("w2lrp_sequential_composite_b", ("w2lrp", "lrp_sequential_composite_b"), {}),
    ("zblrp_z_VGG16ILSVRC", ("zblrp", "lrp_z"), {"low": -123.68, "high": 151.061}),
    ("lrp_z_plus", ("lrp_z_plus",), {}),
])
def test_name_grammar(name, extends, params):
    parsed = composer.parse_method(name)
    assert parsed.extends == extends and parsed.params == params


def test_name_errors_suggest():
    with pytest.raises(ComposerError) as info:
        composer.parse_method("lrpsign_epsilom_0_1")
    assert info.value.suggestions
    with pytest.raises(ComposerError, match="needs the lrpsign prefix"):
        composer.parse_method("lrpz_epsilon_0_1_mu_0_5")
    with pytest.raises(ComposerError, match="unknown modifier"):
        composer.parse_method("gradient_x_sgn")


def test_analyzers_are_explain():
    model, x = load_model("mlp"), load_inputs("mlp")
    target = torch.from_numpy(load_reference("mlp")["targets"])
    cases = [
        (analyzers.GradientAnalyzer(model), "gradient", {}),
        (analyzers.GradientXSignAnalyzer(model, mu=0.5), "gradient_x_sign_mu_0_5", {}),
        (analyzers.GradientXInputAnalyzer(model), "gradient_x_input", {}),
        (analyzers.IntegratedGradientsAnalyzer(model), "integrated_gradients", {}),
        (analyzers.GuidedBackpropAnalyzer(model), "guided_backprop", {}),
        (analyzers.DeconvNetAnalyzer(model), "deconvnet", {}),
        (analyzers.LRPAnalyzer(model, "epsilon", epsilon=0.1), "lrp_epsilon_0_1", {}),
        (analyzers.LRPAnalyzer(model, "alphabeta", alpha=2, beta=1), "lrp_alpha_2_beta_1", {}),
        (analyzers.LRPStdxEpsilonAnalyzer(model, stdfactor=0.25), "lrp_epsilon_0_25_std_x", {}),
        (analyzers.LRPSequential(model, variant="A"), "lrp_sequential_composite_a", {}),
        (analyzers.AdvancedLRPAnalyzer(model, "lrpsign_epsilon_0_1"), "lrpsign_epsilon_0_1", {}),
        (analyzers.BoundedLRPAnalyzer(model, low=-1, high=1), "zbox_composite", {}),
        (analyzers.DeepTaylorAnalyzer(model), "deep_taylor", {}),
        (analyzers.DeepLiftAnalyzer(model), "deeplift", {}),
    ]
    for analyzer, method, params in cases:
        got = analyzer.analyze(x, target)
        assert isinstance(got, np.ndarray), method
        want = composer.explain(model, x, method, target=target, **params).numpy()
        assert np.allclose(got, want, atol=1e-6), method
    ref = load_reference("mlp")
    assert np.allclose(analyzers.LRPAnalyzer(model, "epsilon", epsilon=0.1).analyze(x, target),
                       ref["lrp_epsilon_0_1"], rtol=1e-3, atol=1e-5)
    smooth = analyzers.SmoothGradAnalyzer(model, num_samples=4).analyze(x, target, seed=0)
    assert smooth.shape == tuple(x.shape)


def test_integrated_gradients_end_points_reference_default_and_zennits_option():
    from zennit.attribution import IntegratedGradients

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Softplus(), torch.nn.Linear(7, 3)).eval()
    x = torch.randn(4, 5)
    with IntegratedGradients(net, n_iter=32) as attributor:
        _, zennit_ig = attributor(x, torch.eye(3)[[1] * 4])
    right = composer.explain(net, x, "integrated_gradients", target=1, steps=32, points="right")
    torch.testing.assert_close(right, zennit_ig, rtol=1e-5, atol=1e-6)
    both = composer.explain(net, x, "integrated_gradients", target=1, steps=32)
    assert not torch.allclose(both, right, rtol=1e-3)
    path = torch.linspace(0, 1, 32)[:, None, None] * x[None]
    grads = torch.stack([torch.autograd.functional.jacobian(lambda v: net(v)[:, 1].sum(), p) for p in path])
    torch.testing.assert_close(both, x * grads.mean(0), rtol=1e-5, atol=1e-6)
    with pytest.raises(composer.ComposerError, match="both_ends"):
        composer.explain(net, x, "integrated_gradients", points="left")
