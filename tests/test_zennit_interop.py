"""composer as a zennit citizen: zennit's named composites as presets (bit for bit), composer's composites
inside zennit's combinators, canonizer instances and canonizers with parameters."""
import copy
import warnings

import pytest
import torch
import torchvision
import zennit.composites as zc
from zennit.attribution import Gradient
from zennit.canonizers import SequentialMergeBatchNorm
from zennit.composites import MixedComposite, NameMapComposite
from zennit.rules import Flat
from zennit.torchvision import ResNetCanonizer, VGGCanonizer

import composer
from composer.errors import ComposerError
from tests.conftest import assert_state_equal, hooks_left, state_of, with_bn_statistics

ZENNIT = {
    "epsilon_plus": lambda **kw: zc.EpsilonPlus(**kw),
    "epsilon_plus_flat": lambda **kw: zc.EpsilonPlusFlat(**kw),
    "epsilon_alpha2_beta1": lambda **kw: zc.EpsilonAlpha2Beta1(**kw),
    "epsilon_alpha2_beta1_flat": lambda **kw: zc.EpsilonAlpha2Beta1Flat(**kw),
    "epsilon_gamma_box": lambda **kw: zc.EpsilonGammaBox(low=-3.0, high=3.0, **kw),
    "excitation_backprop": lambda **kw: zc.ExcitationBackprop(**kw),
    "beta_smooth": lambda **kw: zc.BetaSmooth(**kw),
}
CANONIZER = {"vgg16_bn": ("vgg", VGGCanonizer), "resnet18": ("resnet", ResNetCanonizer)}


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {arch: with_bn_statistics(getattr(torchvision.models, arch)(num_classes=10))
            for arch in ("vgg16_bn", "resnet18")}


def _out_of_place(model):
    """zennit's hooks read a module's input after it ran: an in-place ReLU has overwritten it by then."""
    twin = copy.deepcopy(model)
    for m in twin.modules():
        if isinstance(m, torch.nn.ReLU):
            m.inplace = False
    return twin


class _SmoothReLU(torch.autograd.Function):
    """ReLU forward, sigmoid(beta x) backward: beta-smooth with nothing stored between calls."""

    @staticmethod
    def forward(ctx, x, beta):
        ctx.save_for_backward(x)
        ctx.beta = beta
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):
        x, = ctx.saved_tensors
        return torch.sigmoid(ctx.beta * x) * grad, None


class _SmoothReLUModule(torch.nn.Module):
    def __init__(self, beta):
        super().__init__()
        self.beta = beta

    def forward(self, x):
        return _SmoothReLU.apply(x, self.beta)


def _beta_smooth_oracle(model, x, classes, beta=10.0):
    smooth = copy.deepcopy(model)
    for module in list(smooth.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, torch.nn.ReLU):
                setattr(module, child_name, _SmoothReLUModule(beta))
    x = x.clone().requires_grad_()
    (smooth(x) * torch.eye(10)[list(classes)]).sum().backward()
    return x.grad


def _in_place(model, composite, x, classes=(1, 2)):
    """zennit's canonizers applied to the model itself (zennit's composites, zennit's combinators) run on a copy:
    zennit 1.0.0's MergeBatchNorm leaves the merged weights in the model it was applied to."""
    return _relevance(copy.deepcopy(model), composite, x, classes)


def _relevance(model, composite, x, classes=(1, 2)):
    with Gradient(model, composite) as attributor:
        return attributor(x, torch.eye(10)[list(classes)])[1]


@pytest.mark.parametrize("arch", ["vgg16_bn", "resnet18"])
@pytest.mark.parametrize("name", list(ZENNIT))
def test_zennit_composites_as_presets_bit_for_bit(models, arch, name):
    model = models[arch]
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    if name == "beta_smooth":
        model = _out_of_place(model)
        if arch == "resnet18":
            # zennit's hook keeps one input per module: resnet's ReLU, called twice per block, gets the second
            # call's input for both backward steps (a 190 % error). composer's twin has one module per call.
            got = composer.explain(model, x, name, target=[1, 2])
            assert torch.allclose(got, _beta_smooth_oracle(model, x, [1, 2]), rtol=1e-4, atol=1e-6 * got.abs().max())
            return
    by_name, cls = CANONIZER[arch]
    before = state_of(model)
    expected = _in_place(model, ZENNIT[name](canonizers=[cls()]), x)
    named = _relevance(model, composer.compose(name, canonizers=[by_name]), x)
    instance = _relevance(model, composer.compose(name, canonizers=[cls()]), x)
    explained = composer.explain(model, x, name, target=[1, 2], canonizers=[cls()])
    assert torch.equal(named, expected) and torch.equal(instance, expected)
    assert torch.equal(explained, expected)
    assert hooks_left(model) == 0
    assert_state_equal(model, before)


