"""Selectors, compilation and equivalence with hand-written zennit composites."""
import pytest
import torch
import zennit.types
from zennit.attribution import Gradient
from zennit.composites import (EpsilonAlpha2Beta1, EpsilonPlusFlat, LayerMapComposite,
                               SpecialFirstLayerMapComposite, layer_map_base)
from zennit.rules import Epsilon

import composer
from composer.compiler import compile_preset
from composer.rules import AlphaBetaHook, EpsilonHook
from tests.conftest import assert_state_equal, hooks_left, state_of


class Nested(torch.nn.Module):
    """A non-Sequential model with nested blocks."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU())
        self.body = torch.nn.ModuleDict({"block": torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3, padding=1),
                                                                      torch.nn.ReLU())})
        self.head = torch.nn.Linear(4 * 8 * 8, 5)

    def forward(self, x):
        return self.head(self.body["block"](self.stem(x)).flatten(1))


def picked(model, select, rule="epsilon"):
    plan = compile_preset({"name": "t", "layers": [{"select": select, "rule": rule}], "on_unmatched": "ignore"})
    return [name for name, _, _ in plan.assign(model)]


def test_selectors_on_vgg16(vgg16):
    convs = [n for n, m in vgg16.named_modules() if isinstance(m, torch.nn.Conv2d)]
    linears = ["classifier.0", "classifier.3", "classifier.6"]
    assert picked(vgg16, "first") == ["features.0"]
    assert picked(vgg16, "last") == ["classifier.6"]
    assert picked(vgg16, "middle") == convs[1:] + linears[:2]
    assert picked(vgg16, "all") == convs + linears
    assert picked(vgg16, {"type": "conv"}) == convs
    assert picked(vgg16, {"type": "dense"}) == linears
    assert picked(vgg16, {"type": "Linear"}) == linears
    assert picked(vgg16, {"type": ["Linear", "Conv2d"]}) == convs + linears
    assert picked(vgg16, {"name": "features.2"}) == ["features.2"]
    assert picked(vgg16, {"name_glob": "classifier.*"}) == linears          # rule applies to layers only
    assert picked(vgg16, {"name_glob": "classifier.*"}, rule="pass") == [f"classifier.{i}" for i in range(7)]
    assert picked(vgg16, {"name_regex": r"features\.(0|2)"}) == ["features.0", "features.2"]
    assert picked(vgg16, {"index": 0}) == ["features.0"]
    assert picked(vgg16, {"index": -1}) == ["classifier.6"]
    assert picked(vgg16, {"index": [-3, -1]}) == linears
    assert picked(vgg16, {"index": [1, 2], "type": "conv"}) == convs[1:3]
    assert picked(vgg16, {"position": "last", "type": "conv"}) == []    # the last layer is a Linear
    assert picked(vgg16, {"type": "activation"}, rule="pass") == [n for n, m in vgg16.named_modules()
                                                                    if isinstance(m, torch.nn.ReLU)]


def test_selectors_on_resnet18(resnet18):
    assert picked(resnet18, "first") == ["conv1"]
    assert picked(resnet18, "last") == ["fc"]
    assert picked(resnet18, {"name_glob": "layer1.*.conv*"}) == ["layer1.0.conv1", "layer1.0.conv2",
                                                                  "layer1.1.conv1", "layer1.1.conv2"]
    assert picked(resnet18, {"name_regex": r".*downsample\.0"}) == [f"layer{i}.0.downsample.0" for i in (2, 3, 4)]
    assert picked(resnet18, {"type": "batchnorm"}, rule="pass")[0] == "bn1"


def test_selectors_on_nested_module():
    model = Nested()
    assert picked(model, "first") == ["stem.0"]
    assert picked(model, "middle") == ["body.block.0"]
    assert picked(model, "last") == ["head"]
    assert picked(model, {"name_glob": "body.*"}) == ["body.block.0"]


def test_first_match_wins_and_extends_prepends():
    plan = compile_preset("lrpz_sequential_composite_b")
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Conv2d(2, 2, 3),
                                torch.nn.Flatten(), torch.nn.Linear(2, 2))
    rules = {name: rule for name, _, rule in plan.describe(model)}
    assert rules == {"0": "z(bias=True)", "1": "pass()", "2": "alpha_beta(alpha=2, beta=1, bias=True)",
                     "4": "epsilon(epsilon=0.1, bias=True)"}


def _zennit_attr(model, composite, x, target, classes):
    with Gradient(model, composite) as attributor:
        _, relevance = attributor(x, torch.eye(classes)[target])
    return relevance


def _cases():
    base = layer_map_base()  # zennit's: activations pass, sums and average pools normalised (= lrp_base)
    return [
        ("lrp_epsilon_0_1", lambda: LayerMapComposite(base + [(zennit.types.Linear, Epsilon(0.1))])),
        ("lrp_epsilon_0_1", lambda: LayerMapComposite(base + [(zennit.types.Linear, EpsilonHook(epsilon=0.1))])),
        ("lrpsign_epsilon_0_1", lambda: SpecialFirstLayerMapComposite(
            base + [(zennit.types.Linear, EpsilonHook(epsilon=0.1))],
            first_map=[(zennit.types.Linear, EpsilonHook(sign=True))])),
        ("lrp_sequential_composite_b", lambda: LayerMapComposite(
            base + [(torch.nn.Linear, EpsilonHook(epsilon=0.1)), (zennit.types.Convolution, AlphaBetaHook(2., 1.))])),
        ({"name": "epf", "extends": "lrp_base", "layers": [
            {"select": "first", "rule": "zennit_flat"},
            {"select": {"type": "dense"}, "rule": "zennit_epsilon", "with": {"epsilon": 1e-6}},
            {"select": {"type": "conv"}, "rule": "zennit_z_plus"}]}, lambda: EpsilonPlusFlat()),
        ({"name": "ea2b1", "extends": "lrp_base", "layers": [
            {"select": {"type": "dense"}, "rule": "zennit_epsilon", "with": {"epsilon": 1e-6}},
            {"select": {"type": "conv"}, "rule": "zennit_alpha_beta", "with": {"alpha": 2, "beta": 1}}]},
         lambda: EpsilonAlpha2Beta1()),
    ]


@pytest.mark.parametrize("preset,handwritten", _cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_compiled_preset_equals_handwritten_zennit_composite(small_cnn, preset, handwritten):
    torch.manual_seed(1)
    x, target = torch.randn(3, 3, 8, 8), [0, 3, 4]
    ours = _zennit_attr(small_cnn, composer.compose(preset), x, target, 5)
    theirs = _zennit_attr(small_cnn, handwritten(), x, target, 5)
    assert torch.allclose(ours, theirs, rtol=1e-5, atol=1e-6 * float(theirs.abs().max()))
    assert hooks_left(small_cnn) == 0


@pytest.mark.parametrize("method", ["lrp_epsilon_0_1", "lrpz_sequential_composite_a", "lrp_gamma", "lrp_flat",
                                    "zblrp_z_VGG16ILSVRC", "deconvnet", "w2lrp_sequential_composite_b"])
def test_no_hooks_left_and_model_unchanged(vgg16, method):
    x = torch.randn(1, 3, 64, 64)
    before_state, before_out = state_of(vgg16), vgg16(x)
    flags = [p.requires_grad for p in vgg16.parameters()]
    relevance = composer.explain(vgg16, x, method)
    assert relevance.shape == x.shape and torch.isfinite(relevance).all()
    assert hooks_left(vgg16) == 0
    assert_state_equal(vgg16, before_state)
    assert torch.equal(vgg16(x), before_out)
    assert [p.requires_grad for p in vgg16.parameters()] == flags


def test_compose_returns_zennit_composite_and_caches_the_plan():
    from zennit.core import Composite

    assert isinstance(composer.compose("lrp_epsilon_0_1"), Composite)
    assert compile_preset("lrp_epsilon", epsilon=0.2) is compile_preset("lrp_epsilon", epsilon=0.2)
    assert compile_preset("lrp_epsilon", epsilon=0.2) is not compile_preset("lrp_epsilon", epsilon=0.3)
    assert composer.compose("lrp_epsilon_0_1") is not composer.compose("lrp_epsilon_0_1")  # one per model


def test_parameters_override_defaults_and_reach_the_rules():
    plan = compile_preset("lrpsign_epsilon_std_x_mu", epsilon=0.1, stdfactor=0.5, mu=-0.5)
    described = [b.describe() for b in plan.bindings]
    assert described[0] == "sign_mu(mu=-0.5, bias=True)"
    assert "stdx_epsilon(stdfactor=0.5, epsilon=0.1, bias=True)" in described
    assert compile_preset("lrpsign_epsilon_0_25_std_x_mu_0_5").params == {
        "mu": 0.5, "stdfactor": 0.25, "epsilon": 0.0}


def test_every_preset_compiles_and_runs(small_cnn):
    x = torch.randn(2, 3, 8, 8)
    for name in composer.list_presets():
        relevance = composer.explain(small_cnn, x, name)
        assert torch.isfinite(relevance).all(), name
    assert hooks_left(small_cnn) == 0


def test_yaml_file_and_registered_dir(tmp_path, small_mlp):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nextends: [lrpz, lrp_epsilon]\nparams: {epsilon: 0.5}\n")
    by_path = composer.explain(small_mlp, torch.ones(1, 6), str(path))
    by_name = composer.explain(small_mlp, torch.ones(1, 6), "lrpz_epsilon", epsilon=0.5)
    assert torch.allclose(by_path, by_name)
    composer.register_preset_dir(tmp_path)
    assert "mine" in composer.list_presets()


def test_nth_counts_within_the_type_and_index_counts_relevance_layers():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3 * 4 * 4), torch.nn.Unflatten(1, (3, 4, 4)),
                              torch.nn.Conv2d(3, 3, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(3, 2, 3, padding=1),
                              torch.nn.Flatten(), torch.nn.Linear(32, 2))

    def picked(select):
        plan = compile_preset({"name": "t", "layers": [{"select": select, "rule": "z"}], "on_unmatched": "ignore"})
        return [name for name, _, _ in plan.assign(net)]

    assert picked({"type": "conv", "nth": 0}) == ["2"]               # the first convolution
    assert picked({"type": "conv", "nth": -1}) == ["4"]
    assert picked({"type": "dense", "nth": [0, 1]}) == ["0", "6"]
    assert picked({"type": "conv", "index": [0, 1]}) == ["2"]        # relevance layers 0 (dense) and 1 (conv)
    assert picked({"position": "first", "type": "conv"}) == []       # the first relevance layer is dense
    with pytest.raises(composer.ComposerError, match="'nth' counts the modules of a type"):
        compile_preset({"name": "t", "layers": [{"select": {"nth": 0}, "rule": "z"}]})
