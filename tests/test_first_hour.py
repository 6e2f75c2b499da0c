"""The first hour of a new user: presets and parameters as written from the docs, and bad input.

Every mistake gets a ComposerError naming file, line and field and what is allowed, fast, and
leaves the model as it was."""
import time

import pytest
import torch
import torchvision

import composer
from composer.errors import ComposerError
from composer.yamlio import parse_yaml
from tests.conftest import assert_state_equal, hooks_left, state_of


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 3)).eval()


def _refused(call, *fragments):
    start = time.perf_counter()
    with pytest.raises(ComposerError) as info:
        call()
    assert time.perf_counter() - start < 1.0
    text = str(info.value)
    for fragment in fragments:
        assert fragment in text, text
    return info.value


# ----------------------------------------------------------------------- YAML
def test_scientific_notation_reads_as_a_float(tmp_path):
    assert parse_yaml("a: 1e-6\nb: -2E+3\nc: .5e1\nd: 12\ne: 1e6x\n").data == {
        "a": 1e-6, "b": -2000.0, "c": 5.0, "d": 12, "e": "1e6x"}
    path = tmp_path / "eps.yaml"
    path.write_text("name: eps\nextends: lrp_epsilon\nparams: {epsilon: 1e-6}\n")
    assert composer.compile_preset(str(path)).params["epsilon"] == 1e-6


@pytest.mark.parametrize("text,line,key", [
    ("name: a\nextends: lrp_base\nparams: {epsilon: 0.1, epsilon: 5.0}\n", 3, "epsilon"),
    ("name: a\nlayers:\n  - {select: all, rule: z}\nsummary: s\nlayers:\n  - {select: all, rule: flat}\n", 5, "layers"),
])
def test_duplicate_keys_are_refused_with_their_line(tmp_path, text, line, key):
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    err = _refused(lambda: composer.compile_preset(str(path)), f"duplicate key '{key}'")
    assert err.source == str(path) and err.line == line


def test_a_huge_integer_is_refused_not_crashed(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("name: big\nextends: lrp_epsilon\nparams: {epsilon: " + "9" * 5000 + "}\n")
    err = _refused(lambda: composer.compile_preset(str(path)), "5000 digits")
    assert err.line == 3


# ----------------------------------------------------------------------- where errors point
def test_errors_point_at_what_the_user_wrote(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nextends: lrp_epsilon\nparams:\n  epsilon: -5\n")
    err = _refused(lambda: composer.compile_preset(str(path)), "must be >= 0", "lrp_epsilon.yaml")
    assert (err.source, err.line, err.field) == (str(path), 4, "params.epsilon")
    err = _refused(lambda: composer.compile_preset("lrp_epsilon_neg_1"), "must be >= 0")
    assert err.source == "method name 'lrp_epsilon_neg_1'" and err.field == "epsilon"
    err = _refused(lambda: composer.compile_preset("lrp_epsilon", epsilon=-5), "must be >= 0")
    assert err.source == "<arguments>" and err.field == "epsilon"


def test_a_keyword_contradicting_the_method_name_is_an_error():
    _refused(lambda: composer.explain(_net(), torch.randn(2, 4), "lrp_epsilon_0_1", epsilon=50.0),
             "sets epsilon=0.1", "epsilon=50.0", "'lrp_epsilon'")
    assert composer.compile_preset("lrp_epsilon_0_1", epsilon=0.1).params["epsilon"] == 0.1  # agreeing is fine


# ----------------------------------------------------------------------- validation
def test_zbox_bounds_and_selector_indices_are_validated():
    _refused(lambda: composer.compile_preset("zbox_composite", low=2.0, high=1.0), "needs low <= high")
    _refused(lambda: composer.compile_preset("epsilon_gamma_box", low=[0.0, 5.0], high=[1.0, 1.0]), "low <= high")
    for index, message in [([3, 0], "is empty"), (1e23, "an index is an integer"), (10 ** 23, "out of range")]:
        preset = {"name": "p", "extends": "lrp_base", "layers": [{"select": {"index": index}, "rule": "z"}]}
        _refused(lambda: composer.compile_preset(preset), message, "layers[0].select")


def test_validation_reports_every_bad_binding_at_once(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nextends: lrp_base\nlayers:\n"
                    "  - {select: all, rule: epsilon, with: {epsilon: -1}}\n"
                    "  - {select: all, rule: gamma, with: {gamma: -1}}\n"
                    "  - {select: all, rule: zbox, with: {low: 2.0, high: 1.0}}\n")
    err = _refused(lambda: composer.compile_preset(str(path)), "(and 2 more)")
    assert [(e.line, e.field) for e in err.errors()] == [
        (4, "layers[0].with.epsilon"), (5, "layers[1].with.gamma"), (6, "layers[2].with.low")]
    schema = tmp_path / "schema.yaml"
    schema.write_text("name: s\nlayerz: []\nextends: 5\non_unmatched: maybe\n")
    err = _refused(lambda: composer.compile_preset(str(schema)), "unknown key 'layerz'")
    assert sorted(e.line for e in err.errors()) == [2, 3, 4]


def test_no_regex_selector_can_hang():
    names = [n for n, _ in torchvision.models.densenet121().named_modules()]
    preset = {"name": "p", "extends": "lrp_base", "on_unmatched": "ignore",
              "layers": [{"select": {"name_regex": "([a-z0-9.]|[a-z0-9.])*X"}, "rule": "z"}]}
    plan = composer.compile_preset(preset)
    start = time.perf_counter()
    assert not any(plan.bindings[0].selector.name_regex.fullmatch(n * 4) for n in names)
    assert time.perf_counter() - start < 1.0
    preset["layers"][0]["select"]["name_regex"] = r"(conv)\1"
    _refused(lambda: composer.compile_preset(preset), "RE2", "layers[0].select")


# ----------------------------------------------------------------------- raw exceptions
@pytest.mark.parametrize("kwargs,message", [
    ({"target": 2 ** 64}, "not a class index"),
    ({"target": 7}, "the model has 3 classes"),
    ({"seed": "a"}, "seed must be an integer"),
    ({"seed": 2 ** 70}, "out of range"),
    ({"generator": 5}, "generator must be a torch.Generator"),
    ({"canonizers": 3}, "canonizers is a list"),
])
def test_bad_arguments_are_composer_errors_and_leave_the_model_alone(kwargs, message):
    net = _net()
    before = state_of(net)
    _refused(lambda: composer.explain(net, torch.randn(2, 4), "smoothgrad", **kwargs), message)
    assert_state_equal(net, before)
    assert hooks_left(net) == 0


def test_a_huge_integer_parameter_from_python_is_refused():
    _refused(lambda: composer.compile_preset("lrp_epsilon", epsilon=10 ** 400), "out of range")


def test_one_canonizer_name_is_not_read_as_letters():
    assert composer.compose("lrp_epsilon", canonizers="vgg").plan.canonizers == ("vgg",)


def test_analyzer_parameters_the_rule_does_not_take_are_refused():
    from composer.analyzers import LRPAnalyzer

    net = _net()
    _refused(lambda: LRPAnalyzer(net, "z", epsilon=0.1), "rule 'z' has no parameter 'epsilon'")
    _refused(lambda: LRPAnalyzer(net, "epsilon", gamma=0.5), "has no parameter 'gamma'")
    assert LRPAnalyzer(net, "zplus").method["layers"][0] == {"select": "all", "rule": "z_plus", "with": {}}
