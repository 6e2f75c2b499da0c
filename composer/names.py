"""SignXAI method names, read with the grammar the presets declare (no tables here).

::

    method    := base modifier*
    base      := preset-name | prefix "_" body (suffix | bounds)*   # each suffix and bound at most once
    number    := ["neg_"] digits ["_" digits]        # 0_25 = 0.25, neg_0_5 = -0.5, 100 = 100

The words come from data: a preset's ``grammar`` declares it as a *prefix* (``lrpsign``: the first
layer's rule, with the ``suffixes`` and named ``bounds`` it accepts) or as a *body*
(``epsilon_{epsilon}``: every other layer's rule); ``grammar/modifiers.yaml`` declares the
modifier suffixes (``x_sign_mu_{mu}``). ``{param}`` is a number in the name, bound to the
preset's parameter of that name; left out, the preset default (or a keyword argument) applies.
One matcher reads every template; :func:`list_methods` and the docs' method table are generated
from the same data.
"""
from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from pydantic import BaseModel, ConfigDict, Field

from . import registry
from .catalog import versions
from .errors import ComposerError, closest
from .resolve import DEFAULT_ATTRIBUTOR_FROM, load_preset
from .spec import validate_document
from .yamlio import read_yaml

_DIGITS = re.compile(r"^\d+$")
MAX_NAME = 200


# --------------------------------------------------------------------------- templates
def _number(tokens: List[str], i: int) -> Optional[Tuple[float, int]]:
    """A SignXAI number at ``tokens[i:]``: (value, next index), or None."""
    sign = 1.0
    if i < len(tokens) and tokens[i] == "neg" and i + 1 < len(tokens) and _DIGITS.match(tokens[i + 1]):
        sign, i = -1.0, i + 1
    if i >= len(tokens) or not _DIGITS.match(tokens[i]):
        return None
    if i + 1 < len(tokens) and _DIGITS.match(tokens[i + 1]):
        return sign * float(f"{tokens[i]}.{tokens[i + 1]}"), i + 2
    return sign * float(tokens[i]), i + 1


def number_text(value: float) -> str:
    """A number as a method name writes it.

    Example
    -------
    >>> number_text(0.25), number_text(-0.5), number_text(100.0)
    ('0_25', 'neg_0_5', '100')
    """
    return ("neg_" if value < 0 else "") + f"{abs(value):g}".replace(".", "_")


@dataclass(frozen=True)
class Template:
    """Words and ``{param}`` slots joined by ``_``: ``epsilon_{stdfactor}_std_x``."""

    text: str

    @property
    def parts(self) -> Tuple[str, ...]:
        return tuple(self.text.split("_"))

    @property
    def params(self) -> List[str]:
        return [p[1:-1] for p in self.parts if p.startswith("{")]

    def matches(self, tokens: List[str], i: int = 0) -> Iterator[Tuple[int, Dict[str, float]]]:
        """Every way the template matches ``tokens`` from ``i``: (end, numbers read); a slot may be empty."""
        def walk(k: int, j: int, found: Dict[str, float]):
            if k == len(self.parts):
                yield j, dict(found)
                return
            part = self.parts[k]
            if part.startswith("{"):
                number = _number(tokens, j)
                if number is not None:
                    yield from walk(k + 1, number[1], {**found, part[1:-1]: number[0]})
                yield from walk(k + 1, j, found)
            elif j < len(tokens) and tokens[j] == part:
                yield from walk(k + 1, j + 1, found)
        yield from walk(0, i, {})

    def render(self, values: Dict[str, Any]) -> str:
        """The template with its numbers filled in (a slot without a value is left out)."""
        words = []
        for part in self.parts:
            if part.startswith("{"):
                value = values.get(part[1:-1])
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    words.append(number_text(float(value)))
            else:
                words.append(part)
        return "_".join(words)

    def shown(self) -> str:
        return "_".join(f"<{p[1:-1]}>" if p.startswith("{") else p for p in self.parts)


# --------------------------------------------------------------------------- the grammar (from data)
class _ModifierEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    template: str
    modifier: str
    defaults: Dict[str, float] = Field(default_factory=dict)


class _ModifierFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    modifiers: List[_ModifierEntry]
    examples: List[str] = Field(default_factory=list)


