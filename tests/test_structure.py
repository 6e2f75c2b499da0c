"""The library's structure: no import cycles among its modules (function-level imports included)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "composer"


def _modules():
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name, path, modules):
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package
            for _ in range(node.level - 1):
                base = base.rsplit(".", 1)[0]
            target = base + ("." + node.module if node.module else "")
            for alias in node.names:
                full = f"{target}.{alias.name}"
                yield full if full in modules else target
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def _cycles(edges):
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    modules = _modules()
    edges = {name: {t for t in _imports(name, path, modules)
                    if t in modules and t != name and not name.startswith(t + ".")}   # a package's own parents
             for name, path in modules.items()}
    assert "composer.compiler" in edges["composer.explain"]   # the walk sees imports
    assert not _cycles(edges)
