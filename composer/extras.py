"""Optional dependencies: what needs them says exactly which extra to install.

The core install (``pip install zennit-composer``) explains models and runs the ``composer``
command (``list``, ``show``, ``validate``, ``schema``, ``explain`` to ``.npy``). Heatmaps need
matplotlib, image inputs Pillow and the demo scikit-learn's digits: the ``[cli]`` extra.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from .errors import ComposerError

#: the extra that provides each optional top-level package
EXTRA_OF = {"matplotlib": "cli", "PIL": "cli", "sklearn": "cli", "zarr": "dataset", "ray": "ray",
            "transformers": "transformers"}
PACKAGE_OF = {"PIL": "pillow", "sklearn": "scikit-learn"}


def optional_import(name: str, purpose: str) -> ModuleType:
    """Import ``name``, or raise a :class:`ComposerError` naming the extra that provides it.

    Example
    -------
    >>> optional_import("json", "reading JSON").__name__
    'json'
    """
    try:
        return importlib.import_module(name)
    except ImportError:
        top = name.split(".")[0]
        extra = EXTRA_OF.get(top, "cli")
        raise ComposerError(f"{purpose} needs {PACKAGE_OF.get(top, top)}, which the core install does not include: "
                            f"pip install 'zennit-composer[{extra}]'") from None