@dataclass(frozen=True)
class Prefix:
    word: str
    preset: str
    #: what may follow the body, each at most once: suffix templates (values None) and named bounds (their values)
    pieces: Tuple[Tuple[Template, Optional[Dict[str, float]]], ...]
    examples: Tuple[Dict[str, float], ...]


@dataclass(frozen=True)
class Body:
    template: Template
    preset: str
    defaults: Dict[str, Any]
    examples: Tuple[Dict[str, float], ...]
    sources: Tuple[str, ...]


@dataclass(frozen=True)
class Grammar:
    """Everything a method name may contain, as the presets and ``grammar/modifiers.yaml`` declare it."""

    prefixes: Dict[str, Prefix]
    bodies: Tuple[Body, ...]
    modifiers: Tuple[Tuple[Template, Tuple[str, Dict[str, float]]], ...]   # (template, (modifier, defaults))
    modifier_examples: Tuple[str, ...]
    methods: Tuple[str, ...]   # presets that are methods of their own (not building blocks)
    attributed: Tuple[str, ...]   # of those, the ones that declare an attributor (not LRP's default)


def grammar() -> Grammar:
    """The grammar of the registered presets (rebuilt when a preset folder is registered).

    Example
    -------
    >>> sorted(grammar().prefixes)
    ['flatlrp', 'lrp', 'lrpsign', 'lrpz', 'w2lrp', 'zblrp']
    >>> [b.template.text for b in grammar().bodies if b.preset == "lrp_epsilon_std_x"]
    ['epsilon_{stdfactor}_std_x']
    """
    return _grammar(versions(registry.PRESETS))   # the grammar is read from the presets only


@functools.lru_cache(maxsize=1)
def _grammar(generation: Tuple[int, ...]) -> Grammar:
    prefixes: Dict[str, Prefix] = {}
    bodies: List[Body] = []
    methods, attributed = [], []
    lrp_default = load_preset(DEFAULT_ATTRIBUTOR_FROM).source
    for name in registry.list_presets(include_abstract=True):
        resolved = load_preset(name)
        if not resolved.abstract:
            methods.append(name)
            if resolved.attributor is not None and resolved.attributor[1] != lrp_default:
                attributed.append(name)
        spec = resolved.preset.grammar
        if spec is None:
            continue
        templates = [Template(spec.body)] if spec.body else [Template(t) for t in spec.suffixes]
        uses = [(f"name template '{t.text}' uses", t.params, "grammar") for t in templates] + [
            (f"bounds '{bound}' set", list(values), "grammar.bounds") for bound, values in spec.bounds.items()]
        for what, names, fld in uses:
            unknown = [p for p in names if p not in resolved.params]
            if unknown:
                raise ComposerError(f"{what} {', '.join(unknown)}, which the preset does not declare (parameters: "
                                    f"{', '.join(resolved.params) or 'none'})", source=resolved.source, field=fld)
        if spec.prefix:
            pieces = [(t, None) for t in templates] + [(Template(b), dict(v)) for b, v in spec.bounds.items()]
            prefixes[spec.prefix] = Prefix(spec.prefix, name, tuple(pieces), tuple(spec.examples))
        else:
            bodies.append(Body(templates[0], name, dict(resolved.params), tuple(spec.examples), resolved.sources))
    doc = read_yaml(registry.GRAMMAR_DIR / "modifiers.yaml")
    data = validate_document(_ModifierFile, doc.data, source=str(registry.GRAMMAR_DIR / "modifiers.yaml"), doc=doc)
    modifiers = tuple((Template(m.template), (m.modifier, dict(m.defaults))) for m in data.modifiers)
    # longest templates first, so a body that reads more of the name is tried first
    bodies.sort(key=lambda b: -len(b.template.parts))
    return Grammar(prefixes, tuple(bodies), modifiers, tuple(data.examples), tuple(methods), tuple(attributed))


def _cover(tokens: List[str], i: int, pieces: tuple, once: bool = False) -> Iterator[tuple]:
    """Every way to read ``tokens[i:]`` to the end as a run of ``pieces`` (``(template, payload)`` pairs,
    each at most once if ``once``): a tuple of ``(payload, template, numbers read)`` per way."""
    if i == len(tokens):
        yield ()
    for k, (template, payload) in enumerate(pieces):
        for end, numbers in template.matches(tokens, i):
            if end > i:
                for rest in _cover(tokens, end, pieces[:k] + pieces[k + 1:] if once else pieces, once):
                    yield ((payload, template, numbers),) + rest


