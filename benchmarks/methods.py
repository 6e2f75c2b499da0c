"""What is timed: a plain input gradient, hand-written zennit composites, and composer's presets."""
import torch
import zennit.types
from zennit.composites import EpsilonAlpha2Beta1, LayerMapComposite, layer_map_base
from zennit.rules import Epsilon

import composer

COMPOSER_METHODS = ["lrp_epsilon_0_1", "lrpsign_epsilon_0_25_std_x_mu_0_5", "lrpz_sequential_composite_a",
                    "lrp_alpha_2_beta_1", "lrp_gamma", "smoothgrad", "grad_cam"]
#: targets of issue 6 (vgg16, batch 8, CPU): ratio to the plain gradient
EPSILON_FAMILY = {"lrp_epsilon_0_1", "lrpsign_epsilon_0_25_std_x_mu_0_5"}
SLOWER_FAMILY = {"lrpz_sequential_composite_a", "lrp_alpha_2_beta_1"}


def plain_gradient(model, x, target):
    """The baseline: d logit[target] / dx with plain autograd."""
    x = x.detach().requires_grad_(True)
    out = model(x)
    (grad,) = torch.autograd.grad(out.gather(1, target[:, None]).sum(), x)
    return grad


def zennit_attribution(composite_factory):
    """A method computed with a hand-written zennit composite, started from the logit like composer."""
    def run(model, x, target):
        with composite_factory().context(model):
            x = x.detach().requires_grad_(True)
            out = model(x)
            grad_out = torch.eye(out.shape[1], device=x.device)[target] * out.detach()
            (relevance,) = torch.autograd.grad(out, x, grad_out)
        return relevance
    return run


ZENNIT = {
    "zennit_epsilon_0_1": zennit_attribution(
        lambda: LayerMapComposite(layer_map_base() + [(zennit.types.Linear, Epsilon(0.1))])),
    "zennit_epsilon_alpha2_beta1": zennit_attribution(lambda: EpsilonAlpha2Beta1(epsilon=0.1)),
}


def composer_method(name, canonizers):
    def run(model, x, target):
        params = {"num_samples": 8} if name == "smoothgrad" else {}
        return composer.explain(model, x, name, target=target, canonizers=canonizers, seed=0, **params)
    return run