def test_zennit_parameter_names_and_zero_params(models):
    model = models["vgg16_bn"]
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    kwargs = {"epsilon": 0.3, "stabilizer": 1e-3, "zero_params": ["bias"]}
    expected = _in_place(model, zc.EpsilonPlusFlat(canonizers=[VGGCanonizer()], **kwargs), x, [4])
    got = _relevance(model, composer.compose("epsilon_plus_flat", canonizers=["vgg"], **kwargs), x, [4])
    assert torch.equal(got, expected)
    default = _relevance(model, composer.compose("epsilon_plus_flat", canonizers=["vgg"]), x, [4])
    assert not torch.allclose(default, expected)   # the parameters did change something
    gamma = _in_place(model, zc.EpsilonGammaBox(low=-1.0, high=2.0, gamma=0.5, canonizers=[VGGCanonizer()]), x, [4])
    assert torch.equal(gamma, _relevance(
        model, composer.compose("epsilon_gamma_box", low=-1.0, high=2.0, gamma=0.5, canonizers=["vgg"]), x, [4]))


def test_zero_params_are_validated():
    with pytest.raises(ComposerError, match="'biass' is not one of"):
        composer.compose("epsilon_plus", zero_params=["biass"])
    with pytest.raises(ComposerError, match="expected a list of names"):
        composer.compose("epsilon_plus", zero_params=[1])
    assert composer.compile_preset("epsilon_plus", zero_params="bias").bindings[0].params["zero_params"] == ["bias"]


def test_beta_smooth_reads_the_relu_input_where_zennit_reads_its_overwritten_output(models):
    """zennit's ReLUBetaSmooth on torchvision's in-place ReLUs sees relu(x), so sigmoid(beta * 0) = 0.5 where
    x < 0; composer's out-of-place twin gives sigmoid(beta * x) there, zennit's own numbers on an out-of-place
    model."""
    model = models["vgg16_bn"]
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    ours = composer.explain(model, x, "beta_smooth", target=[1], beta_smooth=5.0)   # graph canonization merges BN
    theirs = _relevance(_out_of_place(model), zc.BetaSmooth(beta_smooth=5.0), x, [1])
    assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-4 * theirs.abs().max())
    oracle = _beta_smooth_oracle(model, x, [1], beta=5.0)
    assert torch.allclose(ours, oracle, rtol=1e-4, atol=1e-4 * oracle.abs().max())


def test_excitation_backprop_binds_the_gradient_to_batch_norms_on_purpose(models):
    composite = composer.compose("excitation_backprop", canonizers=["vgg"])
    with composite.context(models["vgg16_bn"]):
        rules = dict(composite.assignments)
    assert rules["features.1"] == "gradient()" and rules["features.0"].startswith("zennit_z_plus")


# ----------------------------------------------------------------------- combinators
def test_composer_composite_inside_mixed_composite(models):
    model = models["vgg16_bn"]
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    expected = _in_place(model, zc.EpsilonPlus(canonizers=[VGGCanonizer()]), x)
    mixed = MixedComposite([composer.compose("epsilon_plus")], canonizers=[VGGCanonizer()])
    assert torch.equal(_in_place(model, mixed, x), expected)
    # a NameLayerMapComposite-style mix: a name map first, then composer's preset
    first_flat = [NameMapComposite([(["features.0"], Flat())])]
    expected = _in_place(model, MixedComposite(first_flat + [zc.EpsilonPlus()], canonizers=[VGGCanonizer()]), x)
    got = _in_place(model, MixedComposite(first_flat + [composer.compose("epsilon_plus", canonizers=["vgg"])]), x)
    assert torch.equal(got, expected)
    assert not torch.equal(got, _in_place(model, zc.EpsilonPlus(canonizers=[VGGCanonizer()]), x))


