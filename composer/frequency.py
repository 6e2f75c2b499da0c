"""Relevance in the frequency and time-frequency domains: DFT-LRP's virtual inspection layers.

Vielhaben, Lapuschkin, Montavon, Samek (2023), *Explainable AI for time series via virtual
inspection layers*: place an inverse DFT (or inverse short-time DFT) before the model, so the
model reads the signal's spectrum ``y`` through ``x = W y``, and pass the time-domain relevance
``R`` of any method through that virtual linear layer with the LRP-epsilon rule::

    R_k = sum_n  y_k W_nk  R_n / (x_n + epsilon * sign(x_n))

``y`` is real: the real and imaginary parts of each DFT bin are two inputs of the layer, and a
bin's relevance is the sum of theirs (also the relevance of its magnitude with the phase held
fixed). The layer's matrix is the orthonormal DFT, so both sums are FFTs: with ``r = R / x`` and
``U = FFT(r)``, ``R_k = Re Y_k Re U_k + Im Y_k Im U_k`` — batched, on the input's device, in its
precision. The sum over bins is ``sum_n R_n x_n / (x_n + epsilon sign(x_n))``: the time-domain
relevance is conserved (up to epsilon, and except at samples where ``x_n = 0``: no bin reaches them).

The short-time DFT follows the reference implementation (SignXAI's ``dftutils``): window ``m``
starts at ``m * shift``, each windowed signal gets a DFT of the full length ``N``, and the inverse
layer divides the sum over windows by the windows' total weight at each sample, so relevance is
conserved for overlapping windows too, as long as every sample lies in some window.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch

from .domain import DomainSpec, domain_spec
from .errors import ComposerError

__all__ = ["DomainExplanation", "to_domain", "requested_domain", "frequency_relevance", "time_frequency_relevance",
           "stdft_windows", "bin_weights", "concat"]


# --------------------------------------------------------------------------- the virtual layers
def bin_weights(length: int, symmetric: bool, dtype=torch.float32, device=None) -> torch.Tensor:
    """How many DFT bins each kept bin stands for: 1 for all N bins; with the real-signal symmetry
    2 for bins 1..N//2 that have a mirror twin ``N - k``, 1 for bin 0 and (even N) the Nyquist bin.

    Example
    -------
    >>> bin_weights(6, True).tolist(), bin_weights(5, True).tolist()
    ([1.0, 2.0, 2.0, 1.0], [1.0, 2.0, 2.0])
    """
    if not symmetric:
        return torch.ones(length, dtype=dtype, device=device)
    weights = torch.full((length // 2 + 1,), 2.0, dtype=dtype, device=device)
    weights[0] = 1.0
    if length % 2 == 0:
        weights[-1] = 1.0
    return weights


def _dft(x: torch.Tensor, symmetric: bool) -> torch.Tensor:
    """Orthonormal DFT along the last axis; bins 0..N//2 only with ``symmetric`` (real input)."""
    return torch.fft.rfft(x, norm="ortho") if symmetric else torch.fft.fft(x, norm="ortho")


def _dual(x: torch.Tensor, relevance: torch.Tensor, symmetric: bool, epsilon: float,
          windows: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The virtual layer's back-projection: the DFT of ``R_n / (x_n + epsilon sign(x_n))`` (sign(0) = +1; 0
    where that denominator is 0), divided by the windows' total weight at each sample (short-time DFT)."""
    if relevance.shape != x.shape:
        raise ComposerError(f"the time-domain relevance has shape {tuple(relevance.shape)} but the signal "
                            f"{tuple(x.shape)}: a domain needs a map shaped like the input")
    denominator = torch.where(x >= 0, x + epsilon, x - epsilon)
    zero = denominator == 0
    normalised = torch.where(zero, torch.zeros_like(relevance), relevance / torch.where(zero, 1.0, denominator))
    return _dft(normalised if windows is None else normalised / windows.sum(0), symmetric)


