"""Each rule on a two-layer net small enough to check by hand, plus rules.md's edge cases."""
import numpy as np
import pytest
import torch

import composer
from tests.conftest import hooks_left

W1 = [[1.0, -1.0], [2.0, 1.0]]
B1 = [0.5, -1.0]
W2 = [[1.0, 0.5], [-1.0, 1.0]]
B2 = [0.0, 0.0]


def two_layer(b1=B1, b2=B2):
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU(), torch.nn.Linear(2, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor(W1)), net[0].bias.copy_(torch.tensor(b1))
        net[2].weight.copy_(torch.tensor(W2)), net[2].bias.copy_(torch.tensor(b2))
    return net.eval()


def explain(net, x, rule_layers, target=0):
    preset = {"name": "t", "extends": "lrp_base", "layers": rule_layers}
    return composer.explain(net, torch.tensor([x]), preset, target=target)[0].tolist()


# ------------------------------------------------------------------ worked by hand
def test_z_rule_by_hand():
    # x = (2, 1): z1 = (2 - 1 + 0.5, 4 + 1 - 1) = (1.5, 4) = a2;  z2 = (1.5 + 2, -1.5 + 4) = (3.5, 2.5)
    # start R2 = (3.5, 0) (target 0, its logit);  s2 = R2 / z2 = (1, 0);  R_a2 = a2 * W2^T s2 = (1.5, 2)
    # s1 = (1.5 / 1.5, 2 / 4) = (1, 0.5);  W1^T s1 = (1 + 1, -1 + 0.5);  R_x = x * (2, -0.5) = (4, -0.5)
    assert explain(two_layer(), [2.0, 1.0], [{"select": "all", "rule": "z"}]) == pytest.approx([4.0, -0.5])


def test_epsilon_rule_by_hand():
    # epsilon 1: s2 = 3.5 / 4.5;  R_a2 = (1.5, 2) * 3.5 / 4.5;  s1 = R_a2 / (1.5 + 1, 4 + 1)
    s2 = 3.5 / 4.5
    s1 = np.array([1.5 * s2 / 2.5, 2.0 * s2 / 5.0])
    expected = np.array([2.0, 1.0]) * (np.array(W1).T @ s1)
    got = explain(two_layer(), [2.0, 1.0], [{"select": "all", "rule": "epsilon", "with": {"epsilon": 1.0}}])
    assert got == pytest.approx(expected.tolist())


def test_epsilon_sign_of_zero_is_positive():
    # a logit of exactly 0 is stabilised with +epsilon (sgn 0 = +1), as the reference does
    net = two_layer(b2=[-3.5, 0.0])            # z2[0] = 3.5 - 3.5 = 0
    got = explain(net, [2.0, 1.0], [{"select": "all", "rule": "epsilon", "with": {"epsilon": 0.5}}])
    assert got == pytest.approx([0.0, 0.0])  # R2 = 0 * logit = 0, no NaN


def test_sign_rule_by_hand():
    # SIGN on the first layer, Z above: R_x = sign(x) * W1^T s1 = sign((2, -1)) * ...
    # x = (2, -1): z1 = (3 + 0.5, 4 - 1 - 1) = (3.5, 2);  z2 = (3.5 + 1, -3.5 + 2) = (4.5, -1.5)
    # R2 = (4.5, 0);  s2 = (1, 0);  R_a2 = (3.5, 1);  s1 = (1, 0.5);  W1^T s1 = (2, -0.5);  R_x = (2, 0.5)
    layers = [{"select": "first", "rule": "sign"}, {"select": "all", "rule": "z"}]
    assert explain(two_layer(), [2.0, -1.0], layers) == pytest.approx([2.0, 0.5])


def test_sign_of_zero_input_is_plus_one():
    layers = [{"select": "first", "rule": "sign"}, {"select": "all", "rule": "z"}]
    # x = (0, 1): z1 = (-1 + 0.5, 1 - 1) = (-0.5, 0) -> a2 = (0, 0): no relevance reaches the input
    assert explain(two_layer(), [0.0, 1.0], layers) == pytest.approx([0.0, 0.0])
    # x = (0, -1): z1 = (1.5, -2) -> a2 = (1.5, 0); z2 = (1.5, -1.5); R_a2 = (1.5, 0); s1 = (1, 0)
    # W1^T s1 = (1, -1); sign(0) = +1, sign(-1) = -1  ->  R_x = (1, 1)
    assert explain(two_layer(), [0.0, -1.0], layers) == pytest.approx([1.0, 1.0])


