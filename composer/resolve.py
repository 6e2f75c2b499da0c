"""Reading presets: a name, file or mapping, validated, with its ``extends`` chain folded in.

:func:`load_preset` resolves ``extends`` (cycles and depth bounded) into a :class:`ResolvedPreset`:
own bindings first, then each parent's; parameters with where each was set; canonizers, attributor,
modifiers. Files are cached by path, modification time and the registry's generation.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from . import registry
from .canonizers import CanonizerRef, CanonizerSpec
from .catalog import versions
from .errors import ComposerError
from .domain import DomainSpec
from .spec import Binding, NamedCall, Preset, validate_document
from .yamlio import read_yaml

MAX_EXTENDS_DEPTH = 16
#: the preset whose attributor a preset naming none gets (LRP: the backward pass from the target logit)
DEFAULT_ATTRIBUTOR_FROM = "lrp_base"

PresetRef = Union[str, Path, Mapping[str, Any], Preset]


# --------------------------------------------------------------------------- loading
@dataclass(frozen=True)
class ResolvedPreset:
    """A preset with its ``extends`` chain folded in: own bindings first, then each parent's."""

    preset: Preset
    source: str
    sources: Tuple[str, ...]
    params: Dict[str, Any]
    layers: Tuple[Tuple[Binding, str, str], ...]  # (binding, source file, field path)
    canonizers: Tuple["CanonizerSpec", ...]
    attributor: Optional[Tuple[NamedCall, str]]
    modifiers: Tuple[Tuple[NamedCall, str, str], ...]
    canonize: bool = True
    on_uncovered: str = "error"
    #: where each parameter's value was set: (source file, field), the preset nearest the user winning
    param_sources: Dict[str, Tuple[str, str]] = field(default_factory=dict)
    #: the domain maps are shown in (DFT-LRP), the preset nearest the user winning
    domain: Optional[DomainSpec] = None

    @property
    def name(self) -> str:
        return self.preset.name

    @property
    def abstract(self) -> bool:
        return self.preset.abstract

    @property
    def on_unmatched(self) -> str:
        return self.preset.on_unmatched


_cache_lock = threading.RLock()
_load_cache: Dict[Any, ResolvedPreset] = {}
_LOAD_CACHE_SIZE = 1024
_documents: Dict[str, Any] = {}  # source file -> parsed document (for line numbers of later errors)


def _field_path(field: str) -> Tuple[Union[str, int], ...]:
    """``layers[0].with.epsilon`` as ``('layers', 0, 'with', 'epsilon')``."""
    return tuple(key or int(index) for key, index in re.findall(r"([^.\[\]]+)|\[(-?\d+)\]", field))


def _with_line(err: ComposerError) -> ComposerError:
    """``err`` with the line of its field, when its source file was read."""
    doc = _documents.get(err.source or "")
    if err.line is not None or doc is None:
        return err
    line = doc.line_of(_field_path(err.field or ""))
    return ComposerError(err.message, source=err.source, field=err.field, line=line,
                         suggestions=err.suggestions).with_also(err.also)


def is_name(ref: PresetRef) -> bool:
    """Whether ``ref`` is a preset or method name (not a path, a mapping or a Preset)."""
    return isinstance(ref, str) and "/" not in ref and not ref.endswith((".yaml", ".yml"))


def _sibling(name: str, beside: Optional[str]) -> Optional[Path]:
    """``<name>.yaml`` next to the file that extends it, when that exists and no preset has the name."""
    if beside is None or beside.startswith("<") or registry.has_preset(name) or "/" in name:
        return None
    candidate = Path(beside).parent / f"{name}.yaml"
    return candidate if candidate.is_file() else None


