"""The catalog: every named thing a preset may refer to, each kind in one :class:`Catalog`.

=================  ==============================================  =======================================
kind               registered by                                   lives in
=================  ==============================================  =======================================
hook               :func:`composer.rules.register_hook`             :data:`composer.rules.base.HOOKS`
rule               ``rule_specs/*.yaml``, :func:`~composer.registry.register_rule`   ``registry.RULES``
preset             ``presets/*.yaml``, :func:`~composer.registry.register_preset_dir` ``registry.PRESETS``
attributor         :func:`composer.methods.attributor`              :data:`composer.methods.ATTRIBUTORS`
modifier           :func:`composer.methods.modifier`                :data:`composer.methods.MODIFIERS`
canonizer          :func:`composer.canonizers.register_canonizer`   :data:`composer.canonizers.CANONIZERS`
=================  ==============================================  =======================================

A catalog is a read-only mapping with one way in (:meth:`Catalog.register`) and one miss message
(:meth:`Catalog.entry`: the closest known names). Each has a :attr:`~Catalog.version` that every
registration bumps; a cache keys its entries on the versions of exactly the catalogs it reads
(:func:`versions`), so registering a canonizer leaves the method grammar's cache alone, and
registering a preset folder makes every compiled plan stale.
"""
from __future__ import annotations

import itertools
import threading
from typing import Callable, Dict, Generic, Iterator, Mapping, Optional, Tuple, TypeVar

from .errors import ComposerError, closest

T = TypeVar("T")
_clock = itertools.count(1)   # one counter for all catalogs: a version is never reused


class Catalog(Mapping[str, T], Generic[T]):
    """Named entries of one kind. ``load`` (optional) fills it on first use, e.g. from YAML files.

    Example
    -------
    >>> colours = Catalog("colour")
    >>> _ = colours.register("red", "#f00")
    >>> colours["red"], "blue" in colours
    ('#f00', False)
    >>> colours.entry("rad")
    Traceback (most recent call last):
    composer.errors.ComposerError: unknown colour 'rad'; known: red (did you mean 'red'?)
    """

    def __init__(self, kind: str, load: Optional[Callable[["Catalog[T]"], None]] = None):
        self.kind = kind
        self._entries: Dict[str, T] = {}
        self._load = load
        self._ready = load is None
        self._lock = threading.RLock()   # re-entrant: a loader registers through the catalog it loads
        self.version = next(_clock)

    def _loaded(self) -> Dict[str, T]:
        if not self._ready:
            with self._lock:   # other threads wait here until the loader is done
                load, self._load = self._load, None
                if load is not None:
                    try:
                        load(self)
                    finally:
                        self._ready = True
        return self._entries

    def register(self, name: str, entry: T, *, replace: bool = True, source: str = "") -> T:
        """Add ``entry`` as ``name`` (replacing an earlier one unless ``replace=False``); returns it."""
        with self._lock:
            entries = self._loaded()
            if name in entries and not replace:
                raise ComposerError(f"{self.kind} '{name}' is already registered", source=source or None)
            entries[name] = entry
            self.version = next(_clock)
        return entry

    def unregister(self, name: str) -> None:
        """Remove ``name`` (a plugin unloading, a test cleaning up); a name not registered is ignored."""
        with self._lock:
            if self._loaded().pop(name, None) is not None:
                self.version = next(_clock)

    def entry(self, name: str, source: Optional[str] = None, field: Optional[str] = None) -> T:
        """The entry ``name``; a miss raises with the known names and the closest ones."""
        entries = self._loaded()
        if name in entries:
            return entries[name]
        known = sorted(entries)
        listing = f"; known: {', '.join(known)}" if len(known) <= 40 else ""
        raise ComposerError(f"unknown {self.kind} '{name}'{listing}", source=source, field=field,
                            suggestions=closest(str(name), known))

    def __getitem__(self, name: str) -> T:
        return self._loaded()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._loaded()))

    def __len__(self) -> int:
        return len(self._loaded())

    def __repr__(self) -> str:
        return f"Catalog({self.kind!r}, {len(self)} entries)"


def versions(*catalogs: Catalog) -> Tuple[int, ...]:
    """The versions of ``catalogs``: a cache key part that changes exactly when one of them does.

    Example
    -------
    >>> a, b = Catalog("a"), Catalog("b")
    >>> before = versions(a)
    >>> _ = b.register("x", 1)
    >>> versions(a) == before
    True
    """
    return tuple(c.version for c in catalogs if c._loaded() is not None)   # loaded first: loading bumps it
