"""The one error type composer raises for mistakes a user can make."""
from __future__ import annotations

import difflib
from typing import Iterable, List, Optional, Sequence


class ComposerError(ValueError):
    """A preset, rule, method name, parameter or input that composer cannot accept.

    The message names the file (``source``), the field path (``field``) and, where a name was
    misspelt, the closest valid names. It subclasses :class:`ValueError`, so callers that
    already catch ``ValueError`` keep working.

    Example
    -------
    >>> from composer import compose, ComposerError
    >>> try:
    ...     compose("lrp_epsilom")
    ... except ComposerError as err:
    ...     print(err.suggestions[0])
    lrp_epsilon
    """

    def __init__(self, message: str, *, source: Optional[str] = None, field: Optional[str] = None,
                 line: Optional[int] = None, suggestions: Sequence[str] = ()):
        self.message = message
        self.source = source
        self.field = field
        self.line = line
        self.suggestions = list(suggestions)
        #: further errors found in the same pass (every schema error of a file, every bad binding)
        self.also: List["ComposerError"] = []
        super().__init__(self._render())

    def errors(self) -> List["ComposerError"]:
        """This error and every other one found with it, in file order.

        Example
        -------
        >>> from composer import compile_preset
        >>> try:
        ...     compile_preset({"name": "p", "layers": [{"select": "all", "rule": "epsilon", "with": {"epsilon": -1}},
        ...                                              {"select": "all", "rule": "gamma", "with": {"gamma": -1}}]})
        ... except ComposerError as err:
        ...     print(len(err.errors()))
        2
        """
        return [self] + list(self.also)

    def with_also(self, others: Sequence["ComposerError"]) -> "ComposerError":
        """Attach ``others``; returns self (for ``raise first.with_also(rest)``)."""
        self.also = list(others)
        if self.also and not self.message.endswith("more)"):
            self.args = (self._render() + f" (and {len(self.also)} more)",)
        return self

    def _render(self) -> str:
        where = []
        if self.source:
            where.append(str(self.source) + (f":{self.line}" if self.line else ""))
        if self.field:
            where.append(f"field '{self.field}'")
        text = (", ".join(where) + ": " if where else "") + self.message
        if self.suggestions:
            text += " (did you mean " + " or ".join(f"'{s}'" for s in self.suggestions[:3]) + "?)"
        return text


class ComposerWarning(UserWarning):
    """Something composer did that changes or approximates the result: a binding that matched no module
    (``on_unmatched: warn``), an operation without a rule (``on_uncovered: warn``), a model that could
    not be traced."""


def closest(name: str, candidates: Iterable[str], n: int = 3) -> list:
    """The candidates most similar to ``name`` (best first), for 'did you mean' hints.

    Example
    -------
    >>> closest("epsilom", ["epsilon", "gamma"])
    ['epsilon']
    """
    return difflib.get_close_matches(str(name), list(candidates), n=n, cutoff=0.6)
