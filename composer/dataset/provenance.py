"""What a store records about how it was made, and how a rerun is checked against it.

A store's ``composer`` attribute holds the method (its name and the resolved preset as YAML: one
self-contained preset, ``extends`` folded in and parameters substituted, that ``compile_preset``
reads back), the job's settings, a fingerprint of the model's contents, a description of the data
and the versions of composer, zennit, torch and zarr. A rerun may only continue a store whose
job is the same; anything else is refused, never overwritten.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import re
from typing import Any, Dict, List, Optional

import numpy as np
import torch
import yaml

#: bump when the store's layout changes in a way old readers cannot follow
STORE_FORMAT = 1
#: settings that must match for a rerun to continue a store (the rest is informative)
JOB_KEYS = ("method", "preset_yaml", "options", "model", "data", "indices_sha256", "samples", "batch_size", "target",
            "format")


def model_fingerprint(model: torch.nn.Module) -> str:
    """A hash of the model's class, structure (its ``repr``) and every parameter and buffer, by value.

    Equal models give equal fingerprints in any process (unlike ``composer.graph``'s twin-cache key,
    which is about object identity); changing one weight changes it.

    Example
    -------
    >>> a = torch.nn.Linear(2, 2)
    >>> b = torch.nn.Linear(2, 2)
    >>> _ = b.load_state_dict(a.state_dict())
    >>> model_fingerprint(a) == model_fingerprint(b)
    True
    >>> with torch.no_grad():
    ...     _ = b.bias.add_(1)
    >>> model_fingerprint(a) == model_fingerprint(b)
    False
    """
    digest = hashlib.sha256()
    digest.update(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    digest.update(re.sub(r"0x[0-9a-fA-F]+", "0x", repr(model)).encode())   # no object addresses
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def plain(value):
    """YAML- and JSON-safe plain data (tuples as lists, numpy scalars as numbers).

    Example
    -------
    >>> plain({"a": (1, np.float32(0.5))})
    {'a': [1, 0.5]}
    """
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (bool, int, float, str, type(None))):
        return value
    return str(value)


def resolved_preset(plan) -> Dict[str, Any]:
    """A compiled plan as one self-contained preset: bindings in order with their parameters substituted.

    Example
    -------
    >>> from composer import compile_preset
    >>> doc = resolved_preset(compile_preset("lrp_epsilon_0_1"))
    >>> doc["layers"][0]["rule"], doc["layers"][0]["with"]["epsilon"]
    ('epsilon', 0.1)
    >>> compile_preset(doc).params["epsilon"]
    0.1
    """
    resolved = plan.preset
    layers = []
    for compiled, (binding, _, _) in zip(plan.bindings, resolved.layers):
        select = binding.select if isinstance(binding.select, str) else binding.select.model_dump(exclude_none=True)
        entry = {"select": plain(select), "rule": compiled.rule.spec.name, "with": plain(compiled.params)}
        if compiled.optional:
            entry["optional"] = True
        layers.append(entry)
    canonizers: List[Any] = [c if isinstance(c, str) else {"name": c.name, "with": c.params} for c in plan.canonizers]
    name, kwargs = plan.attributor
    doc: Dict[str, Any] = {"name": plan.name, "summary": resolved.preset.summary, "params": plain(plan.params),
                           "layers": layers, "canonizers": canonizers,
                           "attributor": {"name": name, "with": plain({k: v for k, v in kwargs.items()
                                                                       if k != "generator"})},
                           "modifiers": [{"name": n, "with": plain(k)} for n, k in plan.modifiers],
                           "on_unmatched": resolved.on_unmatched, "canonize": resolved.canonize,
                           "on_uncovered": resolved.on_uncovered}
    return doc


def preset_yaml(plan) -> str:
    """:func:`resolved_preset` as YAML text, in the order the fields are written above.

    Example
    -------
    >>> from composer import compile_preset
    >>> print(preset_yaml(compile_preset("gradient")).splitlines()[0])
    name: gradient
    """
    return yaml.safe_dump(resolved_preset(plan), sort_keys=False, default_flow_style=None, width=120)


def versions() -> Dict[str, Optional[str]]:
    """The versions of the packages a map depends on (None for one that is not installed).

    Example
    -------
    >>> sorted(versions())
    ['composer', 'numpy', 'python', 'torch', 'zarr', 'zennit']
    """
    from .. import __version__

    def of(package: str) -> Optional[str]:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {"composer": __version__, "zennit": of("zennit"), "torch": torch.__version__, "numpy": np.__version__,
            "zarr": of("zarr"), "python": platform.python_version()}


def differences(stored: Dict[str, Any], job: Dict[str, Any]) -> List[str]:
    """The job settings in which ``job`` differs from a store's, described for an error message.

    Example
    -------
    >>> differences({"method": "gradient", "batch_size": 64}, {"method": "lrp_epsilon_0_1", "batch_size": 64})
    ["method: the store has 'gradient', this run 'lrp_epsilon_0_1'"]
    """
    out = []
    for key in JOB_KEYS:
        a, b = stored.get(key), job.get(key)
        if a == b or (key == "preset_yaml" and stored.get("method") != job.get("method")):
            continue
        if key == "model":
            out.append("model: the store was written by another model (its weights or structure differ: "
                       f"fingerprint {str((a or {}).get('fingerprint'))[:12]}... vs {str(b.get('fingerprint'))[:12]}...)")
        elif key == "data" and isinstance(a, dict) and isinstance(b, dict):
            keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
            text = ", ".join(f"{k} {a.get(k)!r} vs {b.get(k)!r}" for k in keys)
            hint = (" (another dataset, or random transforms: a resumable dataset reads the same sample every time)"
                    if keys == ["first_last_sha256"] else "")
            out.append(f"data: {text}{hint}")
        elif key == "preset_yaml":
            out.append("preset: the method resolves to other rules or parameters than when the store was written")
        else:
            out.append(f"{key}: the store has {a!r}, this run {b!r}")
    return out
