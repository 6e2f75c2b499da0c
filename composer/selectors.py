"""Which modules a selector picks.

The model's *relevance layers* are its leaf modules of the kernel families (``Linear``, ``Conv1d``,
``Conv2d``, ``Conv3d`` and their transposed forms), in ``model.named_modules()`` order, which is
definition order. For ``nn.Sequential`` models and the torchvision classifiers this is also the
order the forward pass uses them; for a model whose ``forward`` calls layers in another order,
select by name instead of by position. ``first``, ``last``, ``middle``, ``all`` and ``index`` count
over the relevance layers only; ``type`` and the name keys may pick any module.
"""
from __future__ import annotations

import fnmatch
import functools
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
import zennit.layer
import zennit.types

from .errors import ComposerError, closest
from .saferegex import compile_regex
from .graph.modules import Add, ElementwiseConstant, Mean
from .spec import SelectorSpec

#: type families a selector may name, mapped to the classes they cover
class ElementwiseActivation(metaclass=zennit.types.SubclassMeta):
    """zennit's activations, less ``MultiheadAttention`` (which zennit counts among them, but which mixes
    its inputs: passing relevance through it unchanged would hide that no rule covers attention)."""

    __subclass__ = tuple(c for c in zennit.types.Activation.__subclass__ if c is not torch.nn.MultiheadAttention)


FAMILIES = {
    "conv": (zennit.types.Convolution,),
    "dense": (torch.nn.Linear,),
    "linear": (torch.nn.Linear,),
    "activation": (ElementwiseActivation,),
    "batchnorm": (zennit.types.BatchNorm,),
    "avgpool": (zennit.types.AvgPool, Mean),
    "maxpool": (zennit.types.MaxPool,),
    "sum": (zennit.layer.Sum, Add),
    "elementwise": (ElementwiseConstant,),
}

#: what counts as a relevance layer
RELEVANCE_TYPES = (torch.nn.Linear, zennit.types.Convolution)
#: affine layers that layer rules may be bound to by type, though positions do not count them
#: (a batch norm that graph canonization could not merge into the layer before it)
AFFINE_LAYERS = (zennit.types.BatchNorm,)


@functools.lru_cache(maxsize=1)
def _known_class_names() -> List[str]:
    names = [n for n, v in vars(torch.nn).items() if isinstance(v, type) and issubclass(v, torch.nn.Module)]
    return names + ["Sum", "Add", "Mean", "ElementwiseConstant", "MatMul", "Multiply"]


def is_relevance_layer(module: torch.nn.Module) -> bool:
    """Whether LRP rules apply to ``module`` (a leaf Linear or convolution).

    Example
    -------
    >>> is_relevance_layer(torch.nn.Conv2d(1, 1, 3)), is_relevance_layer(torch.nn.ReLU())
    (True, False)
    """
    return isinstance(module, RELEVANCE_TYPES) and not list(module.children())


def relevance_layers(model: torch.nn.Module) -> List[Tuple[str, torch.nn.Module]]:
    """``(name, module)`` of the model's relevance layers, in ``named_modules()`` order.

    Example
    -------
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    >>> [name for name, _ in relevance_layers(net)]
    ['0', '2']
    """
    return [(name, m) for name, m in model.named_modules() if is_relevance_layer(m)]


@dataclass(frozen=True)
class CompiledSelector:
    """A validated selector, ready to test modules."""

    position: Optional[str] = None
    types: Tuple[str, ...] = ()
    name: Optional[str] = None
    name_glob: Optional[str] = None
    name_regex: Optional[object] = None   # an RE2 pattern (composer.saferegex)
    index: Optional[Tuple[int, int]] = None
    nth: Optional[Tuple[int, int]] = None

    @property
    def positional(self) -> bool:
        """Whether it only picks relevance layers (it uses position or index)."""
        return self.position is not None or self.index is not None

    def matches(self, name: str, module: torch.nn.Module, index: Optional[int], count: int,
                type_index: Optional[int] = None, type_count: int = 0) -> bool:
        """Whether the module (``index`` among ``count`` relevance layers, None if it is none; ``type_index``
        among the ``type_count`` modules of the selector's type, for ``nth``) is picked."""
        if self.nth is not None:
            if type_index is None:
                return False
            start, stop = (i + type_count if i < 0 else i for i in self.nth)
            if not start <= type_index <= stop:
                return False
        if self.positional:
            if index is None:
                return False
            if self.position == "first" and index != 0:
                return False
            if self.position == "last" and index != count - 1:
                return False
            if self.position == "middle" and index in (0, count - 1):
                return False
            if self.index is not None:
                start, stop = (i + count if i < 0 else i for i in self.index)
                if not start <= index <= stop:
                    return False
        if self.types and not any(_type_matches(t, module) for t in self.types):
            return False
        if self.name is not None and name != self.name:
            return False
        if self.name_glob is not None and not fnmatch.fnmatchcase(name, self.name_glob):
            return False
        if self.name_regex is not None and not self.name_regex.fullmatch(name):
            return False
        return True


def type_matches(selector: "CompiledSelector", module: torch.nn.Module) -> bool:
    """Whether ``module`` is of one of the selector's types (what ``nth`` counts)."""
    return any(_type_matches(t, module) for t in selector.types)


def _type_matches(type_name: str, module: torch.nn.Module) -> bool:
    family = FAMILIES.get(type_name.lower())
    if family is not None:
        return isinstance(module, family)
    return any(cls.__name__ == type_name for cls in type(module).__mro__)


def compile_selector(selector, source: str = "<preset>", field: str = "select") -> CompiledSelector:
    """Turn a preset's ``select:`` value into a :class:`CompiledSelector`.

    Example
    -------
    >>> sel = compile_selector({"type": "conv", "index": [0, 1]})
    >>> sel.matches("features.0", torch.nn.Conv2d(1, 1, 3), 0, 5)
    True
    >>> first_conv = compile_selector({"type": "conv", "nth": 0})   # the first convolution, whatever precedes it
    >>> first_conv.matches("fc", torch.nn.Conv2d(1, 1, 3), 1, 5, type_index=0, type_count=2)
    True
    """
    if isinstance(selector, str):
        return CompiledSelector(position=selector)
    if isinstance(selector, dict):
        selector = SelectorSpec(**selector)
    types: Sequence[str] = ()
    if selector.type is not None:
        types = (selector.type,) if isinstance(selector.type, str) else tuple(selector.type)
        known = _known_class_names()
        for t in types:
            if t.lower() not in FAMILIES and t not in known:
                raise ComposerError(
                    f"unknown module type '{t}'; use a family ({', '.join(FAMILIES)}) or a torch.nn class "
                    "name, or select by name", source=source, field=f"{field}.type",
                    suggestions=closest(t, list(FAMILIES) + known))
    index = selector.index
    if isinstance(index, int):
        index = (index, index)
    nth = selector.nth
    if isinstance(nth, int):
        nth = (nth, nth)
    return CompiledSelector(
        position=selector.position,
        types=tuple(types), name=selector.name, name_glob=selector.name_glob,
        name_regex=compile_regex(selector.name_regex) if selector.name_regex else None,
        index=tuple(index) if index is not None else None, nth=tuple(nth) if nth is not None else None)
