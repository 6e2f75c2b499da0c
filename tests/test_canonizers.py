"""zennit's canonizers on torch 2.x: batch-norm merging on vgg16_bn, the ResNet canonizer on resnet18."""
import pytest
import torch
import torchvision

import composer
from tests.conftest import assert_state_equal, hooks_left, state_of, with_bn_statistics


@pytest.mark.parametrize("arch,canonizer", [("vgg16_bn", "vgg"), ("vgg16_bn", "merge_batchnorm"),
                                            ("resnet18", "resnet")])
def test_canonizer_keeps_outputs_and_restores_the_model(arch, canonizer):
    torch.manual_seed(0)
    model = with_bn_statistics(getattr(torchvision.models, arch)(weights=None))
    x = torch.randn(2, 3, 64, 64)
    before, out = state_of(model), model(x)
    composite = composer.compose("lrp_epsilon_0_1", canonizers=[canonizer])
    with composite.context(model):
        with composite.inactive():
            merged = model(x)
        hooked = [n for n, rule in composite.assignments if rule.startswith("epsilon")]
    assert (merged - out).abs().max() <= 1e-4 * out.abs().max()   # folding BN changes only rounding
    bn = [n for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    # zennit's canonizer merged them and left each computing x / sqrt(1 + eps): lrp_base's z rule applies
    assert {n: r for n, r in composite.assignments if n in bn} == {n: "z(bias=True)" for n in bn}
    assert len(hooked) == len([m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))])
    relevance = composer.explain(model, x, "lrpsign_epsilon_0_1", canonizers=[canonizer])
    assert relevance.shape == x.shape and torch.isfinite(relevance).all()
    assert hooks_left(model) == 0
    assert_state_equal(model, before)
    assert torch.equal(model(x), out)


def test_resnet_canonizer_routes_residual_sums_through_norm():
    model = with_bn_statistics(torchvision.models.resnet18(weights=None))
    composite = composer.compose("lrp_z", canonizers=["resnet"])
    with composite.context(model):
        rules = dict(composite.assignments)
    assert rules["layer1.0.canonizer_sum"] == "norm(epsilon=1e-06)"
