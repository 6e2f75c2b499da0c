"""Models as users write them: functional calls, in-place operations, shared modules, several
backward passes, threads and training mode all give the numbers of the hand-written module twin."""
import threading
import warnings

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from zennit.attribution import Gradient

import composer
from composer import ComposerError, registry
from composer.compiler import ComposerWarning, compile_preset
from composer.graph import canonize
from tests.conftest import assert_state_equal, hooks_left, state_of


class ModuleNet(nn.Module):
    """A small residual CNN written with modules only (the form presets were designed for)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 6, 3, padding=1)
        self.relu1, self.relu2 = nn.ReLU(), nn.ReLU()
        self.pool, self.flatten = nn.MaxPool2d(2), nn.Flatten()
        self.fc = nn.Linear(6 * 4 * 4, 5)

    def forward(self, x):
        h = self.relu1(self.conv1(x))
        out = self.relu2(self.conv2(h) + h)
        return self.fc(self.flatten(self.pool(out)))


class FunctionalNet(ModuleNet):
    """The same network with functional activations, pooling, flatten and in-place operations."""

    def forward(self, x):
        h = F.relu(self.conv1(x), inplace=True)
        out = self.conv2(h)
        out += h
        out.relu_()                        # not reassigned: the next line reads the changed tensor
        return self.fc(torch.flatten(F.max_pool2d(out, 2), 1))


class SharedReLUNet(ModuleNet):
    """One ReLU module called at two sites (as torchvision's BasicBlock calls ``self.relu`` twice)."""

    def forward(self, x):
        h = self.relu1(self.conv1(x))
        out = self.relu1(self.conv2(h) + h)
        return self.fc(self.flatten(self.pool(out)))


def _net(cls):
    torch.manual_seed(0)
    net = cls().eval()
    if cls is not ModuleNet:
        net.load_state_dict(_net(ModuleNet).state_dict())
    return net


METHODS = ["lrp_epsilon_0_1", "lrp_z", "lrp_alpha_2_beta_1", "lrp_gamma", "lrp_flat", "lrp_w_square",
           "lrpsign_epsilon_0_25_std_x_mu_0_5", "lrpz_sequential_composite_a", "guided_backprop", "deconvnet",
           "grad_cam", "gradient", "integrated_gradients", "smoothgrad"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("form", [FunctionalNet, SharedReLUNet], ids=["functional", "shared-relu"])
def test_functional_and_shared_forms_equal_the_module_form(form, method):
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    params = {"steps": 4} if method == "integrated_gradients" else {"num_samples": 3} if method == "smoothgrad" else {}
    expected = composer.explain(_net(ModuleNet), x, method, target=[0, 2, 4], seed=0, **params)
    model = _net(form)
    before = state_of(model)
    got = composer.explain(model, x, method, target=[0, 2, 4], seed=0, **params)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert_state_equal(model, before)
    assert hooks_left(model) == 0


def test_guided_backprop_sees_functional_relus():
    model, x = _net(FunctionalNet), torch.randn(2, 3, 8, 8)
    guided = composer.explain(model, x, "guided_backprop", target=0)
    plain = composer.explain(model, x, "gradient", target=0) * model(x)[:, :1, None, None].detach()
    assert not torch.allclose(guided, plain)


def _zennit_relevance(model, x, target, method, elide=False):
    """compose() + zennit's Gradient, started from the target logit (as explain's LRP presets start)."""
    composite = compile_preset(method).composite(elide=elide)
    with Gradient(model, composite) as attributor:
        _, relevance = attributor(x, lambda out: torch.eye(out.shape[1])[target] * out)
    return relevance, composite


@pytest.mark.parametrize("form", [FunctionalNet, SharedReLUNet])
def test_explain_equals_compose_with_zennit_gradient_and_leaves_the_model(form):
    model, x, target = _net(form), torch.randn(2, 3, 8, 8), [1, 3]
    before, forward = state_of(model), model.forward
    for method in ["lrp_epsilon_0_1", "lrp_alpha_2_beta_1", "lrpz_sequential_composite_a"]:
        ours = composer.explain(model, x, method, target=target)
        theirs, composite = _zennit_relevance(model, x, target, method)
        torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7)
        assert composite.elided == []
    assert model.forward == forward and "forward" not in vars(model)
    assert_state_equal(model, before)
    assert hooks_left(model) == 0


def test_several_backward_passes_through_one_forward():
    model, x = _net(SharedReLUNet), torch.randn(2, 3, 8, 8)
    composite = composer.compose("lrp_epsilon_0_1")
    with composite.context(model):
        xr = x.clone().requires_grad_(True)
        out = model(xr)
        firsts = [torch.autograd.grad(out, xr, torch.eye(5)[[t, t]] * out.detach(), retain_graph=True)[0]
                  for t in (0, 3, 0)]
    for t, got in zip((0, 3, 0), firsts):
        torch.testing.assert_close(got, composer.explain(model, x, "lrp_epsilon_0_1", target=t), rtol=1e-6, atol=1e-7)


def test_create_graph_gives_the_same_relevance_and_a_graph():
    model, x = _net(FunctionalNet), torch.randn(2, 3, 8, 8)
    for method in ["lrp_epsilon_0_1", "lrp_alpha_2_beta_1", "lrp_gamma"]:
        composite = composer.compose(method)
        with composite.context(model):
            xr = x.clone().requires_grad_(True)
            out = model(xr)
            (relevance,) = torch.autograd.grad(out, xr, torch.eye(5)[[1, 1]] * out.detach(), create_graph=True)
            assert relevance.requires_grad
            (second,) = torch.autograd.grad(relevance.sum(), xr)
        assert torch.isfinite(second).all()
        torch.testing.assert_close(relevance.detach(), composer.explain(model, x, method, target=1),
                                   rtol=1e-5, atol=1e-6)


def test_concurrent_explains_on_one_model_equal_the_sequential_ones():
    model = _net(SharedReLUNet).train()   # training mode too: explained in eval mode, left in training mode
    flags = [p.requires_grad for p in model.parameters()]
    before = state_of(model)
    jobs = [(torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(i)), m)
            for i, m in enumerate(["lrpsign_epsilon_0_25_std_x_mu_0_5", "lrp_alpha_2_beta_1", "grad_cam",
                                   "lrp_epsilon_0_1"])]
    expected = [composer.explain(model, x, m) for x, m in jobs]
    results, errors = {}, []

    def work(i):
        try:
            x, method = jobs[i % len(jobs)]
            results[i] = [composer.explain(model, x, method) for _ in range(4)]
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i, maps in results.items():
        for got in maps:
            assert torch.equal(got, expected[i % len(jobs)])
    assert [p.requires_grad for p in model.parameters()] == flags
    assert model.training and all(m.training for m in model.modules())
    assert_state_equal(model, before)
    assert hooks_left(model) == 0


