"""The canonical twin must compute the model's function, or explain() says so.

Cases a model sweep found silently wrong before: one layer's output concatenated twice before a batch
norm, a batch norm after a dense layer on 3-D input, forward hooks the user added (after a first call,
or on the model itself).
"""
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from zennit.attribution import Gradient

import composer
from composer import ComposerError
from composer.graph import canonize, graph_info
from tests.conftest import assert_state_equal, hooks_left, state_of


def _randomised(bn: nn.BatchNorm1d) -> nn.BatchNorm1d:
    """Bias-free but not the identity: mean 0, shift 0, other scales."""
    bn.running_var.uniform_(0.3, 3.0)
    bn.weight.data.uniform_(0.5, 2.0)
    bn.bias.data.zero_()
    return bn


def _conserves(model, x, target):
    """LRP-0 on a bias-free ReLU network: each map sums to its target logit."""
    relevance = composer.explain(model, x, "lrp_z", target=target)
    with torch.no_grad():
        logits = model(x)[torch.arange(len(target)), torch.tensor(target)]
    torch.testing.assert_close(relevance.flatten(1).sum(1), logits, rtol=1e-4, atol=1e-5)


class TwiceConcatenated(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 3, 3, padding=1, bias=False)
        self.bn = _randomised(nn.BatchNorm1d(6))
        self.fc = nn.Linear(6 * 5, 4, bias=False)

    def forward(self, x):
        y = self.conv(x)
        return self.fc(F.relu(self.bn(torch.cat([y, y], 1))).flatten(1))


class DenseOnTokens(nn.Module):
    """A dense layer over the last axis of (batch, tokens, features), then a batch norm over the tokens."""

    def __init__(self, tokens=5, features=8):
        super().__init__()
        self.dense = nn.Linear(features, features, bias=False)
        self.bn = _randomised(nn.BatchNorm1d(tokens))
        self.fc = nn.Linear(tokens * features, 4, bias=False)

    def forward(self, x):
        return self.fc(F.relu(self.bn(self.dense(x))).flatten(1))


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.fc = nn.Linear(4, 3, bias=False)

    def forward(self, x):
        return self.fc(F.relu(self.conv(x)).mean((2, 3)))


def test_a_layer_read_twice_by_a_concatenation_keeps_its_batch_norm():
    torch.manual_seed(0)
    model = TwiceConcatenated().eval()
    assert graph_info(canonize(model)).kept_batchnorms == ["bn"]
    _conserves(model, torch.randn(2, 2, 5), [1, 2])


def test_a_batch_norm_over_another_axis_than_the_dense_features_is_not_merged():
    torch.manual_seed(0)
    model = DenseOnTokens(tokens=5, features=8).eval()
    assert graph_info(canonize(model)).kept_batchnorms == ["bn"]
    _conserves(model, torch.randn(2, 5, 8), [0, 3])
    with Gradient(model, composer.compose("lrp_z")) as attributor:   # used to raise a bare RuntimeError
        _, relevance = attributor(torch.randn(2, 5, 8), torch.eye(4)[[0, 3]])
    assert torch.isfinite(relevance).all()


def test_a_merge_the_twin_gets_wrong_is_refused_not_explained():
    """Same channel counts on both axes: the merge looks right in the graph; the twin's check catches it."""
    torch.manual_seed(0)
    model = DenseOnTokens(tokens=8, features=8).eval()
    before = state_of(model)
    with pytest.raises(ComposerError, match=r"does not compute its output .* batch norms or biases merged .*dense \+ bn"):
        composer.explain(model, torch.randn(2, 8, 8), "lrp_z", target=[0, 1])
    assert_state_equal(model, before)
    assert not hooks_left(model)
    with pytest.raises(ComposerError, match="does not compute its output"):   # zennit's attributors: the same check
        with Gradient(model, composer.compose("lrp_z")) as attributor:
            attributor(torch.randn(2, 8, 8), torch.eye(4)[[0, 1]])
    assert_state_equal(model, before)
    assert not hooks_left(model) and "forward" not in vars(model)
    # on (batch, features) input the same kind of merge is right, and explained
    mlp = nn.Sequential(nn.Linear(6, 8, bias=False), _randomised(nn.BatchNorm1d(8)), nn.ReLU(),
                        nn.Linear(8, 3, bias=False)).eval()
    assert graph_info(canonize(mlp)).kept_batchnorms == []
    _conserves(mlp, torch.randn(3, 6), [0, 1, 2])