def _parts(signal: torch.Tensor, dual: torch.Tensor, weights: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """The relevance of each bin's real and imaginary part: ``c_k Re Y Re U`` and ``c_k Im Y Im U``."""
    return signal.real * (weights * dual.real), signal.imag * (weights * dual.imag)


def _total(signal: torch.Tensor, dual: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Each bin's relevance, ``c_k (Re Y Re U + Im Y Im U)``, with one temporary fewer than summing the parts."""
    return torch.addcmul(signal.real * (weights * dual.real), signal.imag, weights * dual.imag)


def frequency_relevance(x: torch.Tensor, relevance: torch.Tensor, symmetric: bool = True,
                        epsilon: float = 1e-6) -> Tuple[torch.Tensor, torch.Tensor]:
    """DFT-LRP: the signal's DFT and each bin's relevance, along the last axis.

    Returns ``(signal, relevance)``: the orthonormal DFT (complex, ``(..., N//2 + 1)`` with
    ``symmetric``, else ``(..., N)``) and the relevance per bin (real, same shape), whose sum over
    bins equals the time-domain relevance's sum over samples.

    Example
    -------
    >>> x = torch.tensor([[1.0, 2.0, -1.0, 0.5]])
    >>> r = torch.tensor([[0.5, 0.0, 0.25, 0.25]])
    >>> y, rk = frequency_relevance(x, r, epsilon=0.0)
    >>> rk
    tensor([[0.4688, 0.3750, 0.1562]])
    >>> rk.sum().item()
    1.0
    """
    dual = _dual(x, relevance, symmetric, epsilon)
    signal = _dft(x, symmetric)
    return signal, _total(signal, dual, bin_weights(x.shape[-1], symmetric, x.dtype, x.device))


def stdft_windows(length: int, width: int, shift: int, window: str = "rectangle", dtype=torch.float32,
                  device=None) -> torch.Tensor:
    """The short-time DFT's windows as a ``(windows, length)`` matrix; window ``m`` starts at ``m * shift``.

    ``rectangle``: ``sqrt(shift / width)`` on its samples; ``halfsine``: ``sin(pi (i + 1/2) / width)``.
    Both make the squares sum to one where ``shift`` divides ``width`` (rectangle) or is half of it
    (half-sine), so the transform keeps the signal's energy. Every sample must lie in some window.

    Example
    -------
    >>> stdft_windows(6, 4, 2)
    tensor([[0.7071, 0.7071, 0.7071, 0.7071, 0.0000, 0.0000],
            [0.0000, 0.0000, 0.7071, 0.7071, 0.7071, 0.7071]])
    """
    if not 1 <= width <= length:
        raise ComposerError(f"window_width {width} does not fit a signal of {length} samples")
    if shift < 1 or shift > width:
        raise ComposerError(f"window_shift must lie in [1, window_width={width}], got {shift}")
    if (length - width) % shift:
        fits = [w for w in range(width, 0, -1) if (length - w) % shift == 0][:1]
        raise ComposerError(
            f"windows of {width} samples every {shift} leave the last {(length - width) % shift} of {length} "
            f"samples outside every window (their relevance would be lost): (length - window_width) must be a "
            f"multiple of window_shift" + (f", e.g. window_width={fits[0]}" if fits else ""))
    if window == "rectangle":
        shape = torch.full((width,), (shift / width) ** 0.5, dtype=torch.float64)
    elif window == "halfsine":
        shape = torch.sin(torch.pi / width * (torch.arange(width, dtype=torch.float64) + 0.5))
    else:
        raise ComposerError(f"unknown window {window!r}: rectangle or halfsine")
    starts = torch.arange(0, length - width + 1, shift, device=device)
    index = starts[:, None] + torch.arange(width, device=device)
    matrix = torch.zeros(len(starts), length, dtype=dtype, device=device)
    return matrix.scatter_(1, index, shape.to(dtype=dtype, device=device).expand(len(starts), width).contiguous())


def time_frequency_relevance(x: torch.Tensor, relevance: torch.Tensor, width: int, shift: Optional[int] = None,
                             window: str = "rectangle", symmetric: bool = True,
                             epsilon: float = 1e-6) -> Tuple[torch.Tensor, torch.Tensor]:
    """DFT-LRP through the short-time DFT: the windowed signals' DFTs and each (window, bin)'s relevance.

    Returns ``(signal, relevance)`` shaped ``(..., windows, bins)`` (bins as in
    :func:`frequency_relevance`); the relevance sums to the time-domain relevance's sum.

    Example
    -------
    >>> x, r = torch.randn(2, 1, 64).double(), torch.randn(2, 1, 64).double()
    >>> y, rel = time_frequency_relevance(x, r, width=16, window="halfsine", shift=8, epsilon=0.0)
    >>> tuple(rel.shape), torch.allclose(rel.sum((-2, -1)), r.sum(-1))
    ((2, 1, 7, 33), True)
    """
    windows = stdft_windows(x.shape[-1], width, width if shift is None else shift, window, x.dtype, x.device)
    # the inverse layer adds the windows' inverse DFTs and divides by the windows' weight at each sample
    dual = _dual(x, relevance, symmetric, epsilon, windows).unsqueeze(-2)
    signal = _dft(x.unsqueeze(-2) * windows, symmetric)
    return signal, _total(signal, dual, bin_weights(x.shape[-1], symmetric, x.dtype, x.device))


# --------------------------------------------------------------------------- the result
@dataclass(frozen=True, eq=False)
class DomainExplanation:
    """A signal and its relevance in the frequency or time-frequency domain.

    ``signal`` is complex, ``relevance`` real, both ``(*lead, bins)`` (frequency) or
    ``(*lead, windows, bins)`` (time-frequency), where ``lead`` is the input's shape without its
    last (time) axis: ``(batch,)`` or ``(batch, channels)``. ``relevance`` is each bin's total (its
    real and imaginary parts' sum: the relevance of the bin's magnitude with the phase held
    fixed); ``relevance_real`` and ``relevance_imag`` split it. ``time_signal`` and
    ``time_relevance`` are the input and the method's map; ``frequencies`` the bins' frequencies
    (cycles per sample, or Hz with ``sample_rate``); ``spec`` the domain's settings.

    Example
    -------
    >>> x = torch.randn(3, 1, 32)
    >>> e = to_domain(x, x * 0.1, "frequency")
    >>> e
    DomainExplanation(kind='frequency', signal=(3, 1, 17) complex64, relevance=(3, 1, 17) float32, bins=17)
    >>> tuple(e.signal.shape), tuple(e.relevance.shape), tuple(e.frequencies.shape)
    ((3, 1, 17), (3, 1, 17), (17,))
    >>> bool(e.residual.abs().max() < 1e-5)
    True
    """

    kind: str
    signal: torch.Tensor
    relevance: torch.Tensor
    time_signal: torch.Tensor
    time_relevance: torch.Tensor
    frequencies: torch.Tensor
    spec: DomainSpec
    #: first sample of each short-time DFT window (time-frequency), else None
    window_starts: Optional[torch.Tensor] = None

    @property
    def relevance_real(self) -> torch.Tensor:
        """The share of each bin's relevance carried by its real part."""
        return self._parts()[0]

    @property
    def relevance_imag(self) -> torch.Tensor:
        """The share of each bin's relevance carried by its imaginary part."""
        return self._parts()[1]

    @property
    def residual(self) -> torch.Tensor:
        """Time-domain relevance minus domain relevance, per sample and channel (``(*lead,)``): 0 up to
        epsilon and rounding, except for relevance at samples where the signal is exactly zero."""
        bins = (-2, -1) if self.kind == "time_frequency" else (-1,)
        return self.time_relevance.sum(-1) - self.relevance.sum(bins)

    def _parts(self) -> Tuple[torch.Tensor, torch.Tensor]:
        s, x = self.spec, self.time_signal
        windows = None
        if self.kind == "time_frequency":
            windows = stdft_windows(x.shape[-1], s.window_width, s.shift, s.window, x.dtype, x.device)
        dual = _dual(x, self.time_relevance, s.symmetric, s.epsilon, windows)
        dual = dual.unsqueeze(-2) if windows is not None else dual
        return _parts(self.signal, dual, bin_weights(x.shape[-1], s.symmetric, x.dtype, x.device))

    def __repr__(self) -> str:
        shape = lambda t: f"{tuple(t.shape)} {str(t.dtype).removeprefix('torch.')}"  # noqa: E731
        return (f"DomainExplanation(kind={self.kind!r}, signal={shape(self.signal)}, relevance={shape(self.relevance)}"
                f", bins={len(self.frequencies)}" + (f", windows={len(self.window_starts)}" if self.window_starts
                                                      is not None else "") + ")")


def _frequencies(length: int, spec: DomainSpec, dtype, device) -> torch.Tensor:
    bins = length // 2 + 1 if spec.symmetric else length
    return torch.arange(bins, dtype=dtype, device=device) * ((spec.sample_rate or 1.0) / length)


def to_domain(x: torch.Tensor, relevance: torch.Tensor, domain) -> Optional[DomainExplanation]:
    """Time-domain relevance ``relevance`` of input ``x`` in ``domain`` (a kind name, mapping or
    :class:`~composer.domain.DomainSpec`); None for the time domain.

    Example
    -------
    >>> x = torch.randn(2, 64)
    >>> e = to_domain(x, x.abs(), {"kind": "time_frequency", "window_width": 16, "window": "halfsine"})
    >>> tuple(e.relevance.shape), e.window_starts.tolist()
    ((2, 4, 33), [0, 16, 32, 48])
    """
    spec = domain_spec(domain)
    if spec.kind == "time":
        return None
    if not isinstance(x, torch.Tensor) or x.dtype not in (torch.float32, torch.float64) or x.dim() < 2:
        raise ComposerError("a domain needs a float32 or float64 signal with a batch axis, time last: "
                            "(batch, ..., length)")
    if not isinstance(relevance, torch.Tensor):
        raise ComposerError(f"relevance must be a tensor shaped like the input, got {type(relevance).__name__}")
    x, relevance = x.detach(), relevance.detach()
    if spec.kind == "frequency":
        signal, rel = frequency_relevance(x, relevance, spec.symmetric, spec.epsilon)
        starts = None
    else:
        signal, rel = time_frequency_relevance(x, relevance, spec.window_width, spec.shift, spec.window,
                                               spec.symmetric, spec.epsilon)
        starts = torch.arange(0, x.shape[-1] - spec.window_width + 1, spec.shift, device=x.device)
    return DomainExplanation(spec.kind, signal, rel, x, relevance, _frequencies(x.shape[-1], spec, x.dtype, x.device),
                             spec, starts)


def requested_domain(domain=None, preset=None) -> Optional[DomainSpec]:
    """The domain an explanation is asked for: ``domain`` if given, else the preset's ``domain:`` field;
    None for the time domain (the plain map). ``preset`` is a resolved preset (``plan.preset``).

    Example
    -------
    >>> requested_domain("frequency").kind, requested_domain("time"), requested_domain()
    ('frequency', None, None)
    """
    source = "domain"
    if domain is None and preset is not None:
        domain = getattr(preset, "domain", None)    # inherited through 'extends', where resolve folds it in
        if domain is None:
            domain = getattr(getattr(preset, "preset", None), "domain", None)
        source = getattr(preset, "source", source)
    if domain is None:
        return None
    spec = domain_spec(domain, source)
    return None if spec.kind == "time" else spec


def concat(parts: Sequence[DomainExplanation]) -> DomainExplanation:
    """Explanations of consecutive batches (same domain) as one.

    Example
    -------
    >>> x = torch.randn(4, 16)
    >>> concat([to_domain(x[:2], x[:2], "frequency"), to_domain(x[2:], x[2:], "frequency")]).relevance.shape
    torch.Size([4, 9])
    """
    if not parts:
        raise ComposerError("nothing to concatenate")
    first = parts[0]
    if any(p.spec != first.spec for p in parts):
        raise ComposerError("explanations in different domains cannot be concatenated")
    cat = lambda name: torch.cat([getattr(p, name) for p in parts])  # noqa: E731
    return DomainExplanation(first.kind, cat("signal"), cat("relevance"), cat("time_signal"), cat("time_relevance"),
                             first.frequencies, first.spec, first.window_starts)