def _read_ref(ref: PresetRef) -> Tuple[Preset, str, Any]:
    """(validated preset, source, cache key or None) for a name, path, mapping or Preset."""
    if isinstance(ref, Preset):
        return ref, f"<preset {ref.name}>", None
    if isinstance(ref, Mapping):
        return validate_document(Preset, dict(ref), source="<mapping>"), "<mapping>", None
    if is_name(ref):
        path = registry.preset_path(ref)
    elif isinstance(ref, (str, Path)):
        path = Path(ref)
        if not path.is_file():
            raise ComposerError("no such preset file", source=str(path))
    else:
        raise ComposerError(f"a preset is a name, a path or a mapping, not {type(ref).__name__}")
    try:
        stat = path.stat()
        key = (versions(registry.PRESETS), str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    except OSError:
        key = None
    doc = read_yaml(path)
    preset = validate_document(Preset, doc.data, source=str(path), doc=doc)
    with _cache_lock:
        if len(_documents) > 1024:
            _documents.clear()
        _documents[str(path)] = doc
    if is_name(ref) and preset.name != ref:
        raise ComposerError(f"the file defines preset '{preset.name}', but its file name says '{ref}'",
                            source=str(path), field="name")
    return preset, str(path), key


def load_preset(ref: PresetRef, _chain: Tuple[str, ...] = ()) -> ResolvedPreset:
    """Read a preset (name, path, mapping) and fold in its ``extends`` chain.

    Example
    -------
    >>> p = load_preset({"name": "mine", "extends": ["lrpz", "lrp_sequential_composite_a"]})
    >>> [b.rule for b, _, _ in p.layers][:3]
    ['z', 'epsilon', 'alpha_beta']
    """
    preset, source, key = _read_ref(ref)
    if key is not None:
        with _cache_lock:
            if key in _load_cache:
                return _load_cache[key]
    if preset.name in _chain:
        raise ComposerError("cycle in 'extends': " + " -> ".join(_chain + (preset.name,)), source=source,
                            field="extends")
    if len(_chain) >= MAX_EXTENDS_DEPTH:
        raise ComposerError(f"'extends' chain deeper than {MAX_EXTENDS_DEPTH}", source=source, field="extends")
    parents = []
    for i, parent in enumerate(preset.parents):
        try:
            parents.append(load_preset(_sibling(parent, source) or parent, _chain + (preset.name,)))
        except ComposerError as err:
            if err.source is not None:
                raise
            raise ComposerError(err.message, source=source, field=f"extends[{i}]" if isinstance(
                preset.extends, list) else "extends", suggestions=err.suggestions) from None
    # the nearest preset wins (a later parent over an earlier one, the preset itself over all)
    params = {k: v for p in parents for k, v in p.params.items()} | preset.params
    param_sources = {k: v for p in parents for k, v in p.param_sources.items()} | {
        k: (source, f"params.{k}") for k in preset.params}
    layers = tuple((b, source, f"layers[{i}]") for i, b in enumerate(preset.layers)) + tuple(
        layer for p in parents for layer in p.layers)
    own = [c if isinstance(c, str) else CanonizerRef.of(c.name, c.with_) for c in preset.canonizers]
    canonizers = tuple(dict.fromkeys([c for p in parents for c in p.canonizers] + own))
    attributor = (preset.attributor, source) if preset.attributor else next(
        (p.attributor for p in parents if p.attributor), None)
    modifiers = tuple(m for p in parents for m in p.modifiers) + tuple(
        (m, source, f"modifiers[{i}]") for i, m in enumerate(preset.modifiers))
    sources = (source,) + tuple(s for p in parents for s in p.sources)
    canonize = next((v for v in [preset.canonize] + [p.canonize for p in parents] if v is not None), True)
    on_uncovered = preset.on_uncovered or next((p.on_uncovered for p in parents), "error")
    domain = preset.domain or next((p.domain for p in parents if p.domain is not None), None)
    resolved = ResolvedPreset(preset, source, sources, params, layers, canonizers, attributor, modifiers,
                              canonize, on_uncovered, param_sources, domain)
    if key is not None:
        with _cache_lock:
            if len(_load_cache) >= _LOAD_CACHE_SIZE:
                _load_cache.clear()
            _load_cache[key] = resolved
    return resolved