def test_sign_mu_threshold():
    layers = [{"select": "first", "rule": "sign_mu", "with": {"mu": 1.5}}, {"select": "all", "rule": "z"}]
    # same pass as test_sign_rule_by_hand, W1^T s1 = (2, -0.5); m(x) = (+1 since 2 >= 1.5, -1)
    assert explain(two_layer(), [2.0, -1.0], layers) == pytest.approx([2.0, 0.5])
    layers[0]["with"]["mu"] = 2.5               # now 2 < 2.5 -> -1
    assert explain(two_layer(), [2.0, -1.0], layers) == pytest.approx([-2.0, 0.5])


def test_w_square_and_flat_by_hand():
    # Z above (R_a2 = (1.5, 2) for x = (2, 1)), then on the first layer:
    # w_square: V = W1^2 = [[1, 1], [4, 1]]; R_x = V^T (R_a2 / V 1) = [[1, 4], [1, 1]] (0.75, 0.4) = (2.35, 1.15)
    # flat:     V = 1;  R_x = 1^T (R_a2 / 2) = (0.75 + 1, 0.75 + 1) = (1.75, 1.75)
    above = {"select": "all", "rule": "z"}
    assert explain(two_layer(), [2.0, 1.0], [{"select": "first", "rule": "w_square"}, above]) == \
        pytest.approx([2.35, 1.15])
    assert explain(two_layer(), [2.0, 1.0], [{"select": "first", "rule": "flat"}, above]) == pytest.approx([1.75, 1.75])


def test_zbox_by_hand():
    # first layer z-box in [0, 3], Z above: R_a2 = (1.5, 2), x = (2, 1)
    # z = W1 x - W1+ l - W1- h = (1, 5) - 0 - (-3, 0) = (4, 5);  s = (0.375, 0.4)
    # R_x = x * W1^T s - l * W1+^T s - h * W1-^T s = (2 * 1.175, 1 * 0.025) - 0 - 3 * (0, -0.375) = (2.35, 1.15)
    layers = [{"select": "first", "rule": "zbox", "with": {"low": 0.0, "high": 3.0}}, {"select": "all", "rule": "z"}]
    assert explain(two_layer(), [2.0, 1.0], layers) == pytest.approx([2.35, 1.15])


# ------------------------------------------------------------------ dense matrix forms of rules.md
def _sd(n, d):
    return n / (d + 1e-7 * (d == 0))


def dense_rule(rule, a, W, b, R, **p):
    P, N = (lambda t: np.maximum(t, 0)), (lambda t: np.minimum(t, 0))
    if rule in ("z", "epsilon"):
        z = W @ a + b
        eps = p.get("epsilon", 0.0)
        return a * (W.T @ _sd(R, z + eps * np.where(z >= 0, 1, -1)))
    if rule == "alpha_beta":
        al, be = p["alpha"], p["beta"]
        za = P(W) @ P(a) + N(W) @ N(a) + b
        zi = N(W) @ P(a) + P(W) @ N(a) + b
        ra = P(a) * (P(W).T @ _sd(R, za)) + N(a) * (N(W).T @ _sd(R, za))
        ri = P(a) * (N(W).T @ _sd(R, zi)) + N(a) * (P(W).T @ _sd(R, zi))
        return al * ra - be * ri
    if rule == "gamma":
        g = p["gamma"]
        z1 = (P(W) @ P(a) + P(b)) + (W @ a + b)
        z2 = (W @ P(a) + b) + (P(W) @ a + P(b))
        A = P(a) * (P(W).T @ _sd(R, z1)) + a * (W.T @ _sd(R, z1))
        B_ = P(a) * (W.T @ _sd(R, z2)) + a * (P(W).T @ _sd(R, z2))
        return g * A - B_
    raise KeyError(rule)


@pytest.mark.parametrize("rule,params", [
    ("z", {}), ("epsilon", {"epsilon": 0.3}), ("alpha_beta", {"alpha": 1.0, "beta": 0.0}),
    ("alpha_beta", {"alpha": 2.0, "beta": 1.0}), ("gamma", {"gamma": 0.5}),
])
@pytest.mark.parametrize("x", [[2.0, 1.0], [-1.5, 0.5], [0.0, -2.0]])
def test_rules_match_dense_matrix_form(rule, params, x):
    net = two_layer()
    a = np.array(x)
    W1_, b1_, W2_, b2_ = (np.array(v) for v in (W1, B1, W2, B2))
    a2 = np.maximum(W1_ @ a + b1_, 0)
    z2 = W2_ @ a2 + b2_
    R2 = np.array([z2[0], 0.0])
    expected = dense_rule(rule, a, W1_, b1_, dense_rule(rule, a2, W2_, b2_, R2, **params), **params)
    got = explain(net, x, [{"select": "all", "rule": rule, "with": params}])
    assert got == pytest.approx(expected.tolist(), rel=1e-5, abs=1e-6)
    assert hooks_left(net) == 0


