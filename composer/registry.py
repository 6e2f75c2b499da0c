"""Names are the public interface: the rule and preset catalogs (:mod:`composer.catalog`).

* :data:`RULES` come from ``rule_specs/*.yaml`` (each naming a registered hook class), from Python
  (:func:`register_rule`) and from the ``composer.rules`` entry-point group.
* :data:`PRESETS` come from ``presets/*.yaml`` and from folders added with :func:`register_preset_dir`.
* Canonizers are zennit's, by name (:data:`CANONIZERS`, see :mod:`composer.canonizers`).

YAML never names a Python import path: a rule spec names a hook registered in
:mod:`composer.rules` or one of :mod:`zennit.rules`; a preset names rules and canonizers only.
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Type, Union

import zennit.rules
from zennit.core import Hook

from . import rules as _rules  # noqa: F401  (registers composer's hooks)
from .canonizers import CANONIZERS, make_canonizer  # noqa: F401  (canonizers are found here too)
from .catalog import Catalog, versions
from .errors import ComposerError, closest
from .rules.base import HOOKS
from .spec import ParamSpec, RuleSpec
from .validation import params_model, validate_document, validate_params
from .yamlio import read_yaml

_PACKAGE = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    """``composer/<name>`` in an installed wheel, else ``<source root>/<name>``."""
    inside = _PACKAGE / name
    return inside if inside.is_dir() else _PACKAGE.parent / name


PRESET_DIR = _data_dir("presets")
RULE_SPEC_DIR = _data_dir("rule_specs")
GRAMMAR_DIR = _data_dir("grammar")


@dataclass(frozen=True)
class RuleEntry:
    """A registered rule: its spec and the hook class that implements it."""

    spec: RuleSpec
    hook: Type[Hook]
    source: str

    @functools.cached_property
    def params_model(self):
        """The pydantic model of the rule's parameters, generated from its :class:`ParamSpec` s."""
        return params_model(self.spec.name, self.spec.params, tuple(self.spec.ordered))

    def check(self, params: Dict[str, Any], source: str = "<preset>", field: str = "with") -> Dict[str, Any]:
        """``params`` validated against the spec, with the defaults of those not given.

        Example
        -------
        >>> get_rule("epsilon").check({"epsilon": 1})
        {'epsilon': 1.0, 'bias': True}
        """
        return validate_params(self.params_model, params, f"rule '{self.spec.name}'", source, field)

    def make_hook(self, params: Dict[str, Any]) -> Hook:
        """A hook template for validated ``params`` (plus the spec's fixed arguments)."""
        return self.hook(**{**self.spec.fixed, **params})


def _load_rules(catalog: "Catalog[RuleEntry]") -> None:
    for path in sorted(RULE_SPEC_DIR.glob("*.yaml")):
        catalog.register(path.stem, load_rule_spec(path))
    _load_entry_points()   # after the files: a plugin may replace a built-in rule


def _load_presets(catalog: "Catalog[Path]") -> None:
    for path in sorted(PRESET_DIR.glob("*.yaml")):
        catalog.register(path.stem, path)


#: rule name -> :class:`RuleEntry` (rule specs, :func:`register_rule`, the ``composer.rules`` entry points)
RULES: Catalog[RuleEntry] = Catalog("rule", _load_rules)
#: preset name -> its YAML file (``presets/``, :func:`register_preset_dir`)
PRESETS: Catalog[Path] = Catalog("preset", _load_presets)


def generation() -> int:
    """A number that changes whenever anything is registered (a rule, a preset folder, an attributor,
    a canonizer...). Caches use :func:`composer.catalog.versions` of the catalogs they read instead.

    Example
    -------
    >>> isinstance(generation(), int)
    True
    """
    return max(versions(RULES, PRESETS, HOOKS, CANONIZERS))


def resolve_hook(name: str, source: str = "<rule spec>") -> Type[Hook]:
    """The hook class a rule spec names: a composer hook, or ``zennit:<Rule>``.

    Example
    -------
    >>> resolve_hook("zennit:Pass").__name__, resolve_hook("EpsilonHook").__name__
    ('Pass', 'EpsilonHook')
    """
    if name.startswith("zennit:"):
        attr = getattr(zennit.rules, name[len("zennit:"):], None)
        if isinstance(attr, type) and issubclass(attr, Hook):
            return attr
        known = [f"zennit:{n}" for n, v in vars(zennit.rules).items() if isinstance(v, type) and issubclass(v, Hook)]
        raise ComposerError(f"unknown zennit rule '{name}'", source=source, field="hook",
                            suggestions=closest(name, known))
    return HOOKS.entry(name, source, "hook")


def load_rule_spec(path: Union[str, Path]) -> RuleEntry:
    """Read, validate and resolve one rule spec file.

    Example
    -------
    >>> load_rule_spec(RULE_SPEC_DIR / "epsilon.yaml").spec.params["epsilon"].default
    1e-07
    """
    doc = read_yaml(path)
    spec = validate_document(RuleSpec, doc.data, source=str(path), doc=doc)
    if Path(path).stem != spec.name:
        raise ComposerError(f"rule '{spec.name}' must live in a file named {spec.name}.yaml", source=str(path),
                            field="name")
    return RuleEntry(spec, resolve_hook(spec.hook, str(path)), str(path))


