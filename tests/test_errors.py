"""Every mistake a user can make gets a ComposerError naming file, line, field and the closest name."""
import json
import warnings
from pathlib import Path

import pytest
import torch

import composer
from composer import ComposerError, ComposerWarning
from composer.spec import preset_json_schema


def write(tmp_path, text, name="p.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("text,line,field,message,suggestion", [
    ("name: a\nlayers: [\n", 3, None, "malformed YAML", None),
    ("name: a\nlayers:\n  - selct: all\n    rule: z\n", 3, "layers[0].selct", "unknown key 'selct'", "select"),
    ("name: a\nlayers: 3\n", 2, "layers", "valid list", None),
    ("name: a\nlayers:\n  - select: all\n    rule: epsilon\n    with: {epsilon: -1}\n", 5,
     "layers[0].with.epsilon", "out of range", None),
    ("name: a\nlayers:\n  - select: all\n    rule: epsilon\n    with: {epsilon: abc}\n", 5,
     "layers[0].with.epsilon", "expected a number", None),
    ("name: a\nlayers:\n  - select: all\n    rule: epsilom\n", 4, "layers[0].rule", "unknown rule", "epsilon"),
    ("name: a\nlayers:\n  - select: all\n    rule: epsilon\n    with: {epsilom: 1}\n", 5,
     "layers[0].with.epsilom", "has no parameter", "epsilon"),
    ("name: a\nlayers:\n  - select: all\n    rule: epsilon\n    with: {epsilon: $eps}\n", 5,
     "layers[0].with.epsilon", "refers to no parameter", None),
    ("name: a\nlayers:\n  - select: firts\n    rule: z\n", 3, "layers[0].select", "is not one of", "first"),
    ("name: a\nlayers:\n  - select: {type: Conv2D}\n    rule: z\n", 3, "layers[0].select.type",
     "unknown module type", "Conv2d"),
    ("name: a\ncanonizers: [merge_bn]\n", 2, "canonizers[0]", "unknown canonizer", "merge_batchnorm"),
    ("name: a\nextends: lrp_epsilom\n", 2, "extends", "unknown preset", "lrp_epsilon"),
    ("name: a\nattributor: {name: gradiant}\n", 2, "attributor.name", "unknown attributor", "gradient"),
    ("name: a\nmodifiers: [{name: x_sing}]\n", 2, "modifiers[0].name", "unknown modifier", "x_sign"),
    ("name: a\nlayers:\n  - select: {name_regex: '('}\n    rule: z\n", 3, "layers[0].select.name_regex", "regular expression",
     None),
])
def test_preset_errors_name_file_line_field(tmp_path, text, line, field, message, suggestion):
    path = write(tmp_path, text)
    with pytest.raises(ComposerError) as info:
        composer.compile_preset(path)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.source == path and err.line == line and message in str(err)
    if field:
        assert err.field == field
    if suggestion:
        assert suggestion in err.suggestions


def test_cycle_in_extends(tmp_path):
    write(tmp_path, "name: a\nextends: b\n", "a.yaml")
    write(tmp_path, "name: b\nextends: a\n", "b.yaml")
    with pytest.raises(ComposerError, match="cycle in 'extends': a -> b -> a"):
        composer.compile_preset(str(tmp_path / "a.yaml"))


def test_unknown_names_suggest_the_closest():
    with pytest.raises(ComposerError) as info:
        composer.compose("lrp_epsilom")
    assert "lrp_epsilon" in info.value.suggestions
    with pytest.raises(ComposerError) as info:
        composer.compose("lrp_epsilon", epsilom=0.1)
    assert info.value.suggestions == ["epsilon"]
    with pytest.raises(ComposerError, match="out of range"):
        composer.compose("lrp_epsilon", epsilon=-0.1)
    with pytest.raises(ComposerError, match="abstract"):
        composer.compose("lrp_base")


def test_unmatched_binding_warns_or_errors_as_declared(small_mlp):
    preset = {"name": "w", "layers": [{"select": {"type": "conv"}, "rule": "z"}], "on_uncovered": "ignore"}
    with pytest.warns(ComposerWarning, match="matches no module"):
        composer.explain(small_mlp, torch.ones(1, 6), preset)
    with pytest.raises(ComposerError, match="matches no module"):
        composer.explain(small_mlp, torch.ones(1, 6), dict(preset, on_unmatched="error"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        composer.explain(small_mlp, torch.ones(1, 6), dict(preset, on_unmatched="ignore"))
        composer.explain(small_mlp, torch.ones(1, 6), "lrp_sequential_composite_a")  # optional bindings


def test_json_schema_is_in_sync():
    committed = json.loads((Path(__file__).parents[1] / "schema" / "preset.schema.json").read_text())
    assert committed == json.loads(json.dumps(preset_json_schema())), \
        "regenerate with: composer schema > schema/preset.schema.json"


def test_yaml_never_constructs_python_objects(tmp_path):
    path = write(tmp_path, "name: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ComposerError, match="malformed YAML"):
        composer.compile_preset(path)
