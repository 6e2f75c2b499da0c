"""The ``composer`` command: list, show, validate, schema, explain, demo."""
from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .extras import optional_import

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Declarative LRP: presets (YAML) compiled to zennit composites.")



class _Consoles:
    """Consoles made on first use, wide when not writing to a terminal (tests, pipes)."""

    @property
    def out(self) -> Console:
        return Console(width=None if sys.stdout.isatty() else 160)

    @property
    def err(self) -> Console:
        return Console(stderr=True, width=None if sys.stderr.isatty() else 160)


_consoles = _Consoles()


def _parse_params(pairs: List[str]) -> dict:
    """``key=value`` pairs; values parsed as YAML scalars (0.1, true, zero...)."""
    import yaml

    params = {}
    for pair in pairs:
        if "=" not in pair:
            raise typer.BadParameter(f"expected key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        params[key.strip()] = yaml.safe_load(value) if value else ""
    return params


def _fail(err: Exception) -> None:
    _consoles.err.print(f"[red]error:[/red] {escape(str(err))}")  # messages may hold brackets: [cli]
    raise typer.Exit(1)


@app.command("list")
def list_cmd(pattern: Optional[str] = typer.Argument(None, help="regular expression to filter names"),
             kind: str = typer.Option("presets", "--kind", "-k", help="presets | methods | rules")):
    """List presets (with summaries), method names of the grammar, or rules."""
    import re

    from .compiler import load_preset
    from .names import list_methods
    from .registry import get_rule, list_presets, list_rules

    rx = re.compile(pattern) if pattern else None
    if kind == "methods":
        for name in list_methods(pattern):
            _consoles.out.print(name)
        return
    table = Table(show_header=True, header_style="bold")
    table.add_column("name")
    table.add_column("summary")
    if kind == "rules":
        names, summary = list_rules(), lambda n: get_rule(n).spec.summary
    elif kind == "presets":
        names, summary = list_presets(), lambda n: load_preset(n).preset.summary
    else:
        raise typer.BadParameter("kind is presets, methods or rules")
    for name in names:
        if rx is None or rx.search(name):
            table.add_row(name, summary(name))
    _consoles.out.print(table)


@app.command()
def show(name: str = typer.Argument(..., help="preset, method name or YAML file"),
         param: List[str] = typer.Option([], "--param", "-p", help="key=value parameter override")):
    """Show a resolved preset: parameters, bindings in order (with where each came from), attributor."""
    from .compiler import compile_preset
    from .errors import ComposerError

    try:
        plan = compile_preset(name, **_parse_params(param))
    except ComposerError as err:
        _fail(err)
    _consoles.out.print(f"[bold]{plan.name}[/bold]  {plan.preset.preset.summary}")
    _consoles.out.print(f"from: {' <- '.join(plan.preset.sources)}")
    _consoles.out.print(f"parameters: {json.dumps(plan.params, default=str)}")
    if plan.canonizers:
        _consoles.out.print(f"canonizers: {', '.join(map(str, plan.canonizers))}")
    attributor, kwargs = plan.attributor
    _consoles.out.print(f"attributor: {attributor} {json.dumps(kwargs, default=str)}")
    if plan.modifiers:
        _consoles.out.print("modifiers: " + " -> ".join(f"{n}{json.dumps(k) if k else ''}" for n, k in plan.modifiers))
    table = Table("#", "select", "rule", "optional", "from", show_header=True, header_style="bold")
    for i, b in enumerate(plan.bindings):
        sel = b.selector
        text = ", ".join(f"{k}={v}" for k, v in (("position", sel.position), ("type", "|".join(sel.types) or None),
                                                  ("name", sel.name), ("glob", sel.name_glob),
                                                  ("regex", sel.name_regex.pattern if sel.name_regex else None),
                                                  ("index", sel.index)) if v)
        table.add_row(str(i), text, b.describe(), "yes" if b.optional else "", f"{Path(b.source).name} {b.field}")
    _consoles.out.print(table)


@app.command()
def validate(files: List[Path] = typer.Argument(..., help="preset YAML files")):
    """Validate preset files; print every error with file, line and field; exit 1 on any."""
    from .compiler import compile_preset
    from .errors import ComposerError

    failed = 0
    for path in files:
        try:
            plan = compile_preset(str(path))
            _consoles.out.print(f"[green]ok[/green] {path} ({len(plan.bindings)} bindings)")
        except ComposerError as err:
            failed += 1
            _consoles.err.print(f"[red]error[/red] {err}")
    if failed:
        _consoles.err.print(f"{failed} of {len(files)} files invalid")
        raise typer.Exit(1)


@app.command()
def schema():
    """Print the JSON Schema of the preset format."""
    from .spec import preset_json_schema

    sys.stdout.write(json.dumps(preset_json_schema(), indent=2, sort_keys=True) + "\n")


def _load_model(spec: str):
    import torch

    if ":" in spec and not Path(spec).exists():
        module_name, factory = spec.split(":", 1)
        sys.path.insert(0, str(Path.cwd()))
        obj = getattr(importlib.import_module(module_name), factory)
        model = obj() if callable(obj) and not isinstance(obj, torch.nn.Module) else obj
    else:
        from .torchscript import to_eager

        model = to_eager(torch.jit.load(spec, map_location="cpu"))
    return model.eval()


def _load_input(path: Path):
    import numpy as np
    import torch

    suffix = path.suffix.lower()
    if suffix == ".npy":
        x = torch.from_numpy(np.load(path, allow_pickle=False)).float()
    elif suffix in (".pt", ".pth"):
        x = torch.load(path, map_location="cpu", weights_only=True).float()
    elif suffix in (".png", ".jpg", ".jpeg", ".bmp"):
        image = optional_import("PIL.Image", "reading an image input")
        img = np.asarray(image.open(path).convert("RGB"), dtype=np.float32) / 255.0
        x = torch.from_numpy(img).permute(2, 0, 1)
    else:
        raise typer.BadParameter(f"input must be .npy, .pt or an image, got {path.name}")
    return x


@app.command("explain")
def explain_cmd(model: str = typer.Option(..., "--model", "-m", help="TorchScript file or package.module:factory"),
                input: Path = typer.Option(..., "--input", "-i", help=".npy, .pt or image file"),
                method: str = typer.Option(..., "--method", help="preset or method name"),
                target: Optional[int] = typer.Option(None, "--target", "-t", help="class (default: arg-max)"),
                out: Path = typer.Option(Path("composer-out"), "--out", "-o", help="output folder"),
                batched: bool = typer.Option(False, "--batched", help="the input already has a batch axis"),
                param: List[str] = typer.Option([], "--param", "-p", help="key=value method parameter")):
    """Explain an input with a model; write the attribution (.npy) and a heatmap (.png)."""
    import numpy as np

    from .errors import ComposerError
    from .explain import explain
    from .viz import save_heatmap

    try:
        net = _load_model(model)
        x = _load_input(input)
        x = x if batched else x[None]
        relevance = explain(net, x, method, target=target, **_parse_params(param))
    except (ComposerError, OSError, RuntimeError, ImportError, AttributeError) as err:
        _fail(err)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{input.stem}_{method}"
    np.save(out / f"{stem}.npy", relevance.numpy())
    try:
        png = save_heatmap(out / f"{stem}.png", relevance[0], image=x[0], title=method)
    except ComposerError as err:  # no matplotlib in a core install: the map is written, the picture is not
        _consoles.out.print(f"wrote {out / (stem + '.npy')}; no heatmap: {escape(str(err))}")
        return
    _consoles.out.print(f"wrote {out / (stem + '.npy')} and {png}")


@app.command()
def demo(out: Path = typer.Option(Path("composer-out"), "--out", "-o", help="output folder"),
         fast: bool = typer.Option(False, "--fast", help="short training and fewer samples (for tests)"),
         samples: int = typer.Option(6, "--samples", help="test digits to explain")):
    """Train a small CNN on scikit-learn's digits, explain test digits with many methods, write a gallery."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from .demo import run_demo
    from .errors import ComposerError

    try:
        optional_import("sklearn.datasets", "the digits demo")
        optional_import("matplotlib", "the demo's gallery")
    except ComposerError as err:
        _fail(err)

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=_consoles.err) as bar:
        tasks = {}

        def progress(stage, done, total):
            if stage not in tasks:
                tasks[stage] = bar.add_task("training CNN on digits" if stage == "train" else "explaining",
                                            total=total)
            bar.update(tasks[stage], completed=done)

        result = run_demo(out, n_samples=3 if fast else samples, epochs=2 if fast else 12, progress=progress)
    table = Table(show_header=True, header_style="bold", title=f"digits CNN, test accuracy {result['accuracy']:.1%}")
    table.add_column("method", no_wrap=True)
    for col in ("ms", "sum R", "logit"):
        table.add_column(col, justify="right", no_wrap=True)
    for row in result["rows"]:
        table.add_row(row.method, f"{1000 * row.seconds:.1f}", f"{row.relevance_sum:.3f}", f"{row.logit:.3f}")
    _consoles.out.print(table)
    _consoles.out.print(f"gallery: {result['gallery']}")


def main():  # pragma: no cover - console script
    """Entry point of the ``composer`` console script."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
