"""Canonizers a preset may name: zennit's, by name, with parameters where they take data.

A preset lists canonizers as names (``canonizers: [vgg]``) or, for those that take parameters, as
``{name: ..., with: {...}}``::

    canonizers:
      - resnet
      - name: named_merge_batchnorm          # zennit's NamedMergeBatchNorm
        with: {name_map: [[[features.0], features.1], [[features.3], features.4]]}
      - name: attributes                     # set plain attributes of the selected modules
        with: {select: {type: ReLU}, set: {inplace: false}}

From Python, :func:`composer.compose` and :func:`composer.explain` also take zennit canonizer
*instances* (``canonizers=[ResNetCanonizer()]``). Graph canonization (the default) already merges
batch norms by the graph's edges and exposes residual sums; a zennit canonizer named besides it
takes over batch-norm merging, so zennit's composites are reproduced bit for bit.

zennit's ``AttributeCanonizer`` maps a Python *function* over the modules and, when removed, deletes
the attributes it set (which breaks attributes the module had before, such as ``ReLU.inplace``).
``attributes`` is its data form: scalar values only, for modules picked by type or name, and the
previous values are restored exactly.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Tuple, Union

import torch  # noqa: F401  (the doctests use it)
from zennit.canonizers import Canonizer, NamedMergeBatchNorm, SequentialMergeBatchNorm
from zennit.torchvision import ResNetCanonizer, VGGCanonizer

from .catalog import Catalog
from .errors import ComposerError


@dataclass(frozen=True)
class CanonizerRef:
    """A canonizer named with parameters (hashable, so plans and twins can be cached by it)."""

    name: str
    params_json: str

    @classmethod
    def of(cls, name: str, params: Mapping[str, Any]) -> "CanonizerRef":
        """The reference for ``name`` with ``params`` (key order does not matter)."""
        return cls(str(name), json.dumps(dict(params or {}), sort_keys=True))

    @property
    def params(self) -> Dict[str, Any]:
        return json.loads(self.params_json)

    def __str__(self):
        return f"{self.name}({self.params_json})"


CanonizerSpec = Union[str, CanonizerRef]


class SetAttributes(Canonizer):
    """Set plain (scalar) attributes of the modules a selector picks; :meth:`remove` restores them.

    Example
    -------
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU(inplace=True))
    >>> handles = SetAttributes({"type": "ReLU"}, {"inplace": False}).apply(net)
    >>> net[1].inplace
    False
    >>> for h in handles: h.remove()
    >>> net[1].inplace
    True
    """

    def __init__(self, select: Mapping[str, Any], values: Mapping[str, Any]):
        from .selectors import compile_selector

        self.select, self.values = dict(select), dict(values)
        self.selector = compile_selector(self.select, field="canonizers.with.select")
        self.module = None
        self.previous: Dict[str, Any] = {}

    def apply(self, root_module):
        instances = []
        for name, module in root_module.named_modules():
            if self.selector.matches(name, module, None, 0):
                instance = self.copy()
                instance.register(module)
                instances.append(instance)
        return instances

    def register(self, module):
        self.module = module
        for key, value in self.values.items():
            self.previous[key] = module.__dict__.get(key, _ABSENT)
            setattr(module, key, value)

    def remove(self):
        for key, value in self.previous.items():
            if value is _ABSENT:
                self.module.__dict__.pop(key, None)
            else:
                setattr(self.module, key, value)
        self.previous = {}

    def copy(self):
        return SetAttributes(self.select, self.values)


_ABSENT = object()


def _named_merge(name_map) -> NamedMergeBatchNorm:
    ok = isinstance(name_map, list) and all(
        isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[1], str)
        and isinstance(pair[0], (list, tuple)) and pair[0] and all(isinstance(n, str) for n in pair[0])
        for pair in name_map)
    if not ok:
        raise ValueError("name_map is a list of [[layer names], batch-norm name] pairs, "
                         "e.g. [[[features.0], features.1]]")
    return NamedMergeBatchNorm([(list(layers), bn) for layers, bn in name_map])


def _attributes(select, set) -> SetAttributes:  # noqa: A002 - the YAML key is 'set'
    if not isinstance(select, dict) or not select or not {*select} <= {"type", "name", "name_glob", "name_regex"}:
        raise ValueError("select picks modules by type or name: keys type, name, name_glob, name_regex")
    if not isinstance(set, dict) or not set:
        raise ValueError("set maps attribute names to values, e.g. {inplace: false}")
    for key, value in set.items():
        if not isinstance(key, str) or not key.isidentifier() or key.startswith("_"):
            raise ValueError(f"{key!r} is not a public attribute name")
        if not isinstance(value, (bool, int, float, str, type(None))):
            raise ValueError(f"attribute {key!r}: only numbers, booleans, strings and null can be set from data")
    return SetAttributes(select, set)


#: canonizer names a preset may use: factories taking the ``with`` parameters
CANONIZERS: Catalog[Callable[..., Canonizer]] = Catalog("canonizer")


def register_canonizer(name: str, factory: Callable[..., Canonizer], replace: bool = True) -> Callable[..., Canonizer]:
    """Make ``factory(**with)`` (a zennit Canonizer class or a function returning one) nameable in presets.

    Example
    -------
    >>> from zennit.canonizers import SequentialMergeBatchNorm
    >>> _ = register_canonizer("my_merge", SequentialMergeBatchNorm)
    >>> type(make_canonizer("my_merge")).__name__
    'SequentialMergeBatchNorm'
    >>> CANONIZERS.unregister("my_merge")   # (the example leaves the catalog as it found it)
    """
    return CANONIZERS.register(name, factory, replace=replace)


for _name, _factory in [("merge_batchnorm", SequentialMergeBatchNorm), ("vgg", VGGCanonizer),
                        ("resnet", ResNetCanonizer), ("named_merge_batchnorm", _named_merge),
                        ("attributes", _attributes)]:
    register_canonizer(_name, _factory)


def canonizer_ref(value: Any, source: str = "<preset>", field: str = "canonizers") -> CanonizerSpec:
    """A name, or a ``{name, with}`` mapping made hashable; checked by building the canonizer once.

    Example
    -------
    >>> canonizer_ref({"name": "attributes", "with": {"select": {"type": "ReLU"}, "set": {"inplace": False}}}).name
    'attributes'
    """
    if isinstance(value, CanonizerRef):
        return value
    if isinstance(value, Mapping):
        extra = set(value) - {"name", "with"}
        if "name" not in value or extra:
            raise ComposerError("a canonizer with parameters is {name: ..., with: {...}}", source=source, field=field)
        ref: CanonizerSpec = CanonizerRef.of(value["name"], value.get("with") or {})
    elif isinstance(value, str):
        ref = value
    else:
        raise ComposerError(f"a canonizer is a name, a {{name, with}} mapping or a zennit Canonizer, not "
                            f"{type(value).__name__}", source=source, field=field)
    make_canonizer(ref, source, field)
    return ref


def make_canonizer(ref: CanonizerSpec, source: str = "<preset>", field: str = "canonizers") -> Canonizer:
    """A fresh zennit canonizer for a name or a :class:`CanonizerRef`.

    Example
    -------
    >>> type(make_canonizer("merge_batchnorm")).__name__
    'SequentialMergeBatchNorm'
    """
    name = ref.name if isinstance(ref, CanonizerRef) else ref
    params = ref.params if isinstance(ref, CanonizerRef) else {}
    factory = CANONIZERS.entry(name, source, field)
    try:
        return factory(**params)
    except ComposerError as err:
        raise ComposerError(f"canonizer '{name}': {err.message}", source=source, field=field) from None
    except (TypeError, ValueError) as err:
        raise ComposerError(f"canonizer '{name}' rejected its parameters: {err}", source=source,
                            field=field) from None


def split_canonizers(values) -> Tuple[Tuple[CanonizerSpec, ...], Tuple[Canonizer, ...]]:
    """``canonizers=`` of compose/explain: (names and refs, zennit Canonizer instances).

    Example
    -------
    >>> refs, objs = split_canonizers(["vgg", ResNetCanonizer()])
    >>> refs, [type(o).__name__ for o in objs]
    (('vgg',), ['ResNetCanonizer'])
    """
    if values is None:
        return (), ()
    if isinstance(values, (str, Mapping, Canonizer)):
        values = [values]
    refs: List[CanonizerSpec] = []
    objects: List[Canonizer] = []
    try:
        items = list(values)
    except TypeError:
        raise ComposerError(f"canonizers is a list of names or zennit canonizers, not {type(values).__name__}") \
            from None
    for value in items:
        if isinstance(value, Canonizer):
            objects.append(value)
        else:
            refs.append(canonizer_ref(value, source="<call>", field="canonizers"))
    return tuple(dict.fromkeys(refs)), tuple(objects)
