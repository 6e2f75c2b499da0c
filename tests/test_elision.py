"""Skipping redundant ReLU pass hooks, and reading z after an in-place ReLU, change no number."""
import pytest
import torch
import torchvision

import composer
from composer.compiler import compile_preset
from tests.conftest import hooks_left


def _attr(model, composite, x, target):
    with composite.context(model):
        out = model(x.requires_grad_(True))
        relevance = torch.autograd.grad(out, x, torch.eye(out.shape[1])[target] * out.detach())[0]
    return relevance, list(getattr(composite, "elided", []))


def inplace_cnn():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(inplace=True), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU(inplace=True), torch.nn.AdaptiveAvgPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(32, 16), torch.nn.ReLU(inplace=True), torch.nn.Dropout(),
        torch.nn.Linear(16, 4)).eval()


def tanh_cnn():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Tanh(), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 8 * 8, 8), torch.nn.ReLU(inplace=True), torch.nn.Linear(8, 4)).eval()


PRESETS = ["lrp_epsilon_0_1", "lrp_z", "lrpsign_epsilon_0_25_std_x_mu_0_5", "lrpz_sequential_composite_a",
           "lrp_alpha_2_beta_1", "lrp_gamma", "w2lrp_epsilon_0_1", "flatlrp_z", "lrp_flat", "lrp_w_square",
           "zblrp_epsilon_0_1_VGG16ILSVRC", "lrp_z_plus"]


@pytest.mark.parametrize("make", [inplace_cnn, tanh_cnn], ids=["relu-inplace", "tanh"])
@pytest.mark.parametrize("preset", PRESETS)
def test_elision_changes_no_number(make, preset):
    model = make()
    torch.manual_seed(1)
    x, target = torch.randn(3, 3, 8, 8), [0, 1, 3]
    plan = compile_preset(preset)
    for p in model.parameters():
        p.requires_grad_(False)
    fast, elided = _attr(model, plan.composite(), x.clone(), target)
    full, none = _attr(model, plan.composite(elide=False), x.clone(), target)
    assert none == []
    assert torch.equal(fast, full)
    if preset not in ("lrp_flat", "lrp_w_square"):  # flat and w-square give relevance to zero inputs
        assert elided              # every ReLU after the first layer's rule keeps plain gradients
    if make is tanh_cnn and preset not in ("lrp_flat", "lrp_w_square"):
        assert elided == ["4"]     # the proof is per path: the Tanh before it does not matter
    assert hooks_left(model) == 0


def test_vgg16_relu_hooks_are_elided_and_results_exact():
    torch.manual_seed(0)
    model = torchvision.models.vgg16(weights=None).eval()
    x = torch.randn(1, 3, 48, 48)
    composite = composer.compose("lrpsign_epsilon_0_1")
    with composite.context(model):
        pass
    assert len(composite.elided) == 15   # 13 conv ReLUs + 2 classifier ReLUs
    relevance = composer.explain(model, x, "lrpsign_epsilon_0_1")
    plan = compile_preset("lrpsign_epsilon_0_1")
    for p in model.parameters():
        p.requires_grad_(False)
    target = int(model(x).argmax())
    full, _ = _attr(model, plan.composite(elide=False), x.clone(), [target])
    assert torch.equal(relevance, full)


def test_inplace_op_on_a_needed_tensor_is_an_error():
    class Sneaky(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)

        def forward(self, x):
            h = self.fc1(x)
            h.mul_(2)          # overwrites fc1's output, which the epsilon rule needs
            return self.fc2(h)

    torch.manual_seed(0)
    model, x = Sneaky(), torch.randn(1, 4)
    with pytest.raises(composer.ComposerError, match="in-place operation"):
        composer.explain(model, x, "lrp_epsilon_0_1", canonize=False)
    # canonized, the in-place product is an out-of-place ``x * 2`` module that passes relevance on
    relevance = composer.explain(model, x, "lrp_epsilon_0_1")
    assert torch.isfinite(relevance).all() and relevance.shape == x.shape