def test_a_forward_hook_on_the_model_itself_is_refused():
    torch.manual_seed(0)
    model = Small().eval()
    handle = model.register_forward_hook(lambda module, inputs, output: 2 * output)
    with pytest.raises(ComposerError, match="has forward hooks of its own"):
        composer.explain(model, torch.randn(2, 3, 6, 6), "lrp_epsilon_0_1")
    assert len(model._forward_hooks) == 1
    handle.remove()
    composer.explain(model, torch.randn(2, 3, 6, 6), "lrp_epsilon_0_1")


def test_a_hook_added_after_a_first_call_is_part_of_the_next_map():
    torch.manual_seed(0)
    model, x = Small().eval(), torch.randn(2, 3, 6, 6)
    _conserves(model, x, [0, 2])
    model.conv.register_forward_hook(lambda module, inputs, output: 3 * output)
    _conserves(model, x, [0, 2])   # the kept twin was built without the hook: it is rebuilt


def test_the_check_runs_once_per_input_shape_and_leaves_a_training_model_as_it_was():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Dropout(), nn.Linear(6, 3)).train()
    calls = []
    model[0].register_forward_hook(lambda module, inputs, output: calls.append(module is model[0]))
    before = state_of(model)
    with composer.Explainer(model, "lrp_epsilon_0_1") as explainer:
        for _ in range(3):
            explainer(torch.randn(5, 4))
        assert calls.count(True) == 1   # the model itself ran once, for the check
        explainer(torch.randn(7, 4))   # another batch size: the same signature
        assert calls.count(True) == 1
    assert model.training and all(m.training for m in model.modules())
    assert_state_equal(model, before)


class BiasApart(nn.Module):
    """A bias written as a separate tensor: the same function as layers with ``bias=True``."""

    def __init__(self, apart: bool):
        super().__init__()
        self.apart = apart
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=not apart)
        self.fc = nn.Linear(4, 3, bias=not apart)
        self.conv_bias = nn.Parameter(torch.randn(4, 1, 1)) if apart else None
        self.register_buffer("fc_shift", torch.randn(3) if apart else None)

    def forward(self, x):
        h = self.conv(x) + self.conv_bias if self.apart else self.conv(x)
        out = self.fc(F.relu(h).mean((2, 3)))
        return out - self.fc_shift if self.apart else out


def test_a_bias_written_apart_is_the_layers_bias():
    torch.manual_seed(0)
    inside, apart = BiasApart(False).eval(), BiasApart(True).eval()
    with torch.no_grad():
        apart.conv.weight.copy_(inside.conv.weight)
        apart.conv_bias.copy_(inside.conv.bias.view(4, 1, 1))
        apart.fc.weight.copy_(inside.fc.weight)
        apart.fc_shift.copy_(-inside.fc.bias)
    x = torch.randn(2, 3, 6, 6)
    torch.testing.assert_close(apart(x), inside(x))
    assert graph_info(canonize(apart)).aliases == {"add": "conv", "sub": "fc"}
    for method in ("lrp_z", "lrp_epsilon_0_1", "lrpsign_epsilon_0_1"):
        torch.testing.assert_close(composer.explain(apart, x, method, target=[0, 2]),
                                   composer.explain(inside, x, method, target=[0, 2]))
    # a constant that is not one value per channel stays an elementwise operation of its own
    class Spatial(Small):
        def __init__(self):
            super().__init__()
            self.register_buffer("shift", torch.ones(6, 6))

        def forward(self, x):
            return self.fc(F.relu(self.conv(x) + self.shift).mean((2, 3)))
    assert graph_info(canonize(Spatial().eval())).aliases == {}
