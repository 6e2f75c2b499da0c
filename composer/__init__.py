"""composer: declarative LRP. Methods are YAML presets compiled into zennit composites.

    >>> import torch, composer
    >>> net = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    >>> composer.explain(net, torch.randn(2, 8), "lrpz_sequential_composite_a").shape
    torch.Size([2, 8])
"""
from .compiler import ComposerWarning, PresetComposite, compile_preset, compose, load_preset
from .errors import ComposerError
from .explain import explain
from .names import list_methods, parse_method
from .registry import list_presets, list_rules, register_preset_dir, register_rule

__version__ = "0.1.0"

__all__ = ["compose", "compile_preset", "explain", "load_preset", "list_presets", "list_rules", "list_methods",
           "parse_method", "register_rule", "register_preset_dir", "ComposerError", "ComposerWarning",
           "PresetComposite", "__version__"]
