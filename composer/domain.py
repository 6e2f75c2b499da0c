"""The signal domain an explanation is given in: time (the method's own map), frequency or time-frequency.

A :class:`DomainSpec` is validated data, like every preset field: ``explain(..., domain=...)``
takes a name, a mapping or a :class:`DomainSpec`; a preset sets it under ``domain:`` and the
command line with ``--domain`` (:mod:`composer.frequency` does the work).

.. code-block:: yaml

    domain: {kind: time_frequency, window: halfsine, window_width: 64, window_shift: 32}
"""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ComposerError, closest

KINDS = ("time", "frequency", "time_frequency")
WINDOWS = ("rectangle", "halfsine")


class DomainSpec(BaseModel):
    """Where relevance is shown: ``kind`` and, for the short-time DFT, its windows.

    A plain string is the kind alone (``"frequency"``). Lengths are in samples; the time axis is
    the input's last axis.

    Example
    -------
    >>> DomainSpec.model_validate("frequency").kind
    'frequency'
    >>> spec = DomainSpec(kind="time_frequency", window_width=64)
    >>> spec.window, spec.shift
    ('rectangle', 64)
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)   # no "16" -> 16 or true -> 1

    kind: Literal["time", "frequency", "time_frequency"] = Field(
        description="time: the method's map as it is; frequency: relevance per DFT bin; time_frequency: "
                    "relevance per short-time DFT window and bin")
    symmetric: bool = Field(
        True, description="real signals: keep bins 0..N//2 and fold each mirrored bin's relevance onto its "
                          "twin (false: all N bins)")
    window: Literal["rectangle", "halfsine"] = Field(
        "rectangle", description="short-time DFT window: rectangle (amplitude sqrt(shift/width)) or half-sine")
    window_width: Optional[int] = Field(None, ge=1, description="short-time DFT window width in samples")
    window_shift: Optional[int] = Field(
        None, ge=1, description="hop between window starts in samples; default window_width (no overlap)")
    epsilon: float = Field(1e-6, ge=0, description="stabiliser of the virtual layer's LRP rule: "
                                                 "R_n / (x_n + epsilon * sign(x_n))")
    sample_rate: Optional[float] = Field(
        None, gt=0, description="samples per second: frequencies in Hz (default: cycles per sample)")

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema, handler):
        """In the preset schema: a kind name alone, or the mapping."""
        schema = handler.resolve_ref_schema(handler(core_schema))
        schema["description"] = "the domain maps are shown in (DFT-LRP): a kind, or a mapping with windows"
        return {"anyOf": [{"enum": list(KINDS), "type": "string"}, schema]}

    @model_validator(mode="before")
    @classmethod
    def _kind_alone(cls, value: Any):
        return {"kind": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _windows_fit_kind(self):
        if self.kind == "time_frequency":
            if self.window_width is None:
                raise ValueError("the time_frequency domain needs window_width (samples per window)")
            if self.shift > self.window_width:
                raise ValueError(f"window_shift {self.shift} > window_width {self.window_width} leaves samples "
                                 "outside every window, and their relevance would be lost")
        elif self.window_width is not None or self.window_shift is not None or "window" in self.model_fields_set:
            raise ValueError(f"window settings apply to the time_frequency domain, not {self.kind}")
        return self

    @property
    def shift(self) -> Optional[int]:
        """The hop between window starts (``window_shift``, else ``window_width``)."""
        return self.window_shift if self.window_shift is not None else self.window_width


def domain_spec(value: Any, source: str = "domain") -> DomainSpec:
    """A :class:`DomainSpec` from a kind name, a mapping or a spec; bad input raises ComposerError.

    Example
    -------
    >>> domain_spec({"kind": "time_frequency", "window": "halfsine", "window_width": 8, "window_shift": 4}).shift
    4
    >>> domain_spec("frequncy")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    composer.errors.ComposerError: domain: 'frequncy' is not a domain: ... (did you mean 'frequency' ...?)
    """
    if isinstance(value, DomainSpec):
        return value
    if isinstance(value, str) and value not in KINDS:
        raise ComposerError(f"{value!r} is not a domain: time, frequency or time_frequency", source=source,
                            suggestions=closest(value, KINDS))
    if not isinstance(value, (str, dict)):
        raise ComposerError(f"a domain is a name or a mapping, not {type(value).__name__}", source=source)
    try:
        return DomainSpec.model_validate(value)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or None
        if first["type"] == "extra_forbidden":
            raise ComposerError(f"unknown key; keys: {', '.join(DomainSpec.model_fields)}", source=source,
                                field=key, suggestions=closest(str(key), DomainSpec.model_fields)) from None
        raise ComposerError(first["msg"].removeprefix("Value error, "), source=source, field=key) from None