def test_training_mode_model_is_explained_in_eval_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5), nn.Flatten(),
                          nn.Linear(4 * 6 * 6, 3))
    model.train()
    for _ in range(3):
        model(torch.randn(8, 3, 8, 8))
    before = state_of(model)
    x = torch.randn(4, 3, 8, 8)
    maps = [composer.explain(model, x, "lrp_epsilon_0_1", target=0) for _ in range(2)]
    alone = composer.explain(model, x[:1], "lrp_epsilon_0_1", target=0)
    assert torch.equal(maps[0], maps[1])                      # no dropout
    torch.testing.assert_close(maps[0][:1], alone)            # no batch statistics
    assert model.training
    assert_state_equal(model, before)                         # running statistics untouched
    evaluated = composer.explain(model.eval(), x, "lrp_epsilon_0_1", target=0)
    assert torch.equal(maps[0], evaluated)


def _densenet():
    torch.manual_seed(0)
    model = torchvision.models.densenet121(weights=None, num_classes=4)
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 32, 32))
    return model.eval()


def test_densenet_batch_norms_and_a_misfitting_canonizer():
    model, x = _densenet(), torch.randn(1, 3, 32, 32)
    before, out = state_of(model), model(x)
    with pytest.raises(ComposerError, match="does not fit DenseNet"):
        composer.explain(model, x, "lrp_epsilon_0_1", canonizers=["merge_batchnorm"])
    assert_state_equal(model, before)
    assert torch.equal(model(x), out)
    relevance = composer.explain(model, x, "lrp_z")
    ratio = relevance.sum() / out[0, out[0].argmax()]
    assert torch.isfinite(relevance).all() and 0.1 < float(ratio) < 10
    twin = canonize(model)
    kept = twin.composer_graph.kept_batchnorms
    assert "features.norm0" not in kept and "features.denseblock1.denselayer1.norm1" in kept
    torch.testing.assert_close(twin(x), out, rtol=1e-4, atol=1e-5)


