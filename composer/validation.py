"""The one validator: pydantic models for documents and parameters, and one conversion of pydantic's
errors into :class:`~composer.errors.ComposerError` (file, line, field path, closest valid names).

* Documents (presets, rule specs) are the pydantic models of :mod:`composer.spec`.
* A rule's parameters get a model generated from its :class:`~composer.spec.ParamSpec` s
  (:func:`params_model`); an attributor's, modifier's or canonizer's from its signature
  (:func:`signature_model`: type hints, ``Annotated[..., Field(ge=...)]`` bounds, defaults).

Every error, whatever produced it, is converted by :func:`_one_error` from pydantic's structured
location, with one table of messages (:data:`MESSAGES`).
"""
from __future__ import annotations

import functools
import inspect
import re
import typing
from typing import Annotated, Any, Callable, Dict, List, Literal, Optional, Tuple, Type, TypeVar, Union

import torch
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model,
                      model_validator)
from pydantic_core import PydanticCustomError

from .errors import ComposerError, closest

M = TypeVar("M", bound=BaseModel)

#: friendly messages by pydantic error type (``{input}`` and the error's context are filled in)
MESSAGES = {
    "bool_type": "expected a boolean, got {input!r}",
    "int_type": "expected an integer, got {input!r}",
    "float_type": "expected a number, got {input!r}",
    "string_type": "expected a string, got {input!r}",
    "finite_number": "expected a finite number, got {input!r}",
    "greater_than_equal": "{input!r} is out of range: must be >= {ge:g}",
    "greater_than": "{input!r} is out of range: must be > {gt:g}",
    "less_than_equal": "{input!r} is out of range: must be <= {le:g}",
    "less_than": "{input!r} is out of range: must be < {lt:g}",
    "literal_error": "{input!r} is not one of {choices}",
    "is_instance_of": "expected {class}, got {input_type}",
}


