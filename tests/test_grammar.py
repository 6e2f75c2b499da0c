"""The method-name grammar is data: presets declare their templates, one matcher reads them."""
import json
from pathlib import Path

import pytest

import composer
from composer import registry
from composer.catalog import Catalog
from composer.errors import ComposerError
from composer.methods import check_attributor, check_modifier
from composer.names import grammar, list_methods, method_table, parse_method

PLANS = Path(__file__).parent / "data" / "reference_plans.json"


def _plan_summary(name):
    plan = composer.compile_preset(name)
    out = {"params": {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in plan.params.items()},
           "bindings": [(b.selector.position, list(b.selector.types), b.describe()) for b in plan.bindings],
           "attributor": plan.attributor, "modifiers": plan.modifiers}
    return json.loads(json.dumps(out, default=str))


def _with_defaults(summary):
    """A summary written when attributor and modifier parameters left out kept no entry: their defaults
    (from the functions' signatures) are part of the plan now."""
    name, params = summary["attributor"]
    summary["attributor"] = [name, check_attributor(name, params)]
    summary["modifiers"] = [[m, check_modifier(m, p)] for m, p in summary["modifiers"]]
    return json.loads(json.dumps(summary, default=str))


def test_every_reference_method_name_gives_the_plan_it_gave_before_the_grammar_was_data():
    """reference_plans.json was written by the hand-written parser (and the preset files it replaced)."""
    before = json.loads(PLANS.read_text())
    assert len(before) == 171
    changed = [name for name, plan in before.items() if _plan_summary(name) != _with_defaults(plan)]
    assert not changed


@pytest.fixture
def own_presets(tmp_path, monkeypatch):
    """A preset folder registered for one test, in a preset catalog of its own (discarded afterwards)."""
    monkeypatch.setattr(registry, "PRESETS", Catalog("preset", registry._load_presets))
    composer.register_preset_dir(tmp_path)
    return tmp_path


def test_renaming_a_parameter_changes_what_the_name_binds(own_presets):
    text = (composer.registry.PRESET_DIR / "lrp_epsilon.yaml").read_text()
    renamed = text.replace("{epsilon}", "{eps}").replace("epsilon: 0.1", "eps: 0.1").replace("$epsilon", "$eps")
    (own_presets / "lrp_epsilon.yaml").write_text(renamed)
    composer.register_preset_dir(own_presets)
    assert parse_method("lrpz_epsilon_0_3").params == {"eps": 0.3}
    assert composer.compile_preset("lrpz_epsilon_0_3").bindings[1].describe().startswith("epsilon(epsilon=0.3")
    # a template left behind by the rename is an error, not a name that silently binds nothing
    (own_presets / "lrp_epsilon.yaml").write_text(renamed.replace("{eps}", "{epsilon}"))
    composer.register_preset_dir(own_presets)
    with pytest.raises(ComposerError, match=r"'epsilon_\{epsilon\}' uses epsilon, which the preset does not declare"):
        parse_method("lrp_epsilon_0_3")


def test_a_new_body_works_with_every_prefix_and_modifier(own_presets):
    (own_presets / "lrp_half.yaml").write_text(
        "name: lrp_half\nsummary: epsilon, written another way\ngrammar: {body: \"half_{epsilon}\"}\n"
        "extends: lrp_epsilon\n")
    composer.register_preset_dir(own_presets)
    parsed = parse_method("lrpsign_half_0_5_mu_neg_0_5_x_input")
    assert parsed.extends == ("lrpsign", "lrp_half") and parsed.params == {"epsilon": 0.5, "mu": -0.5}
    assert parsed.modifiers == (("x_input", {}),)
    assert "lrpz_half_0_1" in list_methods("half")
    assert "| body | `half_<epsilon>` | `lrp_half` |" in method_table()


def test_registering_a_folder_invalidates_compiled_plans(own_presets):
    assert composer.compile_preset("lrp_epsilon").params["epsilon"] == 0.1
    (own_presets / "lrp_epsilon.yaml").write_text(
        "name: lrp_epsilon\ngrammar: {body: \"epsilon_{epsilon}\"}\nextends: lrp_base\nparams: {epsilon: 0.7}\nlayers:\n"
        "  - {select: all, rule: epsilon, with: {epsilon: $epsilon}}\n")
    composer.register_preset_dir(own_presets)
    assert composer.compile_preset("lrp_epsilon").params["epsilon"] == 0.7
    assert composer.compile_preset("lrp_epsilon_0_2").params["epsilon"] == 0.2


def test_the_grammar_has_no_tables_in_python():
    import ast

    import composer.names as names

    tree = ast.parse(Path(names.__file__).read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body
                  and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    code_strings = " ".join(n.value for n in ast.walk(tree)
                            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings)
    for word in ("lrpsign", "VGG16ILSVRC", "stdfactor", "sequential_composite", "x_sign", "epsilon", "alpha"):
        assert word not in code_strings, word
    assert set(grammar().prefixes) == {"lrp", "lrpsign", "lrpz", "w2lrp", "flatlrp", "zblrp"}


def test_grammar_errors_name_the_part_that_does_not_fit():
    with pytest.raises(ComposerError, match="'VGG16ILSVRC' needs the zblrp prefix"):
        parse_method("lrpz_z_VGG16ILSVRC")
    with pytest.raises(ComposerError, match="unknown LRP body 'epsilom_0_1'"):
        parse_method("lrpz_epsilom_0_1")
    with pytest.raises(ComposerError, match="building block"):
        parse_method("lrpsign_x_input")