def test_batchnorm_after_a_concatenation_merges_per_input():
    class CatNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 2, 3, padding=1), nn.Conv2d(3, 3, 1, bias=False)
            self.bn, self.fc = nn.BatchNorm2d(5), nn.Linear(5, 2)

        def forward(self, x):
            h = F.relu(self.bn(torch.cat([self.a(x), self.b(x)], 1)))
            return self.fc(h.mean((2, 3)))

    torch.manual_seed(0)
    model = CatNet()
    model.bn.running_mean.uniform_(-1, 1), model.bn.running_var.uniform_(0.5, 2), model.bn.bias.data.uniform_(-1, 1)
    model.eval()
    x = torch.randn(2, 3, 6, 6)
    twin = canonize(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in twin.modules())
    assert twin.b.bias is not None and model.b.bias is None       # the user's conv is untouched
    torch.testing.assert_close(twin(x), model(x), rtol=1e-5, atol=1e-6)
    relevance = composer.explain(model, x, "lrp_epsilon_0_1")
    assert torch.isfinite(relevance).all()


def test_uncovered_operations_are_named_and_on_uncovered_decides():
    class Gated(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.norm, self.fc2 = nn.Linear(4, 6), nn.LayerNorm(6), nn.Linear(6, 3)

        def forward(self, x):
            h = self.fc1(x)
            return self.fc2(self.norm(h * torch.sigmoid(h)))

    model, x = Gated(), torch.randn(2, 4)
    with pytest.raises(ComposerError) as err:
        composer.explain(model, x, "lrp_epsilon_0_1")
    text = str(err.value)
    assert "operator.mul: a product of two input-dependent tensors" in text and "norm (LayerNorm)" not in text
    assert "norm: LayerNorm: a normalisation" in text and "on_uncovered" in text
    with pytest.warns(ComposerWarning, match="LayerNorm"):
        relevance = composer.explain(model, x, "lrp_epsilon_0_1", on_uncovered="warn")
    assert torch.isfinite(relevance).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        composer.explain(model, x, {"name": "mine", "extends": "lrp_epsilon", "on_uncovered": "ignore"})
        composer.explain(model, x, "gradient")          # gradient methods need no rules
        composer.explain(model, x, "guided_backprop")


def test_a_custom_autograd_function_keeps_its_backward_and_is_reported():
    class Clip(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, grad):
            return grad.clamp(min=0)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, x):
            return self.fc2(Clip.apply(self.fc1(x)))

    torch.manual_seed(0)
    model, x = Net(), torch.randn(3, 4)
    xr = x.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(model(xr)[:, 0].sum(), xr)
    torch.testing.assert_close(composer.explain(model, x, "gradient", target=0), expected)
    torch.testing.assert_close(composer.explain(model, x, "guided_backprop", target=0, canonize=True).shape, x.shape)
    with pytest.raises(ComposerError, match="Clip_apply"):
        composer.explain(model, x, "lrp_epsilon_0_1")


