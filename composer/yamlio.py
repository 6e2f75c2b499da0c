"""Reading preset and rule-spec YAML safely: safe tags only, bounded size, line numbers kept.

A preset is data a stranger may have written. Reading one must never construct Python objects,
never expand a "billion laughs" of aliases and never read a huge file. Every failure becomes a
:class:`~composer.errors.ComposerError` naming the file and, where known, the line.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, Tuple, Union

import yaml

from .errors import ComposerError

#: largest preset / rule-spec file read, in bytes
MAX_FILE_BYTES = 256 * 1024
#: largest number of YAML nodes after alias expansion
MAX_NODES = 20_000
#: deepest nesting of YAML collections
MAX_DEPTH = 64

Path_ = Tuple[Union[str, int], ...]

#: longest integer literal read (Python refuses to parse more than 4300 digits, with a raw ValueError)
MAX_INT_DIGITS = 400


class _Loader(yaml.SafeLoader):
    """The safe loader, reading ``1e-6`` as a float (YAML 1.2; PyYAML's YAML 1.1 resolver wants ``1.0e-6``)."""


_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


class _Document:
    """Parsed YAML data plus the line of every field path (1-based)."""

    def __init__(self, data: Any, lines: Dict[Path_, int], source: str):
        self.data = data
        self.lines = lines
        self.source = source

    def line_of(self, path) -> int | None:
        """The line of the deepest prefix of ``path`` that the document has."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)


def _walk(node, path, lines, budget, depth):
    budget[0] += 1
    if budget[0] > MAX_NODES:
        raise ComposerError(f"YAML expands to more than {MAX_NODES} nodes (alias bomb or oversized preset)")
    if depth > MAX_DEPTH:
        raise ComposerError(f"YAML nests deeper than {MAX_DEPTH} levels")
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:int" and len(node.value) > MAX_INT_DIGITS:
        raise ComposerError(f"an integer of {len(node.value)} digits; numbers here have at most {MAX_INT_DIGITS}",
                            line=node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: Dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.start_mark)
            line = key_node.start_mark.line + 1
            if key in seen and key != "<<":
                where = ".".join(str(p) for p in path) or "the top level"
                raise ComposerError(f"duplicate key '{key}' in {where} (first on line {seen[key]}); "
                                    "YAML would silently keep only the last one", line=line)
            seen[key] = line
            _walk(value_node, path + (key,), lines, budget, depth + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, path + (i,), lines, budget, depth + 1)


def parse_yaml(text: str, source: str = "<string>") -> _Document:
    """Parse YAML text with the safe loader, bounded in size, nodes and depth.

    Example
    -------
    >>> doc = parse_yaml("name: x\\nparams: {epsilon: 0.1, stabilizer: 1e-6}\\n")
    >>> doc.data["params"], doc.line_of(("params", "epsilon"))
    ({'epsilon': 0.1, 'stabilizer': 1e-06}, 2)
    """
    if len(text.encode("utf-8", "replace")) > MAX_FILE_BYTES:
        raise ComposerError(f"file is larger than {MAX_FILE_BYTES} bytes", source=source)
    loader = None
    try:
        loader = _Loader(text)  # the reader rejects non-printable characters already here
        node = loader.get_single_node()
        if node is None:
            raise ComposerError("the file is empty", source=source)
        lines: Dict[Path_, int] = {}
        _walk(node, (), lines, [0], 0)
        data = loader.construct_document(node)
    except ComposerError as err:
        raise ComposerError(err.message, source=source, line=err.line) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ComposerError(f"malformed YAML: {err.problem or err}", source=source, line=line) from None
    except yaml.YAMLError as err:
        raise ComposerError(f"malformed YAML: {err}", source=source) from None
    except ValueError as err:  # e.g. a number the constructor cannot convert
        raise ComposerError(f"unreadable value: {err}", source=source) from None
    except RecursionError:
        raise ComposerError(f"YAML nests deeper than {MAX_DEPTH} levels", source=source) from None
    finally:
        if loader is not None:
            loader.dispose()
    return _Document(data, lines, source)


def read_yaml(path: Union[str, Path]) -> _Document:
    """Read and parse a YAML file with :func:`parse_yaml`'s bounds.

    Example
    -------
    >>> from composer.registry import preset_path
    >>> read_yaml(preset_path("lrp_epsilon")).data["name"]
    'lrp_epsilon'
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise ComposerError(f"cannot read file: {err.strerror}", source=str(path)) from None
    if size > MAX_FILE_BYTES:
        raise ComposerError(f"file is larger than {MAX_FILE_BYTES} bytes", source=str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ComposerError(f"cannot read file: {err}", source=str(path)) from None
    return parse_yaml(text, source=str(path))


def parse_value(text: str, source: str = "<command line>"):
    """One YAML value (a ``-p key=value`` override): ``1e-6`` a float, ``true`` a boolean, ``[1, 2]`` a list.

    Example
    -------
    >>> parse_value("1e-6"), parse_value("zero"), parse_value("[-1, 2.5]")
    (1e-06, 'zero', [-1, 2.5])
    """
    return parse_yaml(text, source).data if text.strip() else ""
