"""The ``composer`` command: list, show, validate, schema, explain, demo, evaluate, tune, gallery."""
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
    from .frequency import requested_domain

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
    domain = requested_domain(None, plan.preset)
    if domain is not None:
        _consoles.out.print(f"domain: {escape(json.dumps(domain.model_dump(exclude_defaults=True)))}")
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


def _domain_option(kind: Optional[str], pairs: List[str]):
    """``--domain KIND`` with ``--domain-param key=value`` settings, validated; None without --domain."""
    from .domain import domain_spec

    if kind is None:
        if pairs:
            raise typer.BadParameter("--domain-param needs --domain frequency or time_frequency")
        return None
    return domain_spec({"kind": kind, **_parse_params(pairs)}, source="--domain")


def _write_domain(out: Path, stem: str, spectral, method: str) -> None:
    """The signal and relevance in the domain (``<stem>_<kind>.npz``) and a picture per sample."""
    import numpy as np

    from .errors import ComposerError
    from .viz import save_domain_figure

    data = out / f"{stem}_{spectral.kind}.npz"
    np.savez(data, signal=spectral.signal.cpu().numpy(), relevance=spectral.relevance.cpu().numpy(),
             frequencies=spectral.frequencies.cpu().numpy(), time_relevance=spectral.time_relevance.cpu().numpy(),
             **({"window_starts": spectral.window_starts.cpu().numpy()} if spectral.window_starts is not None else {}))
    n = spectral.relevance.shape[0]
    try:
        pngs = [save_domain_figure(out / (f"{stem}_{spectral.kind}" + (f"_{i}" if n > 1 else "") + ".png"), spectral,
                                   i, title=f"{method} (sample {i})" if n > 1 else method) for i in range(n)]
    except ComposerError as err:  # no matplotlib in a core install
        _consoles.out.print(f"wrote {out / (stem + '.npy')} and {data}; no pictures: {escape(str(err))}")
        return
    shown = str(pngs[0]) if n == 1 else f"{n} pictures ({pngs[0].name} ...)"
    _consoles.out.print(f"wrote {out / (stem + '.npy')}, {data} and {shown}")


def _output_stem(input_path: Path, method: str) -> str:
    """``<input>_<method>`` with only safe characters: a preset file contributes its stem."""
    import re

    label = Path(method).stem if method.endswith((".yaml", ".yml")) or "/" in method else method
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{input_path.stem}_{label}").strip("._") or "attribution"


def _explain_text_cmd(model: str, text: str, method: str, target: Optional[str], out: Path, params: dict):
    """``composer explain --model DIR --text ...``: relevance per token as .npy, .html and (with matplotlib) .png."""
    import re

    import numpy as np

    from .errors import ComposerError
    from .transformers import explain_text
    from .viz import save_token_heatmap, token_html

    tokens, relevance, target_id = explain_text(model, text, method, target=target, **params)
    out.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"text_{Path(method).stem if method.endswith(('.yaml', '.yml')) else method}")
    np.save(out / f"{stem}.npy", relevance.numpy())
    (out / f"{stem}.html").write_text(f"<p>{token_html(tokens, relevance)}</p>\n", encoding="utf-8")
    wrote = [f"{stem}.npy", f"{stem}.html"]
    try:
        save_token_heatmap(out / f"{stem}.png", tokens, relevance, title=f"{method}: relevance for target {target_id}")
        wrote.append(f"{stem}.png")
    except ComposerError as err:   # no matplotlib in a core install
        _consoles.err.print(f"[yellow]note:[/yellow] no PNG: {escape(str(err))}")
    _consoles.out.print(f"target {target_id}: wrote {', '.join(str(out / w) for w in wrote)}")


def _explain_data_cmd(net, data: Optional[str], method: str, out: Path, **options):
    """``composer explain --data``: the store, or how far an interrupted run got (rerun to resume)."""
    from .dataset.command import explain_data

    if data is None:
        raise typer.BadParameter("give --input FILE (one input) or --data PATH (a dataset)")
    try:
        store = explain_data(net, data, method, out, **options)
    except KeyboardInterrupt:
        _consoles.err.print("[yellow]interrupted:[/yellow] the chunks finished so far are stored; "
                            "rerun the same command to compute the rest")
        raise typer.Exit(130) from None
    _consoles.out.print(f"wrote {store.path}: {store.completed()} maps {tuple(store.maps.shape[1:])} of {method} "
                        f"(composer gallery {store.path})")