def test_untraceable_model_falls_back_to_module_hooks_and_says_so():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.relu, self.fc2 = nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)

        def forward(self, x):
            h = self.relu(self.fc1(x))
            if h.sum() > 0:                      # data-dependent control flow: fx cannot trace it
                h = h * 1.0
            return self.fc2(h)

    model, x = Branchy(), torch.randn(2, 4)
    with pytest.warns(ComposerWarning, match="could not be traced"):
        relevance = composer.explain(model, x, "lrp_epsilon_0_1")
    assert torch.isfinite(relevance).all()


def test_grad_cam_default_layer_is_the_last_activated_residual_output():
    torch.manual_seed(0)
    model, x = torchvision.models.resnet18(weights=None, num_classes=4).eval(), torch.randn(2, 3, 64, 64)
    default = composer.explain(model, x, "grad_cam", target=1)
    named = composer.explain(model, x, "grad_cam", target=1, layer="layer4.1.relu")   # its last call
    torch.testing.assert_close(default, named)
    conv_only = composer.explain(model, x, "grad_cam", target=1, layer="layer4.1.conv2", fuse_activation=False)
    assert not torch.allclose(default, conv_only)
    bn = composer.explain(model, x, "grad_cam", target=1, layer="layer4.1.bn2", fuse_activation=False)
    torch.testing.assert_close(bn, conv_only)                 # a merged batch norm's output is its conv's


def test_opting_out_of_canonization():
    model, x = _net(FunctionalNet), torch.randn(2, 3, 8, 8)
    assert composer.compile_preset({"name": "raw", "extends": "lrp_epsilon", "canonize": False}).preset.canonize is False
    with pytest.raises(ComposerError, match="in-place operation"):
        composer.explain(model, x, "lrp_epsilon_0_1", canonize=False)
    with pytest.raises(ComposerError, match="canonize must be"):
        composer.explain(model, x, "lrp_epsilon_0_1", canonize="yes")
    with pytest.raises(ComposerError, match="on_uncovered must be"):
        composer.explain(model, x, "lrp_epsilon_0_1", on_uncovered="shout")


def test_a_single_input_rule_on_a_residual_sum_is_refused():
    model, x = _net(FunctionalNet), torch.randn(1, 3, 8, 8)
    preset = {"name": "sums", "extends": "lrp_epsilon", "layers": [{"select": {"type": "sum"}, "rule": "zennit_norm"}]}
    with pytest.raises(ComposerError, match="residual sum of several inputs"):
        composer.explain(model, x, preset)


def test_a_custom_module_kept_whole_takes_its_own_rule(request):
    from zennit.rules import Pass

    from composer.graph import register_leaf

    @register_leaf
    class Gate(nn.Module):
        def forward(self, x):
            return x * torch.sigmoid(x)

    composer.register_rule("gate_identity_test", applies_to="any", params={}, replace=True)(
        type("GateIdentity", (Pass,), {"__doc__": "relevance passes through the gate"}))
    request.addfinalizer(lambda: registry.RULES.unregister("gate_identity_test"))   # the docs list every rule

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.gate, self.fc2 = nn.Linear(4, 5), Gate(), nn.Linear(5, 3)

        def forward(self, x):
            return self.fc2(self.gate(self.fc1(x)))

    torch.manual_seed(0)
    model, x = Net(), torch.randn(2, 4)
    with pytest.raises(ComposerError, match="Gate: no rule"):
        composer.explain(model, x, "lrp_epsilon_0_1")
    preset = {"name": "gated", "extends": "lrp_epsilon", "layers": [{"select": {"name": "gate"}, "rule": "gate_identity_test"}]}
    relevance = composer.explain(model, x, preset, target=0)
    # identity through the gate: epsilon on fc2 and fc1 with the gate's output as fc2's input
    with torch.no_grad():
        h = model.fc1(x)
        g = model.gate(h)
        z2 = model.fc2(g)
        r_g = g * (model.fc2.weight[0] * (z2[:, :1] / (z2[:, :1] + 0.1 * torch.where(z2[:, :1] >= 0, 1., -1.))))
        r_x = x * ((r_g / (h + 0.1 * torch.where(h >= 0, 1., -1.))) @ model.fc1.weight)
    torch.testing.assert_close(relevance, r_x, rtol=1e-5, atol=1e-6)