# --------------------------------------------------------------------------- error conversion
def _inner(annotation) -> Tuple[Optional[type], bool]:
    """The pydantic model a field holds (through List, Dict, Optional, Union), and whether it is a mapping."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    is_dict = typing.get_origin(annotation) in (dict, Dict)
    for arg in typing.get_args(annotation):
        found, _ = _inner(arg)
        if found is not None:
            return found, is_dict
    return None, is_dict


def _walk_loc(model, loc) -> Tuple[List[Union[str, int]], Optional[type]]:
    """The parts of a pydantic error location that are fields, mapping keys or list indices (pydantic's tags
    for union members and validators dropped), and the model of the mapping the location points into."""
    parts: List[Union[str, int]] = []
    current, key_next = model, False
    for part in loc:
        if isinstance(part, int) or key_next:
            parts.append(part)
            key_next = False
            continue
        fields = current.model_fields if current is not None else {}
        found = fields.get(part) or next((f for f in fields.values() if f.alias == part), None)
        if found is not None:
            parts.append(found.alias or part)
            current, key_next = _inner(found.annotation)
    return parts, current


def _loc_text(parts, prefix: str = "") -> str:
    out = prefix
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def _message(error: dict) -> Tuple[str, List[str]]:
    kind, value, ctx = error["type"], error.get("input"), dict(error.get("ctx") or {})
    if kind == "float_type" and isinstance(value, int) and not isinstance(value, bool):
        return f"a number of {len(str(value))} digits is out of range", []
    if kind == "literal_error":
        choices = re.findall(r"'((?:[^'\\]|\\.)*)'", str(ctx.get("expected", "")))
        return MESSAGES[kind].format(input=value, choices=choices), closest(str(value), choices)
    if kind in MESSAGES:
        try:
            return MESSAGES[kind].format(input=value, input_type=type(value).__name__, **ctx), []
        except (KeyError, ValueError, TypeError):
            pass
    return error["msg"].removeprefix("Value error, "), []


def _one_error(model, error: dict, source: str, prefix: str, doc, owner: Optional[str]) -> ComposerError:
    """One pydantic error as a ComposerError naming file, line and field.

    ``owner`` (``"rule 'epsilon'"``) marks a parameter mapping: unknown and missing keys are then named
    as parameters of it; otherwise (documents) as keys of the mapping they occur in.
    """
    loc = tuple(error["loc"])
    kind = error["type"]
    keyed = kind in ("extra_forbidden", "missing")
    parts, holder = _walk_loc(model, loc[:-1] if keyed else loc)
    if keyed:
        parts.append(loc[-1])
    if (error.get("ctx") or {}).get("field"):   # a check across fields names the one it blames
        parts.append(error["ctx"]["field"])
    field = _loc_text(parts, prefix)
    line = doc.line_of(parts) if doc is not None else None
    allowed = [f.alias or n for n, f in holder.model_fields.items()] if holder is not None else []
    key = str(loc[-1]) if loc else ""
    message, suggestions = _message(error)
    if kind == "extra_forbidden":
        suggestions = closest(key, allowed)
        message = (f"{owner} has no parameter '{key}' (parameters: {', '.join(allowed) or 'none'})" if owner
                   else f"unknown key '{key}'" + (f"; allowed: {', '.join(allowed)}" if allowed else ""))
    elif kind == "missing" and owner:   # named at the mapping that lacks it
        message, field = f"{owner} needs parameter '{key}'", _loc_text(parts[:-1], prefix)
    return ComposerError(message, source=source, field=field, line=line, suggestions=suggestions)


def _raise(err: ValidationError, model, source: str, prefix: str = "", doc=None, owner: Optional[str] = None):
    errors = sorted(err.errors(), key=lambda e: e["type"] != "extra_forbidden")  # unknown keys first
    found, fields = [], set()
    for error in errors:   # one per field: a union reports each member's complaint about the same value
        one = _one_error(model, error, source, prefix, doc, owner)
        if one.field not in fields:
            fields.add(one.field)
            found.append(one)
    raise found[0].with_also(found[1:]) from None


def validate_document(model: Type[M], data: Any, source: str = "<mapping>", doc=None) -> M:
    """Validate ``data`` against ``model``; errors name the file, line and field.

    Example
    -------
    >>> from composer.spec import Preset
    >>> validate_document(Preset, {"name": "p", "layers": [{"select": "all", "rule": "z"}]}).layers[0].rule
    'z'
    """
    if not isinstance(data, dict):
        raise ComposerError(f"expected a mapping at the top level, got {type(data).__name__}", source=source)
    try:
        return model.model_validate(data)
    except ValidationError as err:
        _raise(err, model, source, doc=doc)


def validate_params(model: Type[BaseModel], values: Dict[str, Any], owner: str, source: str = "<preset>",
                    field: str = "with") -> Dict[str, Any]:
    """``values`` validated against a parameter model: every default filled in, values converted.

    Example
    -------
    >>> from composer.spec import ParamSpec
    >>> model = params_model("eps", {"epsilon": ParamSpec(type="float", default=1e-7, ge=0)})
    >>> validate_params(model, {"epsilon": 1}, "rule 'eps'")
    {'epsilon': 1.0}
    >>> validate_params(model, {"epsilon": -1}, "rule 'eps'")
    Traceback (most recent call last):
    composer.errors.ComposerError: <preset>, field 'with.epsilon': -1 is out of range: must be >= 0
    """
    try:
        checked = model.model_validate(values)
    except ValidationError as err:
        _raise(err, model, source, field, owner=owner)
    return {k: getattr(checked, k) for k in type(checked).model_fields if getattr(checked, k) is not None
            or k in values}


# --------------------------------------------------------------------------- models from specs and signatures
_PARAMS = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, arbitrary_types_allowed=True, frozen=True)


def _fail(kind: str, message: str = "", **ctx):
    """Raise a pydantic error of type ``kind``: :data:`MESSAGES` words it, else ``message``."""
    raise PydanticCustomError(kind, "{message}", {"message": message, **ctx})


def _bounded(value: float, spec) -> float:
    for bound, ok in (("ge", value >= (spec.ge or 0)), ("gt", value > (spec.gt or 0)),
                      ("le", value <= (spec.le or 0)), ("lt", value < (spec.lt or 0))):
        if getattr(spec, bound) is not None and not ok:
            _fail({"ge": "greater_than_equal", "gt": "greater_than", "le": "less_than_equal",
                   "lt": "less_than"}[bound], **{bound: getattr(spec, bound)})
    return value


def _tensor(spec) -> Callable[[Any], Any]:
    """``tensor`` parameters: a finite number (bounds apply) or a (nested) list / tensor of finite values."""
    def convert(value):
        if isinstance(value, bool) or not isinstance(value, (int, float, list, torch.Tensor)):
            _fail("tensor_type", f"expected a number or a tensor, got {value!r}")
        if isinstance(value, (int, float)):
            try:
                value = float(value)
            except OverflowError:
                _fail("float_type")
            if value != value or value in (float("inf"), float("-inf")):
                _fail("finite_number")
            return _bounded(value, spec)
        if isinstance(value, list):
            try:
                value = torch.tensor(value, dtype=torch.float32)
            except (TypeError, ValueError, RuntimeError, OverflowError):
                _fail("tensor_type", f"expected a number or a (nested) list of numbers, got {value!r}")
        if not bool(torch.isfinite(value).all()):
            _fail("tensor_finite", "expected finite values, got a tensor with NaN or infinity")
        return value
    return convert


def _names(value):
    value = [value] if isinstance(value, str) else value
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        _fail("names_type", f"expected a list of names, got {value!r}")
    return list(value)


def _annotation(spec):
    """The pydantic type of one :class:`~composer.spec.ParamSpec`."""
    bounds = {k: getattr(spec, k) for k in ("ge", "gt", "le", "lt") if getattr(spec, k) is not None}
    if spec.type == "tensor":
        return Annotated[Any, BeforeValidator(_tensor(spec))]
    if spec.type == "names":
        item = Literal[tuple(spec.choices)] if spec.choices else str
        return Annotated[List[item], BeforeValidator(_names), AfterValidator(lambda v: list(dict.fromkeys(v)))]
    if spec.type == "str" and spec.choices:
        return Literal[tuple(spec.choices)]
    return Annotated[{"float": float, "int": int, "bool": bool, "str": str}[spec.type], Field(**bounds)]


def params_model(name: str, specs: Dict[str, Any], ordered: Tuple[Tuple[str, str], ...] = ()) -> Type[BaseModel]:
    """A pydantic model of a rule's parameters from its ``ParamSpec`` s; ``ordered`` pairs ``(low, high)``
    must hold ``low <= high`` elementwise.

    Example
    -------
    >>> from composer.spec import ParamSpec
    >>> model = params_model("z_box", {"low": ParamSpec(type="tensor", default=0.0),
    ...                                "high": ParamSpec(type="tensor", default=1.0)}, [("low", "high")])
    >>> validate_params(model, {"low": 2.0}, "rule 'z_box'")
    Traceback (most recent call last):
    composer.errors.ComposerError: <preset>, field 'with.low': rule 'z_box' needs low <= high (elementwise), got low=2.0, high=1.0
    """
    fields = {key: (_annotation(spec), ... if spec.required else spec.default) for key, spec in specs.items()}

    def check_order(self):
        for low, high in ordered:
            a, b = getattr(self, low), getattr(self, high)
            if a is not None and b is not None and not bool(torch.all(torch.as_tensor(a) <= torch.as_tensor(b))):
                _fail("ordered", f"rule '{name}' needs {low} <= {high} (elementwise), got {low}={_short(a)}, "
                                 f"{high}={_short(b)}", field=low)
        return self

    validators = {"check_order": model_validator(mode="after")(check_order)} if ordered else {}
    return create_model(f"{name}_params", __config__=_PARAMS, __validators__=validators, **fields)


def _short(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor of shape {tuple(value.shape)}" if value.numel() > 4 else str(value.tolist())
    return repr(value)


@functools.lru_cache(maxsize=None)
def signature_model(fn: Callable, skip: int = 0) -> Type[BaseModel]:
    """A pydantic model of ``fn``'s parameters after the first ``skip``: its type hints (bounds as
    ``Annotated[int, Field(ge=2)]``), its defaults; untyped parameters take anything.

    Example
    -------
    >>> def blur(x, sigma: Annotated[float, Field(gt=0)] = 1.0, mode: Literal["same", "valid"] = "same"): ...
    >>> validate_params(signature_model(blur, 1), {"sigma": 2}, "modifier 'blur'")
    {'sigma': 2.0, 'mode': 'same'}
    """
    hints = typing.get_type_hints(fn, include_extras=True) if not isinstance(fn, type) else {}
    fields = {}
    for p in list(inspect.signature(fn).parameters.values())[skip:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        fields[p.name] = (hints.get(p.name, Any), ... if p.default is p.empty else p.default)
    return create_model(f"{getattr(fn, '__name__', 'call')}_params", __config__=_PARAMS, **fields)
