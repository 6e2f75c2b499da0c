"""One catalog (registration invalidates exactly the caches it affects) and one validator."""
import pytest
import torch
from zennit.canonizers import SequentialMergeBatchNorm

import composer
from composer import registry
from composer.canonizers import CANONIZERS, register_canonizer
from composer.errors import ComposerError
from composer.methods import ATTRIBUTORS, MODIFIERS, attributor, check_attributor, check_modifier
from composer.names import grammar


@pytest.fixture
def registered():
    """Register into the real catalogs for one test; unregistered afterwards."""
    added = []
    yield lambda catalog, name: added.append((catalog, name))
    for catalog, name in added:
        catalog.unregister(name)


def test_every_kind_is_one_catalog():
    kinds = {c.kind for c in (registry.RULES, registry.PRESETS, composer.rules.HOOKS, ATTRIBUTORS, MODIFIERS,
                              CANONIZERS)}
    assert kinds == {"rule", "preset", "hook", "attributor", "modifier", "canonizer"}
    for catalog, wrong in [(registry.RULES, "epsilom"), (ATTRIBUTORS, "smoothgrd"), (CANONIZERS, "resnt")]:
        with pytest.raises(ComposerError, match=f"unknown {catalog.kind} '{wrong}'") as err:
            catalog.entry(wrong)
        assert err.value.suggestions


def test_registering_a_canonizer_keeps_the_grammar_and_renews_plans(registered):
    g = grammar()
    plan = composer.compile_preset("lrp_epsilon_0_1")
    assert composer.compile_preset("lrp_epsilon_0_1") is plan            # cached
    register_canonizer("my_merge", SequentialMergeBatchNorm)
    registered(CANONIZERS, "my_merge")
    assert grammar() is g                                                 # the grammar reads presets only
    assert composer.compile_preset("lrp_epsilon_0_1") is not plan         # plans name canonizers
    preset = {"name": "p", "extends": "lrp_epsilon", "canonizers": ["my_merge"]}
    assert composer.compile_preset(preset).canonizers == ("my_merge",)


def test_a_new_attributor_is_validated_from_its_signature(registered):
    from typing import Annotated, Literal

    from pydantic import Field

    @attributor("scaled_gradient")
    def scaled_gradient(backprop, x, target, scale: Annotated[float, Field(gt=0, le=10)] = 1.0,
                        start: Literal["one", "logit"] = "one"):
        """``scale`` times the gradient."""
        return scale * backprop.gradient(x, target, start)
    registered(ATTRIBUTORS, "scaled_gradient")

    preset = {"name": "scaled", "params": {"scale": 2}, "attributor": {"name": "scaled_gradient",
                                                                     "with": {"scale": "$scale"}}}
    net = torch.nn.Sequential(torch.nn.Linear(3, 2))
    x = torch.ones(1, 3)
    assert torch.allclose(composer.explain(net, x, preset), 2 * composer.explain(net, x, "gradient"))
    with pytest.raises(ComposerError, match=r"11 is out of range: must be <= 10"):
        composer.compile_preset(preset, scale=11)
    with pytest.raises(ComposerError, match="attributor 'scaled_gradient' has no parameter 'scal'") as err:
        check_attributor("scaled_gradient", {"scal": 1})
    assert err.value.suggestions == ["scale"]
    with pytest.raises(ComposerError, match=r"'once' is not one of \['one', 'logit'\]"):
        check_attributor("scaled_gradient", {"start": "once"})


def test_one_message_table_for_rules_attributors_and_modifiers():
    cases = [
        (lambda: composer.compile_preset("lrp_epsilon", epsilon=-1), "-1 is out of range: must be >= 0"),
        (lambda: check_attributor("integrated_gradients", {"steps": 1}), "1 is out of range: must be >= 2"),
        (lambda: check_modifier("x_sign", {"mu": "high"}), "expected a number, got 'high'"),
        (lambda: composer.compile_preset("lrp_epsilon", epsilon=True), "expected a number, got True"),
        (lambda: check_attributor("integrated_gradients", {"steps": 2.5}), "expected an integer, got 2.5"),
        (lambda: composer.compile_preset("lrp_epsilon", epsilon=float("nan")), "expected a finite number"),
    ]
    for call, message in cases:
        with pytest.raises(ComposerError) as err:
            call()
        assert message in str(err.value), (message, str(err.value))


def test_defaults_are_part_of_the_plan():
    plan = composer.compile_preset("gradient_x_sign")
    assert plan.attributor == ("gradient", {"start": "one"})
    assert plan.modifiers == (("x_sign", {"mu": 0.0}),)
    assert composer.compile_preset({"name": "bare", "layers": [{"select": "all", "rule": "z"}]}).attributor == \
        ("gradient", {"start": "logit"})                                   # lrp_base's: LRP starts at the logit


def test_a_preset_may_not_mix_relevance_and_gradient_form_rules():
    for preset in ({"name": "mix", "extends": "attnlrp", "layers": [{"select": {"type": "dense"}, "rule": "epsilon"}]},
                   {"name": "mix", "extends": "lrp_epsilon", "layers": [{"select": "first", "rule": "implicit_z"}]}):
        with pytest.raises(ComposerError, match="mixes relevance rules .* with gradient-form rules"):
            composer.compile_preset(preset)
    assert registry.get_rule("gradient").spec.form == "any"          # meaningful in both: excitation_backprop's BN
    for name in ("attnlrp", "cp_lrp", "excitation_backprop", "lrp_epsilon_0_1"):
        composer.compile_preset(name)