def test_weight_sharing_gives_each_call_its_own_rule_and_state():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.relu, self.head = nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 3)

        def forward(self, x):
            return self.head(self.relu(self.fc(self.relu(self.fc(x)))))

    import copy

    torch.manual_seed(0)
    model, x = Shared(), torch.randn(4, 6)
    unrolled = nn.Sequential(copy.deepcopy(model.fc), nn.ReLU(), copy.deepcopy(model.fc), nn.ReLU(),
                             copy.deepcopy(model.head))
    twin = canonize(model)
    assert sorted(twin.composer_graph.sites) == ["fc", "relu"]
    for method in ["lrp_epsilon_0_1", "lrp_alpha_2_beta_1", "lrpz_sequential_composite_a"]:
        expected = composer.explain(unrolled, x, method, target=1)   # first call: first layer, second: middle
        torch.testing.assert_close(composer.explain(model, x, method, target=1), expected, rtol=1e-5, atol=1e-6)
    # without canonization the shared module is one layer with one rule, and each call keeps its own state
    torch.testing.assert_close(composer.explain(model, x, "lrp_epsilon_0_1", target=1, canonize=False),
                               composer.explain(unrolled, x, "lrp_epsilon_0_1", target=1), rtol=1e-5, atol=1e-6)


def test_arithmetic_on_sizes_is_left_alone():
    class Sizes(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(3, 2, 3, padding=1), nn.Linear(2 * 4 * 4, 3)

        def forward(self, x):
            h = F.relu(self.conv(x))
            n = x.size(0) + 0                      # operator.add of two input-dependent values, both sizes
            return self.fc(h.reshape(n * 1, -1))

    torch.manual_seed(0)
    model, x = Sizes(), torch.randn(2, 3, 4, 4)
    twin = canonize(model)
    assert not any(type(m).__name__ in ("Add", "ElementwiseConstant") for m in twin.modules())
    torch.testing.assert_close(twin(x), model(x))
    assert torch.isfinite(composer.explain(model, x, "lrp_epsilon_0_1")).all()


def test_zennit_version_under_test_keeps_every_flag():
    """lrp_flat and w-square (zennit's ParamMod underneath) leave the model's flags alone on zennit 0.5.1 and 1.0."""
    from importlib.metadata import version

    model, x = _net(ModuleNet), torch.randn(1, 3, 8, 8)
    model.conv1.weight.requires_grad_(False)
    flags = [p.requires_grad for p in model.parameters()]
    for method in ["lrp_flat", "lrp_w_square", "zblrp_epsilon_0_1_VGG16ILSVRC"]:
        for canonize in (True, False):
            composer.explain(model, x, method, canonize=canonize)
            assert [p.requires_grad for p in model.parameters()] == flags, (version("zennit"), method)


def test_a_model_that_is_one_layer_is_its_own_module():
    """Tracing a bare Linear would inline its forward (F.linear, no rule); it is explained as the layer it is."""
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 3, bias=False).eval()
    x = torch.rand(2, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        relevance = composer.explain(net, x, "lrp_epsilon", epsilon=1e-9, target=[0, 2])
    assert torch.allclose(relevance.sum(1), net(x)[[0, 1], [0, 2]], rtol=1e-5)
    assert torch.allclose(relevance, x * net.weight[[0, 2]], rtol=1e-5)