# --------------------------------------------------------------------------- parsing
@dataclass(frozen=True)
class ParsedMethod:
    """A method name as data: the presets it combines, their parameters, and the modifiers."""

    name: str
    extends: Tuple[str, ...]
    params: Dict[str, Any] = field(default_factory=dict)
    modifiers: Tuple[Tuple[str, Dict[str, Any]], ...] = ()
    free_params: Dict[str, Any] = field(default_factory=dict)
    summary: str = ""

    def mapping(self) -> Dict[str, Any]:
        """The preset mapping this name stands for (what :func:`composer.compose` compiles)."""
        out: Dict[str, Any] = {"name": self.name, "summary": self.summary or f"method {self.name}",
                               "extends": list(self.extends)}
        if self.free_params:
            out["params"] = dict(self.free_params)
        if self.modifiers:
            out["modifiers"] = [{"name": n, "with": dict(w)} for n, w in self.modifiers]
        return out


def _error(name: str, why: str) -> ComposerError:
    return ComposerError(f"cannot parse method name '{name}': {why}", suggestions=closest(name, list_methods()))


def _modifiers(tokens: List[str], g: Grammar):
    """(modifiers, free parameters) for a run of modifier suffixes, or None."""
    run = next(_cover(tokens, 0, g.modifiers), None)
    if run is None:
        return None
    modifiers, free = [], {}
    for (modifier, defaults), template, numbers in run:
        left = {p: defaults.get(p, 0.0) for p in template.params if p not in numbers}   # left out of the name:
        free.update(left)
        modifiers.append((modifier, {**numbers, **{p: f"${p}" for p in left}}))   # the method's parameters
    return tuple(modifiers), free


def _lrp(name: str, tokens: List[str], g: Grammar) -> Tuple[Tuple[str, ...], Dict[str, Any], str]:
    """(extends, parameters, summary) of ``prefix_body[suffixes][bounds]``; a ComposerError says what is wrong."""
    prefix = g.prefixes.get(tokens[0]) if tokens else None
    if prefix is None:
        raise _error(name, "not a preset, and not an LRP name (prefixes: " + ", ".join(sorted(g.prefixes)) + ")")
    leftovers = []
    for body in g.bodies:
        for end, params in body.template.matches(tokens, 1):
            if end == 1:
                continue
            rest = _tail(tokens, end, prefix)
            if rest is None:
                leftovers.append("_".join(tokens[end:]))
                continue
            extends = (() if _is_source(prefix.preset, body) else (prefix.preset,)) + (body.preset,)
            return extends, {**params, **rest}, f"{prefix.word} prefix, body {body.template.text}"
    if leftovers:
        left = min(leftovers, key=len)
        owner = next((p.word for p in g.prefixes.values() if _tail(left.split("_"), 0, p) is not None), None)
        raise _error(name, f"'{left}' needs the {owner} prefix" if owner else f"unexpected '{left}'")
    shown = ", ".join(b.template.shown() for b in g.bodies)
    raise _error(name, f"unknown LRP body '{'_'.join(tokens[1:])}' (bodies: {shown})")


def _is_source(preset: str, body: Body) -> bool:
    """Whether ``preset`` is already part of the body (``lrp`` adds nothing to a body that extends lrp_base)."""
    return any(Path(s).stem == preset for s in body.sources)


def _tail(tokens: List[str], i: int, prefix: Prefix) -> Optional[Dict[str, Any]]:
    """The parameters of the prefix's suffixes and bounds at ``tokens[i:]`` (to the end), or None."""
    run = next(_cover(tokens, i, prefix.pieces, once=True), None)
    return None if run is None else {k: v for values, _, numbers in run for k, v in {**(values or {}), **numbers}.items()}


