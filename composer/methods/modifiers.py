"""Output modifiers: what is done to a map after it is computed (``_x_input``, ``_x_sign``)."""
from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field

from ..rules.base import sign_map
from .base import modifier


@modifier("x_input")
def x_input(relevance: torch.Tensor, x: torch.Tensor):
    """``R ⊙ x``."""
    return relevance * x


@modifier("x_sign")
def x_sign(relevance: torch.Tensor, x: torch.Tensor, mu: Annotated[float, Field(ge=-1e12, le=1e12)] = 0.0):
    """``R ⊙ (+1 if x >= mu else −1)``; ``mu = 0`` is sign(x) with sign(0) = +1."""
    return relevance * sign_map(x, mu)
