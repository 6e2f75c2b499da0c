"""Rules come from YAML specs, from Python (register_rule) and from the composer.rules entry points."""
import pytest
import torch
from zennit.rules import Epsilon

import composer
from composer import registry
from composer.catalog import Catalog


class _EntryPoint:
    def __init__(self, name, obj):
        self.name, self._obj = name, obj

    def load(self):
        return self._obj


def test_entry_point_rules_are_registered(monkeypatch):
    class PluginEpsilon(Epsilon):
        """An epsilon rule shipped by a plugin package."""

    def registers_itself():
        composer.register_rule("plugin_function_rule", params={}, replace=True)(Epsilon)

    import importlib.metadata

    eps = [_EntryPoint("plugin_epsilon", PluginEpsilon), _EntryPoint("ignored_name", registers_itself)]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group=None: eps if group == "composer.rules" else [])
    monkeypatch.setattr(registry, "RULES", Catalog("rule", registry._load_rules))
    assert {"plugin_epsilon", "plugin_function_rule", "epsilon"} <= set(composer.list_rules())
    spec = registry.get_rule("plugin_epsilon").spec
    assert spec.params["epsilon"].default == 1e-6          # read from the hook's signature
    net = torch.nn.Sequential(torch.nn.Linear(3, 2))
    preset = {"name": "p", "layers": [{"select": "all", "rule": "plugin_epsilon", "with": {"epsilon": 0.5}}]}
    assert composer.explain(net, torch.ones(1, 3), preset).shape == (1, 3)


def test_register_rule_refuses_clashes_and_non_hooks():
    with pytest.raises(composer.ComposerError, match="already registered"):
        composer.register_rule("epsilon")(Epsilon)
    with pytest.raises(TypeError):
        composer.register_rule("not_a_hook")(object)
