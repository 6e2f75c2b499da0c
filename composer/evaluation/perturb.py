"""Perturbing inputs region by region: regions (patches, segments), orders, replacement values.

A *region* is a patch of an image (``patch`` pixels on a side, all channels together), a segment of a
time series (``patch`` steps, all channels) or, for a flat ``(batch, features)`` input, a run of
``patch`` features. Step ``k`` of a curve replaces the ``n_k`` regions ranked first (by the sum of
relevance over the region) with the corresponding part of a *replacement* input: a baseline value,
a blurred copy of the input, or the input plus Gaussian noise. Everything here works on whole
batches at once, on the input's device.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from ..errors import ComposerError

PatchSize = Union[int, Sequence[int]]
KINDS = ("baseline", "blur", "noise")


@dataclass(frozen=True)
class Perturbation:
    """What a perturbed region is replaced with.

    * ``baseline``: the constant ``value`` (a number) or, with ``value="mean"``, each sample's
      per-channel mean.
    * ``blur``: a Gaussian blur of the input with standard deviation ``sigma`` (in pixels or steps).
    * ``noise``: the input plus Gaussian noise of standard deviation ``sigma``, drawn with ``seed``.

    Example
    -------
    >>> Perturbation.parse("blur:1.5")
    Perturbation(kind='blur', value=0.0, sigma=1.5, seed=0)
    >>> Perturbation.parse("baseline:mean").describe()
    'baseline:mean'
    """

    kind: str = "baseline"
    value: Union[float, str] = 0.0
    sigma: float = 1.0
    seed: int = 0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ComposerError(f"unknown perturbation '{self.kind}': use {', '.join(KINDS)}")
        if isinstance(self.value, str) and self.value != "mean":
            raise ComposerError(f"a baseline is a number or 'mean', got {self.value!r}")
        if not (isinstance(self.sigma, (int, float)) and self.sigma > 0 and math.isfinite(self.sigma)):
            raise ComposerError(f"sigma must be a positive number, got {self.sigma!r}")

    @classmethod
    def parse(cls, text: Union[str, "Perturbation"]) -> "Perturbation":
        """``baseline[:VALUE|mean]``, ``blur[:SIGMA]``, ``noise[:SIGMA[:SEED]]`` (a Perturbation passes through).

        Example
        -------
        >>> Perturbation.parse("noise:0.2:7").seed
        7
        """
        if isinstance(text, Perturbation):
            return text
        if not isinstance(text, str):
            raise ComposerError(f"a perturbation is a string like 'baseline:0' or 'blur:1', got {text!r}")
        kind, *args = text.strip().split(":")
        try:
            if kind == "baseline":
                if len(args) > 1:
                    raise ValueError
                value = args[0] if args else "0"
                return cls("baseline", value="mean" if value == "mean" else float(value))
            if kind == "blur" and len(args) <= 1:
                return cls("blur", sigma=float(args[0]) if args else 1.0)
            if kind == "noise" and len(args) <= 2:
                return cls("noise", sigma=float(args[0]) if args else 0.1, seed=int(args[1]) if len(args) > 1 else 0)
        except ComposerError:
            raise
        except ValueError:
            pass
        raise ComposerError(f"cannot read perturbation {text!r}: use baseline[:VALUE|mean], blur[:SIGMA] or "
                            "noise[:SIGMA[:SEED]]")

    def describe(self) -> str:
        """The perturbation as :meth:`parse` reads it.

        Example
        -------
        >>> Perturbation("noise", sigma=0.5, seed=3).describe()
        'noise:0.5:3'
        """
        if self.kind == "baseline":
            return f"baseline:{self.value if isinstance(self.value, str) else format(self.value, 'g')}"
        if self.kind == "blur":
            return f"blur:{self.sigma:g}"
        return f"noise:{self.sigma:g}:{self.seed}"


def spatial_shape(x: torch.Tensor) -> Tuple[int, ...]:
    """The axes regions are cut along: everything after batch and channel, or the features of ``(N, F)``.

    Example
    -------
    >>> spatial_shape(torch.zeros(2, 3, 8, 6)), spatial_shape(torch.zeros(2, 1, 100)), spatial_shape(torch.zeros(2, 5))
    ((8, 6), (100,), (5,))
    """
    if x.dim() < 2:
        raise ComposerError(f"inputs need a batch axis first, got shape {tuple(x.shape)}")
    return tuple(x.shape[1:]) if x.dim() == 2 else tuple(x.shape[2:])


def _patch_sizes(patch: PatchSize, ndim: int) -> Tuple[int, ...]:
    sizes = (patch,) * ndim if isinstance(patch, int) else tuple(patch)
    if len(sizes) != ndim or not all(isinstance(p, int) and not isinstance(p, bool) and p >= 1 for p in sizes):
        raise ComposerError(f"patch must be a positive integer or {ndim} of them (one per spatial axis), got {patch!r}")
    return sizes


def region_ids(shape: Sequence[int], patch: PatchSize, device=None) -> Tuple[torch.Tensor, int]:
    """(region of each position of a ``shape`` grid, flattened; number of regions). Patches tile the grid
    from the first position; those at the far edges are smaller when ``patch`` does not divide the size.

    Example
    -------
    >>> ids, n = region_ids((4, 4), 2)
    >>> ids.view(4, 4).tolist(), n
    ([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]], 4)
    >>> region_ids((5,), 2)[0].tolist()
    [0, 0, 1, 1, 2]
    """
    sizes = _patch_sizes(patch, len(shape))
    counts = [math.ceil(s / p) for s, p in zip(shape, sizes)]
    ids = torch.zeros((), dtype=torch.long, device=device)
    for axis, (s, p, c) in enumerate(zip(shape, sizes, counts)):
        block = torch.arange(s, device=device) // p
        ids = ids[..., None] * c + block.view(*([1] * axis), s)
    return ids.reshape(-1), int(math.prod(counts))


def region_scores(relevance: torch.Tensor, ids: torch.Tensor, n_regions: int) -> torch.Tensor:
    """Relevance summed over each region (and over channels): ``(batch, n_regions)``.

    Example
    -------
    >>> ids, n = region_ids((4,), 2)
    >>> region_scores(torch.tensor([[[1., 2., 3., 4.]]]), ids, n).tolist()
    [[3.0, 7.0]]
    """
    per_position = relevance.reshape(relevance.shape[0], -1, ids.numel()).sum(1) if relevance.dim() > 2 \
        else relevance
    out = torch.zeros(relevance.shape[0], n_regions, dtype=relevance.dtype, device=relevance.device)
    return out.index_add_(1, ids, per_position)


def ranks(scores: torch.Tensor, order: str) -> torch.Tensor:
    """Each region's place in the perturbation order (0 = perturbed first): ``morf`` takes the highest
    score first, ``lerf`` the lowest; ties keep the regions' order (a stable sort).

    Example
    -------
    >>> ranks(torch.tensor([[0.5, 2.0, -1.0]]), "morf").tolist(), ranks(torch.tensor([[0.5, 2.0, -1.0]]), "lerf").tolist()
    ([[1, 0, 2]], [[1, 2, 0]])
    """
    if order not in ("morf", "lerf"):
        raise ComposerError(f"order is 'morf' (most relevant first) or 'lerf' (least relevant first), got {order!r}")
    perm = torch.sort(scores, dim=1, descending=order == "morf", stable=True).indices
    rank = torch.empty_like(perm)
    return rank.scatter_(1, perm, torch.arange(perm.shape[1], device=perm.device).expand_as(perm).contiguous())


def step_counts(n_regions: int, steps: int, fraction: float = 1.0) -> torch.Tensor:
    """How many regions are perturbed after each of ``steps`` steps (``steps + 1`` numbers from 0): evenly
    spread up to ``round(fraction * n_regions)``.

    Example
    -------
    >>> step_counts(16, 4).tolist(), step_counts(10, 4).tolist(), step_counts(16, 4, 0.5).tolist()
    ([0, 4, 8, 12, 16], [0, 3, 5, 8, 10], [0, 2, 4, 6, 8])
    """
    if not (isinstance(steps, int) and steps >= 1):
        raise ComposerError(f"steps must be a positive integer, got {steps!r}")
    if not (0 < fraction <= 1):
        raise ComposerError(f"fraction (of regions perturbed at the last step) must be in (0, 1], got {fraction!r}")
    total = round(fraction * n_regions)
    if steps > total:
        raise ComposerError(f"{steps} steps but only {total} regions to perturb: use fewer steps or smaller patches")
    return torch.tensor([math.floor(k * total / steps + 0.5) for k in range(steps + 1)], dtype=torch.long)


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur over the spatial axes (replicated borders), channel by channel."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = (kernel / kernel.sum()).view(1, 1, -1)
    shape = spatial_shape(x)
    out = x if x.dim() > 2 else x[:, None]
    for axis in range(len(shape)):
        dim = out.dim() - len(shape) + axis
        moved = out.movedim(dim, -1)
        flat = moved.reshape(-1, 1, moved.shape[-1])
        flat = F.conv1d(F.pad(flat, (radius, radius), mode="replicate"), kernel)
        out = flat.view(moved.shape).movedim(-1, dim)
    return out if x.dim() > 2 else out[:, 0]


def replacement(x: torch.Tensor, perturbation: Perturbation) -> torch.Tensor:
    """The input a perturbed region takes its values from, shaped like ``x``.

    Example
    -------
    >>> x = torch.arange(4.).view(1, 1, 4)
    >>> replacement(x, Perturbation("baseline", value="mean")).tolist()
    [[[1.5, 1.5, 1.5, 1.5]]]
    >>> torch.allclose(replacement(torch.ones(1, 1, 5, 5), Perturbation("blur", sigma=1.0)), torch.ones(1, 1, 5, 5))
    True
    """
    p = Perturbation.parse(perturbation)
    if p.kind == "baseline":
        if p.value == "mean":
            axes = tuple(range(2, x.dim())) if x.dim() > 2 else (1,)
            return x.mean(dim=axes, keepdim=True).expand_as(x)
        return torch.full_like(x, float(p.value))
    if p.kind == "blur":
        return _gaussian_blur(x, p.sigma)
    generator = torch.Generator().manual_seed(p.seed)  # drawn on the CPU: the same noise on every device
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    return x + p.sigma * noise


def perturbed_inputs(x: torch.Tensor, x_tilde: torch.Tensor, rank: torch.Tensor, ids: torch.Tensor,
                     counts: torch.Tensor) -> torch.Tensor:
    """Every step's input for every sample at once: ``(batch * (steps + 1), ...)``, sample-major. At step
    ``k`` the regions with ``rank < counts[k]`` hold ``x_tilde``'s values, the rest ``x``'s.

    Example
    -------
    >>> ids, n = region_ids((3,), 1)
    >>> x, rank = torch.tensor([[[1., 2., 3.]]]), ranks(torch.tensor([[0., 9., 5.]]), "morf")
    >>> perturbed_inputs(x, torch.zeros_like(x), rank, ids, torch.tensor([0, 1, 3]))[:, 0].tolist()
    [[1.0, 2.0, 3.0], [1.0, 0.0, 3.0], [0.0, 0.0, 0.0]]
    """
    batch, steps = x.shape[0], counts.numel()
    counts = counts.to(rank.device)
    region_mask = rank[:, None, :] < counts[None, :, None]          # (batch, steps, regions)
    mask = region_mask[:, :, ids]                                  # (batch, steps, positions)
    mask = mask.view(batch, steps, *((1,) if x.dim() > 2 else ()), *spatial_shape(x))   # channels share a mask
    out = torch.where(mask, x_tilde[:, None], x[:, None])
    return out.reshape(batch * steps, *x.shape[1:])