# ------------------------------------------------------------------ properties
CONSERVING = ["lrp_z", "lrp_flat", "lrp_w_square", "lrp_alpha_1_beta_0", "lrp_z_plus", "zplus_composite",
              "w2lrp_z", "flatlrp_z", "lrpz_alpha_1_beta_0"]


@pytest.mark.parametrize("method", CONSERVING)
def test_conservation_without_bias(small_mlp, method):
    """Bias-free layers and rules whose shares sum to one: the input relevance sums to the logit."""
    for m in small_mlp.modules():
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.zeros_(m.bias)
    x = torch.rand(3, 6) + 0.1
    logits = small_mlp(x)
    target = logits.argmax(1)
    relevance = composer.explain(small_mlp, x, method, target=target)
    expected = logits.gather(1, target[:, None])[:, 0]
    assert relevance.sum(1) == pytest.approx(expected.tolist(), rel=1e-4)


def test_epsilon_absorbs_relevance_but_keeps_sign(small_mlp):
    x = torch.rand(4, 6) + 0.5
    assert small_mlp[:4](x).abs().sum() > 0
    small = composer.explain(small_mlp, x, "lrp_epsilon_0_001").sum(1).abs()
    big = composer.explain(small_mlp, x, "lrp_epsilon_100").sum(1).abs()
    assert (big < small).all()


@pytest.mark.parametrize("x", [[0.0, 0.0], [1.0, 1.0]])
def test_zero_denominators_are_guarded(x):
    # x = (1, 1) with b1 = (0, -3): z1 = (0, 0) exactly; SafeDivide adds 1e-7, no NaN
    net = two_layer(b1=[0.0, -3.0])
    for rule in ("z", "alpha_beta", "gamma", "w_square", "flat", "sign"):
        layers = [{"select": "all", "rule": rule}]
        got = np.array(explain(net, x, layers))
        assert np.isfinite(got).all(), rule


def test_alpha_beta_exact_zero_inhibitory_denominator_with_bias():
    # a = (1, 0.5) >= 0 takes the fast path; W- a + b = -1 + 1 = 0 exactly with a nonzero bias, where
    # SafeDivide's huge quotient really moves relevance: the hook must fall back to the four terms
    layer = torch.nn.Sequential(torch.nn.Linear(2, 2))
    with torch.no_grad():
        layer[0].weight.copy_(torch.tensor([[-1.0, 1.0], [0.5, 0.5]])), layer[0].bias.copy_(torch.tensor([1.0, 0.0]))
    a = np.array([1.0, 0.5])
    W, b = layer[0].weight.detach().numpy().astype(np.float64), layer[0].bias.detach().numpy().astype(np.float64)
    z = W @ a + b
    expected = dense_rule("alpha_beta", a, W, b, np.array([z[0], 0.0]), alpha=2.0, beta=1.0)
    got = composer.explain(layer, torch.tensor([a.tolist()], dtype=torch.float32),
                           {"name": "t", "layers": [{"select": "all", "rule": "alpha_beta",
                                                     "with": {"alpha": 2.0, "beta": 1.0}}]}, target=0)
    assert got[0].tolist() == pytest.approx(expected.tolist(), rel=1e-5)


@pytest.mark.parametrize("rule,params", [("alpha_beta", {"alpha": 2.0, "beta": 1.0}), ("gamma", {"gamma": 0.5})])
def test_generic_path_equals_explicit_transposes(monkeypatch, rule, params):
    """Layers without an explicit transpose (transposed or circular convolutions...) run their own forward
    with modified weights and autograd; forced onto an ordinary convolution it gives the same numbers."""
    from composer.rules import linear

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(3, 3, 3),
                              torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(27, 4))
    x = torch.rand(2, 2, 5, 5) - 0.3                      # both signs: the four-term path on the first layer
    preset = {"name": "t", "extends": "lrp_base", "layers": [{"select": "all", "rule": rule, "with": params}]}
    explicit = composer.explain(net, x, preset, target=1)
    monkeypatch.setattr(linear, "_plain_conv", lambda module: False)
    generic = composer.explain(net, x, preset, target=1)
    assert torch.allclose(generic, explicit, rtol=1e-5, atol=1e-6)
    assert hooks_left(net) == 0
