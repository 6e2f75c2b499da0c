"""Regular expressions from presets, run by a linear-time engine (RE2), so no selector can hang.

Python's ``re`` backtracks: ``([a-z0-9.]|[a-z0-9.])*X`` takes exponential time on a long module
name. RE2 (``google-re2``) matches in time linear in the name, and refuses what cannot be matched
that way (backreferences, lookaround) when the preset is validated.
"""
from __future__ import annotations

import functools

import re2

#: longest pattern a preset may hold
MAX_PATTERN = 500


@functools.lru_cache(maxsize=256)
def compile_regex(pattern: str):
    """A compiled RE2 pattern (``fullmatch``, ``search``, ``pattern``); ``ValueError`` says what is wrong.

    Example
    -------
    >>> compile_regex(r"layer[0-9]+\\..*").fullmatch("layer1.conv") is not None
    True
    >>> compile_regex(r"(a)\\1")
    Traceback (most recent call last):
    ...
    ValueError: invalid regular expression: invalid escape sequence: \\1 (selectors use RE2: no backreferences or lookaround)
    """
    if len(pattern) > MAX_PATTERN:
        raise ValueError(f"regular expression longer than {MAX_PATTERN} characters")
    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile(pattern, options=options)
    except re2.error as err:
        text = err.args[0].decode() if err.args and isinstance(err.args[0], bytes) else str(err)
        raise ValueError(f"invalid regular expression: {text} (selectors use RE2: no backreferences or "
                         "lookaround)") from None
