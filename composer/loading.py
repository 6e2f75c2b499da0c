"""Models as people save them, for the ``composer`` command: each format loaded, or refused clearly.

===========================================  ===============================================
``-m package.module:factory``                the factory's model (``--weights`` loads a state dict)
``-m model.pt`` holding a state dict         refused: a state dict has no architecture; use a factory
``-m model.pt`` from ``torch.save(model)``   a pickle: loaded only with ``--trust-pickle``
``-m model.ts`` (``torch.jit.script``)        rebuilt as eager modules (``nn.Sequential`` of standard layers)
``-m model.ts`` (``torch.jit.trace``)         refused: tracing drops the layers' settings (stride, padding)
``-m model.pt2`` (``torch.export``)           refused: an exported program has operations, not modules
===========================================  ===============================================

LRP rules attach to modules; formats that keep no modules cannot be explained with LRP, and the
error says which format to use instead. TorchScript is deprecated upstream: prefer a factory and a
state dict.
"""
from __future__ import annotations

import importlib
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Optional

import torch

from .errors import ComposerError

_FACTORY_HINT = ("save the weights with torch.save(model.state_dict(), 'weights.pt') and pass "
                 "-m package.module:factory --weights weights.pt")
_warned_torchscript = False


def _archive_kind(path: Path) -> str:
    """'torchscript', 'export', 'pickle' (torch.save) or 'unknown', from the zip archive's entries."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return "unknown"
    if any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names):
        return "torchscript"
    if any("serialized_exported_program" in n or n.endswith("archive_format") for n in names):
        return "export"
    if any(n.endswith("data.pkl") for n in names):
        return "pickle"
    return "unknown"


def _state_dict_of(obj) -> Optional[dict]:
    """The state dict inside a loaded checkpoint (plain, or under 'state_dict' / 'model_state_dict')."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
        if obj and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
            return obj
    return None


def load_weights(model: torch.nn.Module, path: Path) -> torch.nn.Module:
    """Load a state dict file into ``model`` (safely: ``weights_only``); key mismatches are named.

    Example
    -------
    >>> import tempfile, os
    >>> net = torch.nn.Linear(2, 2)
    >>> file = os.path.join(tempfile.mkdtemp(), "w.pt"); torch.save(net.state_dict(), file)
    >>> torch.equal(load_weights(torch.nn.Linear(2, 2), Path(file)).weight, net.weight)
    True
    """
    path = Path(path)
    if not path.is_file():
        raise ComposerError("no such weights file", source=str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a file it cannot read safely
        raise ComposerError(f"not a state dict that can be loaded safely ({type(err).__name__}); "
                            + _FACTORY_HINT, source=str(path)) from None
    state = _state_dict_of(obj)
    if state is None:
        raise ComposerError("the file holds no state dict (a mapping of parameter names to tensors)", source=str(path))
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        parts = []
        if result.missing_keys:
            parts.append(f"missing {', '.join(result.missing_keys[:5])}" + (" ..." if len(result.missing_keys) > 5 else ""))
        if result.unexpected_keys:
            parts.append(f"unexpected {', '.join(result.unexpected_keys[:5])}"
                         + (" ..." if len(result.unexpected_keys) > 5 else ""))
        raise ComposerError(f"the weights do not fit {type(model).__name__}: {'; '.join(parts)}", source=str(path))
    return model


def _from_factory(spec: str) -> torch.nn.Module:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ComposerError(f"expected package.module:factory, got {spec!r}")
    sys.path.insert(0, str(Path.cwd()))
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except ImportError as err:
        raise ComposerError(f"cannot import {module_name!r}: {err}") from None
    except AttributeError:
        raise ComposerError(f"module {module_name!r} has no {attr!r}") from None
    finally:
        sys.path.remove(str(Path.cwd()))
    model = obj() if callable(obj) and not isinstance(obj, torch.nn.Module) else obj
    if not isinstance(model, torch.nn.Module):
        raise ComposerError(f"{spec} gave a {type(model).__name__}, not a torch.nn.Module")
    return model


def _from_torchscript(path: Path) -> torch.nn.Module:
    global _warned_torchscript
    from .torchscript import to_eager

    if not _warned_torchscript:
        _warned_torchscript = True
        warnings.warn("TorchScript is deprecated in PyTorch; composer rebuilds scripted nn.Sequential models as "
                      "eager modules. Prefer a factory and a state dict: " + _FACTORY_HINT, FutureWarning, stacklevel=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)   # torch's own notice, on every call: said once above
        scripted = torch.jit.load(str(path), map_location="cpu")
    try:
        return to_eager(scripted)
    except AttributeError:
        raise ComposerError("a traced TorchScript model (torch.jit.trace) does not keep its layers' settings "
                            "(stride, padding, ...), so its layers cannot be rebuilt for LRP hooks; script it with "
                            "torch.jit.script, or " + _FACTORY_HINT, source=str(path)) from None


def load_model(spec: str, weights: Optional[Path] = None, trust_pickle: bool = False) -> torch.nn.Module:
    """A model from ``package.module:factory`` or a saved file, in eval mode (see the module's table).

    Example
    -------
    >>> load_model("torch.nn:Identity").training
    False
    >>> load_model("missing.pt")
    Traceback (most recent call last):
    ...
    composer.errors.ComposerError: missing.pt: no such model file (or give package.module:factory)
    """
    path = Path(spec)
    if not path.exists() and ":" in spec:
        model = _from_factory(spec)
        return (load_weights(model, weights) if weights is not None else model).eval()
    if not path.is_file():
        raise ComposerError("no such model file (or give package.module:factory)", source=spec)
    if weights is not None:
        raise ComposerError("--weights needs the architecture from -m package.module:factory, not a file",
                            source=str(weights))
    kind = _archive_kind(path)
    if kind == "torchscript":
        return _from_torchscript(path).eval()
    if kind == "export":
        raise ComposerError("a torch.export program (.pt2) holds operations, not modules, so LRP rules have no "
                            "layers to attach to; " + _FACTORY_HINT, source=spec)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - not loadable safely: a pickled model, or not a torch file at all
        obj = None
        if kind != "pickle":
            raise ComposerError("not a model file composer can read (TorchScript, or torch.save of a model with "
                                "--trust-pickle); or give package.module:factory", source=spec) from None
    if obj is not None:
        if isinstance(obj, torch.nn.Module):
            return obj.eval()
        if _state_dict_of(obj) is not None:
            raise ComposerError("the file holds a state dict, which has no architecture: pass "
                                f"-m package.module:factory --weights {spec}", source=spec)
        raise ComposerError(f"the file holds a {type(obj).__name__}, not a model", source=spec)
    if not trust_pickle:
        raise ComposerError("the file is a pickled model (torch.save(model)); unpickling can run any code, so "
                            "composer loads it only with --trust-pickle. Better: " + _FACTORY_HINT, source=spec)
    try:
        model = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - e.g. the class it pickled cannot be imported here
        raise ComposerError(f"cannot unpickle the model: {type(err).__name__}: {err}", source=spec) from None
    if not isinstance(model, torch.nn.Module):
        raise ComposerError(f"the pickle holds a {type(model).__name__}, not a model", source=spec)
    return model.eval()