@app.command("explain")
def explain_cmd(model: str = typer.Option(..., "--model", "-m",
                                          help="package.module:factory, a TorchScript file, or a torch.save(model) "
                                               "file with --trust-pickle"),
                input: Optional[Path] = typer.Option(None, "--input", "-i", help=".npy, .pt or image file (or --data)"),
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
                param: List[str] = typer.Option([], "--param", "-p", help="key=value method parameter"),
                domain: Optional[str] = typer.Option(
                    None, "--domain", help="also in frequency or time_frequency (DFT-LRP; time: the map only)"),
                domain_param: List[str] = typer.Option(
                    [], "--domain-param", "-d", help="key=value domain setting: window (rectangle, halfsine), "
                                                     "window_width, window_shift, symmetric, epsilon, sample_rate"),
                data: Optional[str] = typer.Option(None, "--data", help="a whole dataset instead of --input (a .npy file "
                                                   "or a folder of images), explained into a resumable zarr store"),
                labels: Optional[str] = typer.Option(None, "--labels", help="with --data: the labels (.npy)"),
                ray: bool = typer.Option(False, "--ray", help="with --data: run on Ray (a local one, or --ray-address)"),
                ray_address: Optional[str] = typer.Option(None, "--ray-address", help="with --data: Ray cluster to join"),
                workers: Optional[int] = typer.Option(None, "--workers", min=1, help="with --ray: actors in the pool"),
                overwrite: bool = typer.Option(False, "--overwrite", help="with --data: replace a store of another job"),
                text: Optional[str] = typer.Option(None, "--text", help="text for a Hugging Face model folder "
                                                   "(--model DIR): relevance per token (.npy, .html, .png)")):
    """Explain an input with a model; write the attribution (.npy) and a heatmap per sample (.png).

    With --domain frequency or time_frequency (or a preset's domain) also the signal and relevance in
    that domain (.npz) and, per sample, the time map above its spectrum or time-frequency heatmap (.png)."""
    import numpy as np
    import torch
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from .errors import ComposerError
    from .explain import Explainer
    from .frequency import DomainExplanation, concat
    from .loading import load_model
    from .registry import register_preset_dir
    from .viz import save_heatmap

    try:
        for folder in preset_dir:
            register_preset_dir(folder)
        params = _parse_params(param)
        if text is not None:   # a Hugging Face model folder and a text: docs/transformers.md
            return _explain_text_cmd(model, text, method, target, out, params)
        space = _domain_option(domain, domain_param)
        if space is not None and (data is not None or input is None):
            raise ComposerError("--domain applies to --input; a --data store holds time-domain maps")
        with warnings.catch_warnings(record=True) as notes:
            warnings.simplefilter("always", FutureWarning)
            net = load_model(model, weights=weights, trust_pickle=trust_pickle)
        for note in notes:
            _consoles.err.print(f"[yellow]note:[/yellow] {escape(str(note.message))}")
        if data is not None or input is None:   # a whole dataset: docs/datasets.md
            return _explain_data_cmd(net, data, method, out, labels=labels, target=target, batch_size=batch_size,
                                     backend="ray" if ray or ray_address else "local", ray_address=ray_address,
                                     workers=workers, overwrite=overwrite, canonizers=canonizer, params=params)
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
                      disable=x.shape[0] <= batch_size) as bar, \
                Explainer(net, method, canonizers=canonizer, domain=space, **params) as explainer:
            task = bar.add_task("explain", total=x.shape[0], rate="")
            for start in range(0, x.shape[0], batch_size):
                chunk = slice(start, start + batch_size)
                t = targets[chunk] if isinstance(targets, list) else targets
                parts.append(explainer(x[chunk], t))
                rate = bar.tasks[0].speed
                bar.update(task, advance=x[chunk].shape[0], rate=f"{rate:.1f} samples/s" if rate else "")
        spectral = concat(parts) if isinstance(parts[0], DomainExplanation) else None
        relevance = torch.cat(parts) if spectral is None else spectral.time_relevance
    except (ComposerError, OSError, RuntimeError, ImportError) as err:
        _fail(err)
    out.mkdir(parents=True, exist_ok=True)
    stem = _output_stem(input, method)
    np.save(out / f"{stem}.npy", relevance.numpy())
    if spectral is not None:
        return _write_domain(out, stem, spectral, method)
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
                tasks[stage] = bar.add_task({"train": "training CNN on digits", "explain": "explaining",
                                             "faithfulness": "faithfulness (SRG)"}.get(stage, stage), total=total)
            bar.update(tasks[stage], completed=done)

        result = run_demo(out, n_samples=3 if fast else samples, epochs=2 if fast else 12, progress=progress,
                          faithfulness_samples=30 if fast else 100)
    table = Table(show_header=True, header_style="bold", title=f"digits CNN, test accuracy {result['accuracy']:.1%}")
    table.add_column("method", no_wrap=True)
    for col in ("ms", "sum R", "logit"):
        table.add_column(col, justify="right", no_wrap=True)
    for row in result["rows"]:
        table.add_row(row.method, f"{1000 * row.seconds:.1f}", f"{row.relevance_sum:.3f}", f"{row.logit:.3f}")
    _consoles.out.print(table)
    _consoles.out.print(f"gallery: {result['gallery']}")
    faithful = result.get("faithfulness")
    if faithful is not None:
        ranking = Table("#", "method", "SRG", "95% CI", show_header=True, header_style="bold",
                        title=f"faithfulness on {faithful.settings['samples']} other test digits (higher is better)")
        rows = {r["method"]: r for r in faithful.table() if r["metric"] == "srg"}
        for i, (name, score) in enumerate(faithful.ranked("srg"), start=1):
            ranking.add_row(str(i), name, f"{score:.3f}", f"[{rows[name]['ci_low']:.2f}, {rows[name]['ci_high']:.2f}]")
        _consoles.out.print(ranking)
        _consoles.out.print(f"faithfulness curves: {result['faithfulness_plot']}")


