"""torchvision's classifiers as users bring them (random weights, batch-norm statistics filled by a few
training-mode passes, no canonizer named): finite maps for every LRP family, zennit's numbers where
zennit has canonizers, elision that changes no number, and a coverage error where no rule applies."""
import functools
import warnings

import pytest
import torch
import torchvision
from zennit.attribution import Gradient
from zennit.composites import LayerMapComposite
from zennit.layer import Sum
from zennit.rules import AlphaBeta, Epsilon, Norm, Pass
from zennit.torchvision import ResNetCanonizer, VGGCanonizer
from zennit.types import Activation, AvgPool, Convolution

import composer
from composer import ComposerError
from composer.compiler import ComposerWarning, compile_preset
from tests.conftest import assert_state_equal, hooks_left, state_of

COVERED = ["resnet18", "resnet50", "densenet121", "mobilenet_v2", "vgg16_bn", "googlenet", "regnet_x_400mf"]
SQUEEZE_EXCITATION = ["mobilenet_v3_small", "efficientnet_b0"]
FAMILIES = ["lrp_epsilon_0_1", "lrp_z", "lrp_alpha_2_beta_1", "lrp_gamma", "lrp_flat", "lrp_w_square",
            "lrpsign_epsilon_0_25_std_x_mu_0_5", "lrpz_sequential_composite_a", "w2lrp_epsilon_0_1",
            "zblrp_epsilon_0_1_VGG16ILSVRC", "lrp_epsilon_0_1_std_x"]
SIZE = 64


@functools.lru_cache(maxsize=None)
def zoo_model(arch: str, bias_free: bool = False) -> torch.nn.Module:
    torch.manual_seed(0)
    kwargs = {"aux_logits": False, "init_weights": False} if arch == "googlenet" else {}
    model = getattr(torchvision.models, arch)(weights=None, num_classes=10, **kwargs)
    if bias_free:
        for m in model.modules():
            if getattr(m, "bias", None) is not None:
                torch.nn.init.zeros_(m.bias)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, 3, SIZE, SIZE))
    if bias_free:
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.zero_()
    return model.eval()


