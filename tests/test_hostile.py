"""Hostile presets and inputs: a corpus of malformed files, fuzzed presets, bounded resources."""
import json
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import composer
from composer import ComposerError
from composer.yamlio import MAX_FILE_BYTES

BAD = Path(__file__).parent / "data" / "bad_presets"
EXPECTED = json.loads((BAD / "expected.json").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_preset_corpus(name):
    with pytest.raises(ComposerError) as info:
        composer.compile_preset(str(BAD / name))
    assert EXPECTED[name] in str(info.value), str(info.value)
    assert str(BAD / name) in str(info.value)


def test_corpus_is_large_enough():
    assert len(EXPECTED) >= 30 and len(list(BAD.glob("*.yaml"))) == len(EXPECTED)


def test_oversized_file_is_refused(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("name: big\nsummary: '" + "x" * MAX_FILE_BYTES + "'\n")
    with pytest.raises(ComposerError, match="larger than"):
        composer.compile_preset(str(path))


def test_deep_extends_chain_is_refused(tmp_path):
    for i in range(40):
        (tmp_path / f"p{i}.yaml").write_text(f"name: p{i}\nextends: p{i + 1}\n")
    (tmp_path / "p40.yaml").write_text("name: p40\nextends: lrp_z\n")
    with pytest.raises(ComposerError, match="deeper than 16"):
        composer.compile_preset(str(tmp_path / "p0.yaml"))


# ------------------------------------------------------------------ fuzzing
NET = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                          torch.nn.Linear(3 * 4 * 4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3)).eval()
X = torch.randn(2, 2, 4, 4)

RULES = {"z": {}, "epsilon": {"epsilon": st.floats(0, 10)}, "stdx_epsilon": {"stdfactor": st.floats(0, 3)},
         "sign": {}, "sign_mu": {"mu": st.floats(-2, 2)}, "alpha_beta": {"alpha": st.floats(0, 3), "beta": st.floats(0, 2)},
         "z_plus": {}, "gamma": {"gamma": st.floats(0, 2)}, "flat": {}, "w_square": {},
         "zbox": {"low": st.floats(-3, 0), "high": st.floats(0, 3)}, "zennit_epsilon": {"epsilon": st.floats(1e-6, 1)},
         "zennit_alpha_beta": {}, "zennit_flat": {}}  # zennit requires alpha - beta = 1: its defaults
SELECTORS = st.one_of(st.sampled_from(["first", "last", "middle", "all"]),
                      st.fixed_dictionaries({"type": st.sampled_from(["conv", "dense", "Linear", "Conv2d"])}),
                      st.fixed_dictionaries({"index": st.integers(-3, 2)}),
                      st.fixed_dictionaries({"name_glob": st.sampled_from(["*", "0", "[35]"])}))


@st.composite
def valid_presets(draw):
    layers = []
    for _ in range(draw(st.integers(0, 4))):
        rule = draw(st.sampled_from(sorted(RULES)))
        params = {k: draw(v) for k, v in RULES[rule].items() if draw(st.booleans())}
        layers.append({"select": draw(SELECTORS), "rule": rule, "with": params})
    preset = {"name": "fuzz", "layers": layers, "on_unmatched": "ignore", "on_uncovered": "ignore"}
    if draw(st.booleans()):
        preset["extends"] = draw(st.sampled_from(["lrp_base", "lrpz", "lrpsign", "lrp_epsilon", "gradient"]))
    if draw(st.booleans()):
        preset["modifiers"] = [{"name": "x_sign", "with": {"mu": draw(st.floats(-1, 1))}}]
    return preset


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_presets())
def test_fuzzed_valid_presets_compile_and_run(preset):
    relevance = composer.explain(NET, X, preset)
    assert relevance.shape == X.shape and torch.isfinite(relevance).all()


JUNK = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                              st.text(max_size=12)),
                    lambda children: st.one_of(st.lists(children, max_size=4),
                                               st.dictionaries(st.text(max_size=8), children, max_size=4)),
                    max_leaves=12)
KEYS = ["name", "summary", "extends", "params", "layers", "canonizers", "attributor", "modifiers", "on_unmatched",
        "canonize", "on_uncovered", "abstract", "select", "rule", "with", "optional", "typo"]


@st.composite
def mutated_presets(draw):
    preset = draw(valid_presets())
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(["top", "binding", "params"]))
        key, value = draw(st.sampled_from(KEYS)), draw(JUNK)
        layers = preset.get("layers")
        if where == "binding" and isinstance(layers, list) and layers and isinstance(layers[0], dict):
            layers[0][key] = value
        elif where == "params" and isinstance(preset.get("params", {}), dict):
            preset.setdefault("params", {})[draw(st.text(max_size=6))] = value
        else:
            preset[key] = value
    return preset


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_presets())
def test_fuzzed_invalid_presets_raise_only_composer_errors(preset):
    try:
        relevance = composer.explain(NET, X, preset)
    except ComposerError:
        return
    assert torch.isfinite(relevance).all()  # a mutation can stay valid


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=60))
def test_fuzzed_method_names_raise_only_composer_errors(name):
    try:
        composer.compile_preset(name) if "/" not in name and not name.endswith((".yaml", ".yml")) else None
    except ComposerError:
        pass


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=400))
def test_fuzzed_yaml_text_raises_only_composer_errors(text):
    from composer.spec import Preset, validate_document
    from composer.yamlio import parse_yaml

    try:
        doc = parse_yaml(text, "<fuzz>")
        validate_document(Preset, doc.data, "<fuzz>", doc)
    except ComposerError:
        pass
