"""Whether a model's canonical twin computes the model's function (checked once per input signature)."""
from __future__ import annotations

import threading
import weakref
from typing import Callable, Optional

import torch

from ..errors import ComposerError
from .canonical import graph_info

_model_locks: "weakref.WeakKeyDictionary[torch.nn.Module, threading.RLock]" = weakref.WeakKeyDictionary()
_locks_lock = threading.Lock()


def lock_of(model: torch.nn.Module) -> "threading.RLock":
    """The lock that serialises what changes ``model`` for a moment (its modes, its own modules' hooks)."""
    with _locks_lock:
        return _model_locks.setdefault(model, threading.RLock())


#: how far a twin's output may be from the model's, relative to the output's largest magnitude (merged batch
#: norms round differently; a wrong canonization is off by far more)
TWIN_TOLERANCE = 1e-3


def check_twin(model: torch.nn.Module, twin: torch.nn.Module, x: torch.Tensor,
               reference: Optional[Callable] = None) -> None:
    """Check once per input signature that the canonical twin computes the model's output for ``x``.

    ``reference`` computes the model's output (default: calling the model, with its own hooks).

    Canonization rewrites the model (functional calls as modules, batch norms merged, one module per
    call); if that rewrite does not reproduce the model (a pattern composer gets wrong, a forward hook
    on the model itself, which the traced twin does not run), every map would explain another
    function. One forward pass of each, in eval mode, without gradients, settles it; the model is left
    as it was. An input either rejects is left to the attribution pass to report.

    Example
    -------
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 2))
    >>> _ = net.register_forward_hook(lambda module, inputs, output: 2 * output)
    >>> from composer import explain
    >>> explain(net, torch.ones(1, 3), "lrp_epsilon_0_1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    composer.errors.ComposerError: the canonical twin of Sequential does not compute its output ...
    """
    info = graph_info(twin)
    signature = (tuple(x.shape[1:]), x.dtype, x.device)
    if info is None or signature in info.checked:
        return
    modes = [(m, m.training) for m in model.modules()]
    with lock_of(model), torch.no_grad():
        try:
            model.eval()   # eval mode and no gradients: nothing in the model changes
            expected = (reference or model)(x)
            got = twin(x)
        except Exception:  # noqa: BLE001 - the attribution pass reports an input the model rejects
            return
        finally:
            for m, mode in modes:
                m.training = mode
    if not (isinstance(expected, torch.Tensor) and isinstance(got, torch.Tensor) and got.shape == expected.shape):
        return
    scale = float(expected.abs().nan_to_num(0.0).max()) if expected.numel() else 0.0
    if not torch.allclose(got, expected, rtol=TWIN_TOLERANCE, atol=TWIN_TOLERANCE * scale, equal_nan=True):
        difference = float((got - expected).abs().nan_to_num(float("inf")).max())
        causes = []
        if reference is None and (model._forward_hooks or model._forward_pre_hooks):
            causes.append(f"{type(model).__name__} has forward hooks of its own, which its traced twin does not run: "
                          "remove them while explaining")
        merged = [f"{path} ({what})" for path, what in info.origin.items() if " + " in what]
        if merged:
            causes.append("batch norms or biases merged into the layers before them: " + ", ".join(merged[:5])
                          + " (a batch norm normalises axis 1, a dense layer's features are the last axis: "
                          "they are one only for (batch, features) inputs)")
        raise ComposerError(
            f"the canonical twin of {type(model).__name__} does not compute its output for inputs of shape "
            f"{tuple(x.shape)} (largest difference {difference:.3g}, outputs up to {scale:.3g}), so its maps "
            "would explain another function. " + ("; ".join(causes) + ". " if causes else "")
            + "Explain the model's own modules with canonize=False, and please report the model.")
    info.checked.add(signature)