def _x(n=2):
    return torch.randn(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("arch", COVERED)
def test_every_lrp_family_gives_finite_maps_and_leaves_the_model(arch):
    model, x = zoo_model(arch), _x()
    before = state_of(model)
    for method in FAMILIES + ["guided_backprop", "deconvnet", "grad_cam"]:
        relevance = composer.explain(model, x, method, target=[1, 2])
        assert torch.isfinite(relevance).all(), method
        assert relevance.abs().sum() > 0, method
    assert_state_equal(model, before)
    assert hooks_left(model) == 0


@pytest.mark.parametrize("arch", COVERED)
def test_explain_equals_compose_with_zennit_gradient_without_elision(arch):
    model, x, target = zoo_model(arch), _x(), [3, 7]
    for method in ["lrp_epsilon_0_1", "lrp_alpha_2_beta_1"]:
        ours = composer.explain(model, x, method, target=target)
        with Gradient(model, compile_preset(method).composite(elide=False)) as attributor:
            _, theirs = attributor(x, lambda out: torch.eye(10)[target] * out)
        scale = theirs.abs().max()
        assert (ours - theirs).abs().max() <= 1e-6 * scale, method


#: zennit's own composite for a rule set, and the composer preset that names the same rules
ZENNIT_RULES = {
    "epsilon": (lambda: Epsilon(1e-6), {"rule": "zennit_epsilon", "with": {"epsilon": 1e-6}}),
    "alpha2_beta1": (lambda: AlphaBeta(2.0, 1.0), {"rule": "zennit_alpha_beta", "with": {"alpha": 2.0, "beta": 1.0}}),
}


def _exact_identity_batchnorms(model):
    """A copy whose batch norms have eps = 0: zennit's canonizers leave a merged batch norm computing
    ``x / sqrt(1 + eps)`` (not quite the identity), which would otherwise differ by ~eps/2 per layer."""
    import copy

    model = copy.deepcopy(model)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eps = 0.0
    return model


@pytest.mark.parametrize("rules", sorted(ZENNIT_RULES))
@pytest.mark.parametrize("arch,canonizer", [("resnet18", ResNetCanonizer), ("resnet50", ResNetCanonizer),
                                            ("vgg16_bn", VGGCanonizer)])
def test_graph_canonization_gives_zennits_numbers(arch, canonizer, rules):
    """zennit's hand-written canonizers + zennit's rules == composer's graph canonization + the same rules
    (on residual sums composer's ``norm``, which reads both operands where zennit stacks them)."""
    model, x, target = _exact_identity_batchnorms(zoo_model(arch)), _x(), [0, 5]
    make_rule, binding = ZENNIT_RULES[rules]
    composite = LayerMapComposite([(Activation, Pass()), (Sum, Norm()), (AvgPool, Norm()),
                                   (Convolution, make_rule()), (torch.nn.Linear, make_rule())],
                                  canonizers=[canonizer()])
    with Gradient(model, composite) as attributor:
        _, theirs = attributor(x, lambda out: torch.eye(10)[target] * out)
    preset = {"name": f"zennit_{rules}", "layers": [
        {"select": {"type": "activation"}, "rule": "zennit_pass"}, {"select": {"type": "sum"}, "rule": "norm"},
        {"select": {"type": "avgpool"}, "rule": "zennit_norm"}, {"select": "all", **binding}]}
    ours = composer.explain(model, x, preset, target=target)
    assert (ours - theirs).abs().max() <= 1e-5 * theirs.abs().max()


#: share of the target logit that reaches the input on bias-free networks (no bias, batch norms without
#: shift), per method: (low, high). LRP-0 and alpha-beta conserve it exactly; epsilon absorbs ε·sgn(z)'s share
#: (docs/your-model.md has the measured table).
SUM_FACTOR = {"lrp_z": (0.999, 1.001), "lrp_alpha_2_beta_1": (0.99, 1.01), "lrp_epsilon_0_001": (0.9, 1.0)}


@pytest.mark.parametrize("arch", ["resnet18", "vgg16_bn", "densenet121", "regnet_x_400mf"])
def test_relevance_is_conserved_on_bias_free_networks(arch):
    model, x = zoo_model(arch, bias_free=True), _x()
    logits = model(x).detach()
    target = logits.argmax(1)
    for method, (low, high) in SUM_FACTOR.items():
        relevance = composer.explain(model, x, method, target=target)
        ratio = relevance.flatten(1).sum(1) / logits.gather(1, target[:, None])[:, 0]
        assert bool(((ratio >= low) & (ratio <= high)).all()), (method, ratio)


@pytest.mark.parametrize("arch", SQUEEZE_EXCITATION)
def test_squeeze_excitation_products_raise_the_coverage_error(arch):
    model, x = zoo_model(arch), _x()
    with pytest.raises(ComposerError, match=r"operator\.mul: a product of two input-dependent tensors"):
        composer.explain(model, x, "lrp_epsilon_0_1")
    for method in FAMILIES:
        with pytest.warns(ComposerWarning, match="has no rule for"):
            relevance = composer.explain(model, x, method, target=[1, 2], on_uncovered="warn")
        assert torch.isfinite(relevance).all(), method
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.isfinite(composer.explain(model, x, "grad_cam")).all()


def test_vision_transformer_raises_the_coverage_error():
    torch.manual_seed(0)
    model = torchvision.models.vit_b_16(weights=None, image_size=32, num_classes=10).eval()
    x = torch.randn(1, 3, 32, 32)
    with pytest.raises(ComposerError) as err:
        composer.explain(model, x, "lrp_epsilon_0_1")
    assert "LayerNorm" in str(err.value) and "MultiheadAttention" in str(err.value)
    with pytest.warns(ComposerWarning):
        assert torch.isfinite(composer.explain(model, x, "lrp_epsilon_0_1", on_uncovered="warn")).all()
