"""The ``composer`` command: list, show, validate, schema, explain, demo."""
from __future__ import annotations

import json
import sys
import warnings
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
    """``key=value`` pairs; values parsed as YAML scalars (0.1, 1e-6, true, zero...)."""
    from .errors import ComposerError
    from .yamlio import parse_value

    params = {}
    for pair in pairs:
        if "=" not in pair:
            raise typer.BadParameter(f"expected key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            params[key.strip()] = parse_value(value, source=f"-p {pair}")
        except ComposerError as err:
            raise typer.BadParameter(str(err)) from None
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

    try:
        rx = re.compile(pattern) if pattern else None
    except re.error as err:
        raise typer.BadParameter(f"{pattern!r} is not a regular expression: {err}") from None
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
            table.add_row(escape(name), escape(summary(name)))   # summaries hold brackets: [low, high]
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
            for one in err.errors():
                _consoles.err.print(f"[red]error[/red] {escape(ComposerError._render(one))}")
    if failed:
        _consoles.err.print(f"{failed} of {len(files)} files invalid")
        raise typer.Exit(1)


@app.command()
def schema():
    """Print the JSON Schema of the preset format."""
    from .spec import preset_json_schema

    sys.stdout.write(json.dumps(preset_json_schema(), indent=2, sort_keys=True) + "\n")


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


def _targets_option(text: Optional[str]):
    """``--target 3`` or ``--target 3,1,4`` (one per sample)."""
    if text is None:
        return None
    try:
        values = [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise typer.BadParameter(f"a class index or a comma-separated list of them, got {text!r}") from None
    return values[0] if len(values) == 1 else values


def _output_stem(input_path: Path, method: str) -> str:
    """``<input>_<method>`` with only safe characters: a preset file contributes its stem."""
    import re

    label = Path(method).stem if method.endswith((".yaml", ".yml")) or "/" in method else method
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{input_path.stem}_{label}").strip("._") or "attribution"


@app.command("explain")
def explain_cmd(model: str = typer.Option(..., "--model", "-m",
                                          help="package.module:factory, a TorchScript file, or a torch.save(model) "
                                               "file with --trust-pickle"),
                input: Path = typer.Option(..., "--input", "-i", help=".npy, .pt or image file"),
                method: str = typer.Option(..., "--method", help="preset, method name or preset YAML file"),
                target: Optional[str] = typer.Option(None, "--target", "-t",
                                                     help="class, or one per sample: 3,1,4 (default: arg-max)"),
                out: Path = typer.Option(Path("composer-out"), "--out", "-o", help="output folder"),
                batched: bool = typer.Option(False, "--batched", help="the input already has a batch axis"),
                weights: Optional[Path] = typer.Option(None, "--weights", help="state dict for the factory's model"),
                trust_pickle: bool = typer.Option(False, "--trust-pickle",
                                                  help="allow a pickled model file (unpickling can run any code)"),
                canonizer: List[str] = typer.Option([], "--canonizer", help="zennit canonizer by name (repeatable)"),
                preset_dir: List[Path] = typer.Option([], "--preset-dir", help="folder of your presets (repeatable)"),
                batch_size: int = typer.Option(32, "--batch-size", min=1, help="samples explained at once"),
                param: List[str] = typer.Option([], "--param", "-p", help="key=value method parameter")):
    """Explain an input with a model; write the attribution (.npy) and a heatmap per sample (.png)."""
    import numpy as np
    import torch
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from .errors import ComposerError
    from .explain import explain
    from .loading import load_model
    from .registry import register_preset_dir
    from .viz import save_heatmap

    try:
        for folder in preset_dir:
            register_preset_dir(folder)
        params = _parse_params(param)
        with warnings.catch_warnings(record=True) as notes:
            warnings.simplefilter("always", FutureWarning)
            net = load_model(model, weights=weights, trust_pickle=trust_pickle)
        for note in notes:
            _consoles.err.print(f"[yellow]note:[/yellow] {escape(str(note.message))}")
        if not input.is_file():
            raise ComposerError("no such input file", source=str(input))
        x = _load_input(input)
        x = x if batched else x[None]
        targets = _targets_option(target)
        if isinstance(targets, list) and len(targets) != x.shape[0]:
            raise ComposerError(f"--target lists {len(targets)} classes for {x.shape[0]} samples")
        parts = []
        with Progress(TextColumn("explaining"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=_consoles.err,
                      disable=x.shape[0] <= batch_size) as bar:
            task = bar.add_task("explain", total=x.shape[0], rate="")
            for start in range(0, x.shape[0], batch_size):
                chunk = slice(start, start + batch_size)
                t = targets[chunk] if isinstance(targets, list) else targets
                parts.append(explain(net, x[chunk], method, target=t, canonizers=canonizer, **params))
                rate = bar.tasks[0].speed
                bar.update(task, advance=parts[-1].shape[0], rate=f"{rate:.1f} samples/s" if rate else "")
        relevance = torch.cat(parts)
    except (ComposerError, OSError, RuntimeError, ImportError) as err:
        _fail(err)
    out.mkdir(parents=True, exist_ok=True)
    stem = _output_stem(input, method)
    np.save(out / f"{stem}.npy", relevance.numpy())
    pngs = []
    try:
        for i in range(relevance.shape[0]):
            name = f"{stem}.png" if relevance.shape[0] == 1 else f"{stem}_{i}.png"
            pngs.append(save_heatmap(out / name, relevance[i], image=x[i], title=f"{method} (sample {i})"
                                     if relevance.shape[0] > 1 else method))
    except ComposerError as err:  # no matplotlib in a core install: the map is written, the picture is not
        _consoles.out.print(f"wrote {out / (stem + '.npy')}; no heatmap: {escape(str(err))}")
        return
    shown = str(pngs[0]) if len(pngs) == 1 else f"{len(pngs)} heatmaps ({pngs[0].name} ...)"
    _consoles.out.print(f"wrote {out / (stem + '.npy')} and {shown}")


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