def parse_method(name: str) -> ParsedMethod:
    """Parse a SignXAI method name into presets, parameters and modifiers.

    Example
    -------
    >>> m = parse_method("lrpsign_epsilon_0_25_std_x_mu_neg_0_5")
    >>> m.extends, m.params
    (('lrpsign', 'lrp_epsilon_std_x'), {'stdfactor': 0.25, 'mu': -0.5})
    >>> parse_method("gradient_x_sign_mu_0_5").modifiers
    (('x_sign', {'mu': 0.5}),)
    """
    if not isinstance(name, str) or not name or len(name) > MAX_NAME:
        raise ComposerError(f"a method name is a non-empty string of at most {MAX_NAME} characters, got {name!r}")
    tokens = name.split("_")
    if any(t == "" for t in tokens):
        raise _error(name, "empty part between underscores")
    g = grammar()
    first_error: Optional[ComposerError] = None
    for cut in [i for i, t in enumerate(tokens) if t == "x" and i > 0] + [len(tokens)]:
        base, tail = tokens[:cut], tokens[cut:]
        found = _modifiers(tail, g)
        if found is None:
            if registry.has_preset("_".join(base)) and first_error is None:
                first_error = _error(name, f"unknown modifier at '{'_'.join(tail)}' (modifiers: "
                                     + ", ".join(t.shown() for t, _ in g.modifiers) + ")")
            continue
        modifiers, free = found
        base_name = "_".join(base)
        if registry.has_preset(base_name):
            if load_preset(base_name).abstract:
                raise _error(name, f"'{base_name}' is a building block, not a method")
            return ParsedMethod(name, (base_name,), {}, modifiers, free)
        try:
            extends, params, summary = _lrp(name, base, g)
        except ComposerError as err:
            first_error = first_error or err
            continue
        return ParsedMethod(name, extends, params, modifiers, free, summary)
    raise first_error or _error(name, "no method before the modifiers")


# --------------------------------------------------------------------------- listing
def list_methods(pattern: Optional[str] = None) -> List[str]:
    """Every preset plus examples of every family the grammar makes, sorted; generated from the grammar.

    ``pattern`` (a regular expression, searched) filters the list. Any number may replace the
    numbers shown (``lrp_epsilon_0_1`` stands for ``lrp_epsilon_<epsilon>``).

    Example
    -------
    >>> "lrpsign_epsilon_0_25_std_x_mu_0_5" in list_methods()
    True
    >>> list_methods("^grad_cam")[:2]
    ['grad_cam', 'grad_cam_timeseries']
    """
    g = grammar()
    names = set(g.methods)
    body_names = [body.template.render(values) for body in g.bodies
                  for values in [body.defaults] + [{**body.defaults, **e} for e in body.examples]]
    for prefix in g.prefixes.values():
        for text in body_names:
            names.add(f"{prefix.word}_{text}")
            names.update(f"{prefix.word}_{text}_{template.render(example)}" for template, _ in prefix.pieces
                         for example in prefix.examples or [{}])
    lrp_examples = [f"lrp_{text}" for text in body_names] if "lrp" in g.prefixes else []
    for base, suffix in itertools.product(list(g.attributed) + lrp_examples, g.modifier_examples):
        names.add(f"{base}_{suffix}")
    rx = re.compile(pattern or "")
    return [n for n in sorted(names) if rx.search(n)]


def method_table() -> str:
    """The grammar as a Markdown table (prefixes, bodies, suffixes, bounds, modifiers), for the docs.

    Example
    -------
    >>> "| body | `epsilon_<epsilon>` | `lrp_epsilon` |" in method_table()
    True
    """
    g = grammar()
    rows = ["| part | written | preset / modifier |", "|---|---|---|"]
    for word, prefix in sorted(g.prefixes.items()):
        rows.append(f"| prefix | `{word}` | `{prefix.preset}` |")
        for template, values in prefix.pieces:
            rows.append(f"| suffix after the body ({word} only) | `{template.shown()}` | `{prefix.preset}` |"
                        if values is None else f"| bounds ({word} only) | `{template.text}` | "
                        + ", ".join(f"{k} = {v:g}" for k, v in values.items()) + " |")
    for body in sorted(g.bodies, key=lambda b: b.template.text):
        rows.append(f"| body | `{body.template.shown()}` | `{body.preset}` |")
    for template, (modifier, _) in g.modifiers:
        rows.append(f"| modifier | `_{template.shown()}` | `{modifier}` |")
    return "\n".join(rows)
