"""composer as Quantus' ``explain_func``: numpy in, numpy out.

`Quantus <https://github.com/understandable-machine-intelligence-lab/Quantus>`_ calls
``explain_func(model=..., inputs=..., targets=..., **explain_func_kwargs)`` with numpy arrays; pass
the method and its parameters through ``explain_func_kwargs``::

    import quantus, composer.quantus
    metric = quantus.PixelFlipping(features_in_step=1, perturb_baseline=0.0, normalise=False)
    metric(model=model, x_batch=x, y_batch=y, explain_func=composer.quantus.explain_func,
           explain_func_kwargs={"method": "lrp_epsilon", "epsilon": 0.25})

This module never imports the ``quantus`` package (the name is only this file's): it needs numpy and torch.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch

from composer.errors import ComposerError
from composer.evaluation.metrics import model_device
from composer.explain import explain


def explain_func(model: torch.nn.Module, inputs, targets, *, method: str = "gradient", device: Optional[Any] = None,
                 **params: Any) -> np.ndarray:
    """Explain ``inputs`` (numpy, batch first) for ``targets`` with a composer method; returns a float32
    numpy array shaped like ``inputs``.

    ``method`` is any method name, preset or preset file; the other keyword arguments are the
    method's parameters (``epsilon=0.25``) or :func:`composer.explain`'s (``canonizers``,
    ``seed``...). ``device`` (which Quantus adds) places the input; by default it goes where the
    model's parameters are.

    Example
    -------
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    >>> a = explain_func(net, np.ones((2, 4), dtype=np.float32), np.array([0, 1]), method="lrp_epsilon", epsilon=0.1)
    >>> type(a).__name__, a.shape, a.dtype
    ('ndarray', (2, 4), dtype('float32'))
    """
    if not isinstance(model, torch.nn.Module):
        raise ComposerError(f"composer explains torch models; got {type(model).__name__}")
    x = torch.as_tensor(np.asarray(inputs))
    if not x.is_floating_point():
        raise ComposerError(f"inputs must be floating point, got {x.dtype}")
    param = next(iter(model.parameters()), None)
    x = x.to(dtype=param.dtype if param is not None else torch.float32)
    x = x.to(model_device(model) if device is None else torch.device(device))
    target = None if targets is None else torch.as_tensor(np.asarray(targets)).long().reshape(-1).to(x.device)
    relevance = explain(model, x, method, target=target, **params)
    return relevance.detach().cpu().numpy().astype(np.float32)
