"""Which method should I trust? Faithfulness by region perturbation, and preset tuning.

* :func:`evaluate` scores methods on a model and data: MoRF / LeRF region-perturbation curves, AOPC
  and the symmetric relevance gain (SRG), with confidence intervals (:mod:`.metrics`, :mod:`.perturb`).
* :func:`tune` searches a preset's parameters within its rules' bounds to maximise a metric (:mod:`.tune`).

    >>> import torch
    >>> from composer.evaluation import evaluate
    >>> net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> evaluate(net, torch.randn(16, 6), ["gradient", "gradient_x_input"], steps=6).ranked("srg")[0][0] in ("gradient", "gradient_x_input")
    True
"""
from .evaluate import Evaluation, as_samples, confidence_interval, evaluate
from .metrics import METRICS, faithfulness, faithfulness_scores, perturbation_curves
from .perturb import Perturbation
from .tune import TunableParameter, TuneResult, fingerprint, tunable_parameters, tune

__all__ = ["evaluate", "Evaluation", "as_samples", "confidence_interval", "faithfulness", "faithfulness_scores",
           "perturbation_curves", "Perturbation", "METRICS", "tune", "tunable_parameters", "TuneResult",
           "TunableParameter", "fingerprint"]
