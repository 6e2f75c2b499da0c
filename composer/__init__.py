"""composer: declarative LRP. Methods are YAML presets compiled into zennit composites.

    >>> import torch, composer
    >>> net = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    >>> composer.explain(net, torch.randn(2, 8), "lrpz_sequential_composite_a").shape
    torch.Size([2, 8])
"""
from .compiler import ComposerWarning, PresetComposite, compile_preset, compose, load_preset
from .dataset import explain_dataset, open_store
from .domain import DomainSpec
from .errors import ComposerError
from .evaluation import evaluate, tune
from .explain import Explainer, explain
from .frequency import DomainExplanation, to_domain
from .names import list_methods, parse_method
from .registry import list_presets, list_rules, register_preset_dir, register_rule
from . import quantus  # noqa: E402,F401  (composer.quantus.explain_func; imports no quantus package)

__version__ = "0.1.0"

__all__ = ["compose", "compile_preset", "explain", "Explainer", "load_preset", "list_presets", "list_rules",
           "list_methods", "parse_method", "register_rule", "register_preset_dir", "ComposerError",
           "ComposerWarning", "PresetComposite", "DomainSpec", "DomainExplanation", "to_domain", "evaluate", "tune",
           "explain_dataset", "open_store", "__version__"]
