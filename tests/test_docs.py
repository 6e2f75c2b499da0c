"""The documentation builds with mkdocs --strict; generated pages cover every rule and public function."""
import subprocess
import sys
from pathlib import Path

import composer

ROOT = Path(__file__).resolve().parents[1]


def test_mkdocs_build_strict(tmp_path):
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    rules = (tmp_path / "site" / "rules" / "index.html").read_text()
    for name in composer.list_rules():
        assert f"<code>{name}</code>" in rules, name
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    for name in ("composer.explain", "composer.compose", "composer.analyzers.GradientAnalyzer"):
        assert name in api


def test_every_public_function_has_a_docstring_with_an_example():
    import inspect

    from composer import analyzers

    missing = []
    for name in composer.__all__:
        obj = getattr(composer, name)
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and ">>>" not in (inspect.getdoc(obj) or ""):
            if name not in ("ComposerWarning",):
                missing.append(name)
    assert not missing, missing
    assert ">>>" in inspect.getdoc(analyzers)