def _patch_option(text: str):
    """``--patch 2`` or ``--patch 2,4`` (one size per spatial axis)."""
    try:
        sizes = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise typer.BadParameter(f"a patch size or a comma-separated list of them, got {text!r}") from None
    return sizes[0] if len(sizes) == 1 else tuple(sizes)


@app.command("evaluate")
def evaluate_cmd(model: str = typer.Option(..., "--model", "-m", help="package.module:factory or TorchScript file"),
                 data: str = typer.Option(..., "--data", "-d", help=".npy, .npz (x, y), .pt, or 'digits'"),
                 method: List[str] = typer.Option(..., "--method", help="method to evaluate (repeatable)"),
                 weights: Optional[Path] = typer.Option(None, "--weights", help="state dict for the factory's model"),
                 samples: Optional[int] = typer.Option(None, "--samples", min=1, help="use this many samples"),
                 offset: int = typer.Option(0, "--offset", min=0, help="first sample used"),
                 labels: bool = typer.Option(False, "--labels", help="explain the data's labels (default: arg-max)"),
                 steps: int = typer.Option(20, "--steps", min=1, help="perturbation steps"),
                 patch: str = typer.Option("1", "--patch", help="region size: 2 or 2,2 (1 = pixel flipping)"),
                 perturb: str = typer.Option("baseline:0", "--perturb",
                                             help="baseline:VALUE|mean, blur:SIGMA, noise:SIGMA[:SEED]"),
                 output: str = typer.Option("logit", "--output", help="logit or probability"),
                 batch_size: int = typer.Option(1024, "--batch-size", min=1, help="perturbed inputs per forward"),
                 out: Path = typer.Option(Path("composer-out"), "--out", "-o", help="output folder")):
    """Rank methods by faithfulness (MoRF/LeRF region perturbation, AOPC, SRG); write CSV, JSON and a PNG."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from .errors import ComposerError
    from .evaluation import evaluate
    from .evaluation.data import load_samples
    from .loading import load_model

    try:
        net = load_model(model, weights=weights)
        x, y = load_samples(data, samples=samples, offset=offset)
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeElapsedColumn(), console=_consoles.err) as bar:
            task = bar.add_task("evaluating", total=len(method))
            named = {Path(m).stem if m.endswith((".yaml", ".yml")) else m: m for m in method}   # files by stem
            result = evaluate(net, (x, y) if y is not None else x, named,
                              target="labels" if labels else None, steps=steps, patch=_patch_option(patch),
                              perturbation=perturb, output=output, batch_size=batch_size,
                              progress=lambda name, done, total: bar.update(task, completed=done,
                                                                            description=f"evaluated {name}"))
    except (ComposerError, OSError, RuntimeError, ImportError) as err:
        _fail(err)
    out.mkdir(parents=True, exist_ok=True)
    files = [result.to_csv(out / "evaluation.csv"), result.to_json(out / "evaluation.json")]
    try:
        from .evaluation.plot import plot_curves

        files.append(plot_curves(result, out / "evaluation.png",
                                 title=f"{x.shape[0]} samples, {steps} steps, patch {patch}, {perturb}"))
    except ComposerError as err:  # no matplotlib in a core install
        _consoles.err.print(f"[yellow]note:[/yellow] no plot: {escape(str(err))}")
    table = Table("method", "SRG", "95% CI", "AOPC MoRF", "AOPC LeRF", show_header=True, header_style="bold",
                  title=f"faithfulness on {x.shape[0]} samples (best first)")
    rows = {(r["method"], r["metric"]): r for r in result.table()}
    for name, _ in result.ranked("srg"):
        srg = rows[(name, "srg")]
        table.add_row(escape(name), f"{srg['mean']:.4g}", f"[{srg['ci_low']:.3g}, {srg['ci_high']:.3g}]",
                      f"{rows[(name, 'aopc_morf')]['mean']:.4g}", f"{rows[(name, 'aopc_lerf')]['mean']:.4g}")
    _consoles.out.print(table)
    _consoles.out.print("wrote " + ", ".join(str(f) for f in files))


@app.command()
def tune(preset: str = typer.Argument(..., help="preset name or YAML file"),
         model: str = typer.Option(..., "--model", "-m", help="package.module:factory or TorchScript file"),
         data: str = typer.Option(..., "--data", "-d", help="validation samples: .npy, .npz, .pt, or 'digits'"),
         weights: Optional[Path] = typer.Option(None, "--weights", help="state dict for the factory's model"),
         metric: str = typer.Option("srg", "--metric", help="srg, aopc_morf, aopc_lerf, auc_morf or auc_lerf"),
         budget: int = typer.Option(16, "--budget", min=2, help="evaluations, the untuned preset included"),
         seed: int = typer.Option(0, "--seed", help="seed of the search"),
         samples: Optional[int] = typer.Option(None, "--samples", min=1, help="use this many samples"),
         offset: int = typer.Option(0, "--offset", min=0, help="first sample used"),
         steps: int = typer.Option(10, "--steps", min=1, help="perturbation steps"),
         patch: str = typer.Option("1", "--patch", help="region size: 2 or 2,2"),
         perturb: str = typer.Option("baseline:0", "--perturb", help="baseline:VALUE|mean, blur:SIGMA, noise:SIGMA"),
         only: List[str] = typer.Option([], "--only", help="tune only this parameter (repeatable)"),
         range_: List[str] = typer.Option([], "--range", help="search range: gamma=0.01:10[:log|linear] (repeatable)"),
         out: Optional[Path] = typer.Option(None, "--out", "-o", help="tuned preset file (default <preset>_tuned.yaml)")):
    """Search a preset's parameters (within its rules' bounds) for the best faithfulness; write a preset that
    extends it."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from .errors import ComposerError
    from .evaluation import tune as run_tune
    from .evaluation.data import load_samples
    from .loading import load_model

    ranges = {}
    for text in range_:
        name, _, spec = text.partition("=")
        parts = spec.split(":")
        try:
            ranges[name.strip()] = (float(parts[0]), float(parts[1]), *parts[2:3])
        except (ValueError, IndexError):
            raise typer.BadParameter(f"--range is NAME=LOW:HIGH[:log|linear], got {text!r}") from None
    try:
        net = load_model(model, weights=weights)
        x, _ = load_samples(data, samples=samples, offset=offset)
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeElapsedColumn(), console=_consoles.err) as bar:
            task = bar.add_task("tuning", total=budget)
            result = run_tune(net, preset, x, metric=metric, budget=budget, seed=seed, names=only or None,
                              ranges=ranges or None,
                              steps=steps, patch=_patch_option(patch), perturbation=perturb,
                              progress=lambda done, total, best: bar.update(
                                  task, completed=done, description=f"tuning (best {metric} {best:.4g})"))
    except (ComposerError, OSError, RuntimeError, ImportError) as err:
        _fail(err)
    stem = Path(preset).stem if preset.endswith((".yaml", ".yml")) else preset
    path = result.write(out or Path(f"{stem}_tuned.yaml"))
    _consoles.out.print(f"{escape(result.summary())}")
    _consoles.out.print(f"best parameters: {json.dumps(result.params)}")
    _consoles.out.print(f"wrote {path}")


@app.command()
def gallery(store: Path = typer.Argument(..., help="a store written by composer explain --data"),
            out: Optional[Path] = typer.Option(None, "--out", "-o", help="PNG file (default <store>_gallery.png)"),
            count: int = typer.Option(16, "--count", "-n", min=1, help="maps to show, spread over the store")):
    """Draw a grid of a dataset store's maps (index, class explained, predicted class) into a PNG."""
    from .dataset import open_store, store_gallery
    from .errors import ComposerError

    try:
        opened = open_store(store)
        path = store_gallery(opened, out or store.with_name(store.stem + "_gallery.png"), count=count)
    except (ComposerError, OSError, ImportError) as err:
        _fail(err)
    _consoles.out.print(f"{escape(repr(opened))}\nwrote {path}")


def main():  # pragma: no cover - console script
    """Entry point of the ``composer`` console script."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