def test_tf_preset_inside_mixed_composite_equals_it_alone(models):
    """composer's own rules (rescale hooks, in-place ReLUs after them) work from zennit's register loop."""
    model = models["vgg16_bn"]
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    alone = _relevance(model, composer.compose("lrp_epsilon_0_1", canonizers=["vgg"]), x)
    mixed = _in_place(model, MixedComposite([composer.compose("lrp_epsilon_0_1", canonizers=["vgg"])]), x)
    assert torch.equal(mixed, alone) and alone.abs().sum() > 0
    assert hooks_left(model) == 0


def test_mixed_composite_warns_about_functional_operations_it_cannot_hook(models):
    model = models["resnet18"]
    x = torch.randn(1, 3, 32, 32)
    with pytest.warns(composer.ComposerWarning, match=r"(?s)8 operation\(s\) .*layer1\.0\.add"):
        _in_place(model, MixedComposite([composer.compose("epsilon_plus")]), x, [0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # with zennit's ResNet canonizer the sums are modules: nothing to say
        _in_place(model, MixedComposite([composer.compose("epsilon_plus")], canonizers=[ResNetCanonizer()]), x, [0])


# ----------------------------------------------------------------------- canonizers
def _small_bn_net():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(inplace=True),
                              torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 10))
    return with_bn_statistics(net)


def test_named_merge_batchnorm_from_data_equals_sequential_merge():
    net, x = _small_bn_net(), torch.randn(2, 3, 8, 8)
    named = {"name": "named_merge_batchnorm", "with": {"name_map": [[["0"], "1"]]}}
    preset = {"name": "mine", "extends": "epsilon_plus", "canonizers": [named]}
    expected = _in_place(net, zc.EpsilonPlus(canonizers=[SequentialMergeBatchNorm()]), x, [0, 0])
    got = _relevance(net, composer.compose(preset), x, [0, 0])
    assert torch.equal(got, expected)
    with pytest.raises(ComposerError, match="name_map is a list"):
        composer.compose("epsilon_plus", canonizers=[{"name": "named_merge_batchnorm", "with": {"name_map": "0"}}])


def test_attributes_canonizer_sets_and_restores_plain_values():
    net = _small_bn_net()
    ref = {"name": "attributes", "with": {"select": {"type": "ReLU"}, "set": {"inplace": False}}}
    composite = composer.compile_preset("epsilon_plus", canonizers=[ref]).composite(canonize=False)
    with composite.context(net):
        assert net[2].inplace is False
    assert net[2].inplace is True
    for bad, message in [({"select": {"type": "ReLU"}, "set": {"forward": {"a": 1}}}, "only numbers"),
                         ({"select": {"position": "first"}, "set": {"inplace": False}}, "by type or name"),
                         ({"select": {"type": "ReLU"}, "set": {"_private": 1}}, "public attribute")]:
        with pytest.raises(ComposerError, match=message):
            composer.compose("epsilon_plus", canonizers=[{"name": "attributes", "with": bad}])


def test_canonizers_from_a_preset_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nextends: epsilon_plus\ncanonizers:\n  - vgg\n"
                    "  - name: attributes\n    with: {select: {type: ReLU}, set: {inplace: false}}\n")
    plan = composer.compile_preset(str(path))
    assert [str(c) for c in plan.canonizers][0] == "vgg" and plan.canonizers[1].name == "attributes"
    path.write_text("name: mine\nextends: epsilon_plus\ncanonizers:\n  - {name: named_merge_batchnorm, with: {}}\n")
    with pytest.raises(ComposerError, match=r"mine.yaml:4.*named_merge_batchnorm.*rejected"):
        composer.compile_preset(str(path))


def test_canonizer_arguments_of_compose_and_explain():
    net, x = _small_bn_net(), torch.randn(2, 3, 8, 8)
    assert composer.compose("epsilon_plus", canonizers="merge_batchnorm").plan.canonizers == ("merge_batchnorm",)
    with pytest.raises(ComposerError, match="unknown canonizer 'vg'"):
        composer.compose("epsilon_plus", canonizers=["vg"])
    with pytest.raises(ComposerError, match="compose\\(\\) or explain\\(\\)"):
        composer.compile_preset("epsilon_plus", canonizers=[VGGCanonizer()])
    with pytest.raises(ComposerError, match="not int"):
        composer.explain(net, x, "epsilon_plus", canonizers=[3])
    by_instance = composer.explain(net, x, "epsilon_plus", target=0, canonizers=[SequentialMergeBatchNorm()])
    by_name = composer.explain(net, x, "epsilon_plus", target=0, canonizers=["merge_batchnorm"])
    assert torch.equal(by_instance, by_name)
