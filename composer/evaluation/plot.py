"""The picture of an evaluation: each method's mean MoRF and LeRF curves, ranked by a metric."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from ..extras import optional_import


def plot_curves(evaluation, path: Union[str, Path], metric: str = "srg", title: Optional[str] = None,
                dpi: int = 110) -> Path:
    """Write a PNG with two panels (MoRF, LeRF): each method's mean curve over the share of regions
    perturbed, the legend ranked by ``metric`` with its mean. Needs matplotlib (the ``cli`` extra).

    Example
    -------
    >>> import os, tempfile, torch
    >>> from composer.evaluation import Evaluation
    >>> ev = Evaluation({"m": {"srg": torch.ones(2)}}, {"m": {"morf": torch.rand(2, 3), "lerf": torch.rand(2, 3)}},
    ...                 torch.tensor([0.0, 0.5, 1.0]))
    >>> plot_curves(ev, os.path.join(tempfile.mkdtemp(), "c.png")).stat().st_size > 1000
    True
    """
    matplotlib = optional_import("matplotlib", "plotting perturbation curves")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    t = evaluation.fractions.detach().cpu().numpy()
    means = evaluation.mean_curves()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
    colours = plt.get_cmap("tab10" if len(means) <= 10 else "tab20")
    for i, (method, score) in enumerate(evaluation.ranked(metric)):
        for ax, order in zip(axes, ("morf", "lerf")):
            ax.plot(t, means[method][order], color=colours(i % colours.N), lw=1.6,
                    label=f"{method} ({metric} {score:.3g})")
    labels = {"morf": "most relevant first (MoRF): lower is better",
              "lerf": "least relevant first (LeRF): higher is better"}
    for ax, order in zip(axes, ("morf", "lerf")):
        ax.set_title(labels[order], fontsize=9)
        ax.set_xlabel("share of regions perturbed")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"model output ({evaluation.settings.get('output', 'logit')})")
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
