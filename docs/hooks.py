"""mkdocs hook: pages generated from the code, so they cannot drift.

* ``<!-- rule-reference -->`` becomes one section per rule spec in ``rule_specs/``.
* ``<!-- api-reference -->`` becomes the signature and docstring of every public function.
"""
import inspect

import composer
from composer import analyzers
from composer.registry import get_rule, list_rules


def _rules() -> str:
    out = []
    for name in list_rules():
        spec = get_rule(name).spec
        out.append(f"## `{name}`\n\n{spec.summary}.\n")
        if spec.math:
            out.append(spec.math.strip() + "\n")
        if spec.reference:
            out.append(f"*Reference:* {spec.reference.strip()}\n")
        meta = f"hook `{spec.hook}`, applies to {'relevance layers' if spec.applies_to == 'layers' else 'any module'}"
        if spec.fixed:
            meta += ", fixed " + ", ".join(f"`{k}={v}`" for k, v in spec.fixed.items())
        out.append(f"*Implementation:* {meta}.\n")
        if spec.params:
            out.append("| parameter | type | default | bounds | meaning |\n|---|---|---|---|---|")
            for pname, p in spec.params.items():
                bounds = ", ".join(f"{k} {getattr(p, k)}" for k in ("ge", "gt", "le", "lt") if getattr(p, k) is not None)
                default = "required" if p.required else f"`{p.default}`"
                out.append(f"| `{pname}` | {p.type} | {default} | {bounds or '-'} | {p.description} |")
            out.append("")
    return "\n".join(out)


def _doc(obj, name) -> str:
    try:
        sig = str(inspect.signature(obj))
    except (TypeError, ValueError):
        sig = ""
    doc = inspect.getdoc(obj) or ""
    return f"### `{name}{sig}`\n\n```text\n{doc}\n```\n"


def _api() -> str:
    out = ["## composer\n"]
    for name in composer.__all__:
        obj = getattr(composer, name)
        if callable(obj) and not name.startswith("__"):
            out.append(_doc(obj, f"composer.{name}"))
    from composer import graph

    out.append("## composer.graph\n")
    for name in graph.__all__:
        obj = getattr(graph, name)
        if callable(obj):
            out.append(_doc(obj, f"composer.graph.{name}"))
    from composer import frequency, viz

    out.append("## composer.frequency\n")   # time series: DFT-LRP's virtual inspection layers
    for name in frequency.__all__:
        if name not in composer.__all__:
            out.append(_doc(getattr(frequency, name), f"composer.frequency.{name}"))
    for name in ("plot_spectrum", "plot_time_frequency", "save_domain_figure"):
        out.append(_doc(getattr(viz, name), f"composer.viz.{name}"))
    from composer import transformers as composer_transformers

    out.append("## composer.transformers\n")   # language models: one position's logits, relevance per token
    for name in ("LogitsAt", "embed", "explain_tokens", "explain_text", "load_pretrained"):
        out.append(_doc(getattr(composer_transformers, name), f"composer.transformers.{name}"))
    for name in ("token_html", "save_token_heatmap", "token_colors"):
        out.append(_doc(getattr(viz, name), f"composer.viz.{name}"))
    from composer import evaluation, quantus
    from composer.evaluation import data as evaluation_data, plot as evaluation_plot

    out.append("## composer.evaluation\n")   # faithfulness (region perturbation, AOPC, SRG) and preset tuning
    for name in evaluation.__all__:
        obj = getattr(evaluation, name)
        if callable(obj) and name not in composer.__all__:
            out.append(_doc(obj, f"composer.evaluation.{name}"))
    out.append(_doc(evaluation_data.load_samples, "composer.evaluation.data.load_samples"))
    out.append(_doc(evaluation_plot.plot_curves, "composer.evaluation.plot.plot_curves"))
    out.append("## composer.quantus\n")
    out.append(_doc(quantus.explain_func, "composer.quantus.explain_func"))
    from composer import dataset

    out.append("## composer.dataset\n")   # whole datasets: the store, the data sources, the gallery
    for name in dataset.__all__:
        if name not in composer.__all__:
            out.append(_doc(getattr(dataset, name), f"composer.dataset.{name}"))
    out.append("## composer.analyzers\n")
    for name, obj in vars(analyzers).items():
        if inspect.isclass(obj) and obj.__module__ == analyzers.__name__ or name == "calculate_relevancemap":
            out.append(_doc(obj, f"composer.analyzers.{name}"))
    return "\n".join(out)


def on_page_markdown(markdown, page, config, files):
    if "<!-- rule-reference -->" in markdown:
        markdown = markdown.replace("<!-- rule-reference -->", _rules())
    if "<!-- method-grammar -->" in markdown:
        from composer.names import method_table

        markdown = markdown.replace("<!-- method-grammar -->", method_table())
    if "<!-- api-reference -->" in markdown:
        markdown = markdown.replace("<!-- api-reference -->", _api())
    return markdown