def _load_entry_points():
    from importlib.metadata import entry_points

    try:
        eps = entry_points(group="composer.rules")
    except TypeError:  # Python < 3.10
        eps = entry_points().get("composer.rules", [])
    for ep in eps:
        obj = ep.load()
        if isinstance(obj, type) and issubclass(obj, Hook):
            register_rule(ep.name)(obj)
        elif callable(obj):
            obj()  # a function that registers rules itself


def _params_from_signature(hook: Type[Hook]) -> Dict[str, ParamSpec]:
    kinds = {bool: "bool", int: "int", float: "float", str: "str"}
    params = {}
    for pname, p in inspect.signature(hook.__init__).parameters.items():
        if pname == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.default is None:
            continue  # a default of None (zennit's zero_params): left to the hook's own default
        required = p.default is inspect.Parameter.empty
        kind = "float" if required else kinds.get(type(p.default), "float")
        params[pname] = ParamSpec(type=kind, default=None if required else p.default, required=required)
    return params


def register_rule(name: str, *, params: Optional[Dict[str, dict]] = None, summary: str = "",
                  fixed: Optional[dict] = None, applies_to: str = "layers", replace: bool = False):
    """Decorator: register a hook class as rule ``name`` so presets can use it.

    ``params`` maps parameter names to :class:`~composer.spec.ParamSpec` fields; without it they are
    read from the hook's ``__init__`` signature (type from the default value; parameters whose
    default is None are left to the hook).

    Example
    -------
    >>> from zennit.rules import Epsilon
    >>> @register_rule("my_epsilon", params={"epsilon": {"type": "float", "default": 0.5, "ge": 0}},
    ...                replace=True)
    ... class MyEpsilon(Epsilon):
    ...     '''zennit's epsilon under a new name.'''
    >>> get_rule("my_epsilon").spec.params["epsilon"].default
    0.5
    >>> RULES.unregister("my_epsilon")   # (the example leaves the catalog as it found it)
    """
    def decorate(hook):
        if not (isinstance(hook, type) and issubclass(hook, Hook)):
            raise TypeError(f"register_rule expects a zennit Hook subclass, got {hook!r}")
        spec_params = ({k: ParamSpec(**v) for k, v in params.items()} if params is not None
                       else _params_from_signature(hook))
        spec = RuleSpec(name=name, hook=hook.__name__, summary=summary or (hook.__doc__ or name).strip().split("\n")[0],
                        params=spec_params, fixed=fixed or {}, applies_to=applies_to)
        RULES.register(name, RuleEntry(spec, hook, f"python:{hook.__module__}.{hook.__qualname__}"),
                       replace=replace, source=f"python:{hook.__module__}.{hook.__qualname__}")
        return hook
    return decorate


def rule_named(name: str) -> RuleEntry:
    """The rule registered as ``name`` or declaring it among its ``aliases`` (SignXAI's ``zplus``...).

    Example
    -------
    >>> rule_named("zplus").spec.name, rule_named("epsilon").spec.name
    ('z_plus', 'epsilon')
    """
    aliased = None if name in RULES else next((e for e in RULES.values() if name in e.spec.aliases), None)
    return aliased or get_rule(name)


def get_rule(name: str) -> RuleEntry:
    """The registered rule ``name``; a misspelt name raises with the closest valid ones.

    Example
    -------
    >>> get_rule("stdx_epsilon").spec.params["stdfactor"].default
    0.25
    """
    return RULES.entry(name)


def list_rules() -> List[str]:
    """Names of all registered rules, sorted.

    Example
    -------
    >>> "sign_mu" in list_rules()
    True
    """
    return sorted(RULES)


# --------------------------------------------------------------------------- presets
def register_preset_dir(path: Union[str, Path]) -> None:
    """Make every ``*.yaml`` preset in ``path`` available by name (later folders win on clashes).

    Example
    -------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "my_eps.yaml").write_text("name: my_eps\\nextends: lrp_epsilon\\nparams: {epsilon: 0.5}\\n")
    >>> register_preset_dir(d); "my_eps" in list_presets()
    True
    """
    path = Path(path)
    if not path.is_dir():
        raise ComposerError("not a folder", source=str(path))
    for file in sorted(path.glob("*.yaml")):
        PRESETS.register(file.stem, file)


def preset_path(name: str) -> Path:
    """The file of registered preset ``name``.

    Example
    -------
    >>> preset_path("lrp_epsilon").name
    'lrp_epsilon.yaml'
    """
    return PRESETS.entry(name)


def has_preset(name: str) -> bool:
    """Whether a preset file of that name is registered."""
    return name in PRESETS


def list_presets(include_abstract: bool = False) -> List[str]:
    """Names of the registered presets (without the abstract building blocks unless asked).

    Example
    -------
    >>> "lrp_sequential_composite_a" in list_presets()
    True
    """
    return sorted(n for n in PRESETS if include_abstract or not _header(n).get("abstract", False))


def _header(name: str) -> dict:
    """A preset file's top-level fields, read without resolving or compiling it (cached per file version)."""
    path = PRESETS[name]
    try:
        stat = path.stat()
    except OSError:
        return {}
    return _read_header(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4096)
def _read_header(path: str, mtime_ns: int, size: int) -> dict:
    data = read_yaml(path).data
    return data if isinstance(data, dict) else {}
