"""The SignXAI method-name grammar, parsed once, here, into data.

::

    method    := base modifier*
    modifier  := "_x_input" | "_x_sign" | "_x_sign_mu" ["_" number]
    base      := preset-name | prefix "_" body ["_mu" ["_" number]] ["_" bounds]
    prefix    := lrp | lrpsign | lrpz | w2lrp | flatlrp | zblrp
    body      := z | z_plus | gamma | flat | w_square | sequential_composite_a | sequential_composite_b
               | epsilon ["_" number] ["_std_x"] | alpha_ number _beta_ number
    number    := ["neg_"] digits ["_" digits]        # 0_25 = 0.25, neg_0_5 = -0.5, 100 = 100
    bounds    := VGG16ILSVRC                          # z-box bounds of the reference wrappers

The prefix picks the first layer's rule (``lrp``: the body's own rule), the body every other
layer's; ``_mu_<m>`` makes ``lrpsign``'s SIGN a SIGN-mu with threshold m. A number left out
(``lrpsign_epsilon_std_x_mu``) leaves that parameter to the preset default or to keyword arguments.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from .errors import ComposerError, closest

PREFIXES = {"lrp": None, "lrpsign": "lrpsign", "lrpz": "lrpz", "w2lrp": "w2lrp", "flatlrp": "flatlrp",
            "zblrp": "zblrp"}
SIMPLE_BODIES = {"z": "lrp_z", "z_plus": "lrp_z_plus", "gamma": "lrp_gamma", "flat": "lrp_flat",
                 "w_square": "lrp_w_square", "sequential_composite_a": "lrp_sequential_composite_a",
                 "sequential_composite_b": "lrp_sequential_composite_b"}
#: input bounds named by the reference wrappers' model tags (zblrp_*_VGG16ILSVRC)
BOUNDS = {"VGG16ILSVRC": (-123.68, 151.061)}
_DIGITS = re.compile(r"^\d+$")


@dataclass(frozen=True)
class ParsedMethod:
    """A method name as data: the presets it combines, their parameters, and the modifiers."""

    name: str
    extends: Tuple[str, ...]
    params: Dict[str, Any] = field(default_factory=dict)
    modifiers: Tuple[Tuple[str, Dict[str, Any]], ...] = ()
    free_params: Dict[str, Any] = field(default_factory=dict)

    def mapping(self) -> Dict[str, Any]:
        """The preset mapping this name stands for (what :func:`composer.compose` compiles)."""
        out: Dict[str, Any] = {"name": self.name, "summary": f"method {self.name}", "extends": list(self.extends)}
        if self.free_params:
            out["params"] = dict(self.free_params)
        if self.modifiers:
            out["modifiers"] = [{"name": n, "with": dict(w)} for n, w in self.modifiers]
        return out


class _Tokens:
    def __init__(self, name: str, tokens: List[str]):
        self.name, self.tokens, self.i = name, tokens, 0

    def peek(self, k: int = 0) -> Optional[str]:
        return self.tokens[self.i + k] if self.i + k < len(self.tokens) else None

    def take(self, word: str) -> bool:
        if self.peek() == word:
            self.i += 1
            return True
        return False

    def number(self) -> Optional[float]:
        start, sign = self.i, 1.0
        if self.peek() == "neg" and self.peek(1) is not None and _DIGITS.match(self.peek(1)):
            self.i, sign = self.i + 1, -1.0
        if self.peek() is None or not _DIGITS.match(self.peek()):
            self.i = start
            return None
        whole = self.tokens[self.i]
        self.i += 1
        if self.peek() is not None and _DIGITS.match(self.peek()):
            value = float(f"{whole}.{self.tokens[self.i]}")
            self.i += 1
        else:
            value = float(whole)
        return sign * value

    def rest(self) -> str:
        return "_".join(self.tokens[self.i:])


def _error(name: str, why: str) -> ComposerError:
    return ComposerError(f"cannot parse method name '{name}': {why}", suggestions=closest(name, list_methods()))


def _split_modifiers(name: str, tokens: List[str]) -> Tuple[List[str], Tuple[Tuple[str, Dict[str, Any]], ...], Dict]:
    cut = next((i for i in range(len(tokens)) if tokens[i] == "x" and (i == 0 or tokens[i - 1] != "std")),
               len(tokens))
    stream = _Tokens(name, tokens[cut:])
    modifiers, free = [], {}
    while stream.peek() is not None:
        if not stream.take("x"):
            raise _error(name, f"expected a modifier (_x_input, _x_sign, _x_sign_mu_<m>) at '{stream.rest()}'")
        if stream.take("input"):
            modifiers.append(("x_input", {}))
        elif stream.take("sign"):
            if stream.take("mu"):
                mu = stream.number()
                if mu is None:
                    free["mu"] = 0.0
                    modifiers.append(("x_sign", {"mu": "$mu"}))
                else:
                    modifiers.append(("x_sign", {"mu": mu}))
            else:
                modifiers.append(("x_sign", {}))
        else:
            raise _error(name, f"unknown modifier at 'x_{stream.rest()}'")
    return tokens[:cut], tuple(modifiers), free


def _parse_lrp(name: str, tokens: List[str]) -> Tuple[Tuple[str, ...], Dict[str, Any]]:
    stream = _Tokens(name, tokens)
    prefix = stream.tokens[0] if tokens else ""
    if prefix not in PREFIXES:
        raise _error(name, "not a preset, and not an LRP name (prefixes: " + ", ".join(PREFIXES) + ")")
    stream.i = 1
    params: Dict[str, Any] = {}
    body_rest = stream.rest()
    body = None
    for simple in sorted(SIMPLE_BODIES, key=len, reverse=True):
        if body_rest == simple or body_rest.startswith(simple + "_"):
            body = SIMPLE_BODIES[simple]
            stream.i += len(simple.split("_"))
            break
    if body is None:
        if stream.take("epsilon"):
            value = stream.number()
            if stream.peek() == "std" and stream.peek(1) == "x":
                stream.i += 2
                body = "lrp_epsilon_std_x"
                if value is not None:
                    params["stdfactor"] = value
            else:
                body = "lrp_epsilon"
                if value is not None:
                    params["epsilon"] = value
        elif stream.take("alpha"):
            alpha = stream.number()
            if alpha is None or not stream.take("beta"):
                raise _error(name, "expected alpha_<a>_beta_<b>")
            beta = stream.number()
            if beta is None:
                raise _error(name, "expected a number after beta")
            body, params["alpha"], params["beta"] = "lrp_alpha_beta", alpha, beta
        else:
            raise _error(name, f"unknown LRP body '{body_rest}' (z, epsilon_<e>, epsilon_<f>_std_x, "
                               "alpha_<a>_beta_<b>, sequential_composite_a|b, gamma, flat, w_square, z_plus)")
    if stream.take("mu"):
        if prefix != "lrpsign":
            raise _error(name, "'_mu_<m>' sets the SIGN-mu threshold and needs the lrpsign prefix")
        mu = stream.number()
        if mu is not None:
            params["mu"] = mu
    if stream.peek() in BOUNDS:
        if prefix != "zblrp":
            raise _error(name, f"input bounds '{stream.peek()}' need the zblrp prefix")
        params["low"], params["high"] = BOUNDS[stream.peek()]
        stream.i += 1
    if stream.peek() is not None:
        raise _error(name, f"unexpected '{stream.rest()}'")
    extends = ((PREFIXES[prefix],) if PREFIXES[prefix] else ()) + (body,)
    return extends, params


def parse_method(name: str) -> ParsedMethod:
    """Parse a SignXAI method name into presets, parameters and modifiers.

    Example
    -------
    >>> m = parse_method("lrpsign_epsilon_0_25_std_x_mu_neg_0_5")
    >>> m.extends, m.params
    (('lrpsign', 'lrp_epsilon_std_x'), {'stdfactor': 0.25, 'mu': -0.5})
    >>> parse_method("gradient_x_sign_mu_0_5").modifiers
    (('x_sign', {'mu': 0.5}),)
    """
    from .registry import has_preset

    if not isinstance(name, str) or not name or len(name) > 200:
        raise ComposerError(f"a method name is a non-empty string of at most 200 characters, got {name!r}")
    tokens = name.split("_")
    if any(t == "" for t in tokens):
        raise _error(name, "empty part between underscores")
    base_tokens, modifiers, free = _split_modifiers(name, tokens)
    base = "_".join(base_tokens)
    if not base:
        raise _error(name, "no method before the modifiers")
    if has_preset(base):
        from .compiler import load_preset

        if load_preset(base).abstract:
            raise _error(name, f"'{base}' is a building block, not a method")
        return ParsedMethod(name, (base,), {}, modifiers, free)
    extends, params = _parse_lrp(name, base_tokens)
    return ParsedMethod(name, extends, params, modifiers, free)


def _number_text(value: float) -> str:
    text = ("neg_" if value < 0 else "") + f"{abs(value):g}".replace(".", "_")
    return text


NON_LRP_BASES = ("gradient", "input_t_gradient", "guided_backprop", "deconvnet", "integrated_gradients",
                 "smoothgrad", "vargrad", "grad_cam", "deeplift")
MODIFIER_SUFFIXES = ("", "_x_input", "_x_sign", "_x_input_x_sign", "_x_sign_mu_0", "_x_sign_mu_0_5",
                     "_x_sign_mu_neg_0_5")


def list_methods(pattern: Optional[str] = None) -> List[str]:
    """Every preset plus a representative of each method family of the grammar, sorted.

    ``pattern`` (a regular expression, searched) filters the list. Any number may replace the
    numbers shown (``lrp_epsilon_0_1`` stands for ``lrp_epsilon_<e>``).

    Example
    -------
    >>> "lrpsign_epsilon_0_25_std_x_mu_0_5" in list_methods()
    True
    >>> list_methods("^grad_cam")[:2]
    ['grad_cam', 'grad_cam_timeseries']
    """
    from .registry import list_presets

    names = set(list_presets())
    bodies = list(SIMPLE_BODIES) + ["epsilon_0_1", "epsilon_0_25_std_x", "alpha_1_beta_0", "alpha_2_beta_1"]
    for prefix in PREFIXES:
        for body in bodies:
            names.add(f"{prefix}_{body}")
    for body in ("epsilon_0_1", "epsilon_0_25_std_x", "z", "sequential_composite_a"):
        for mu in (0.0, 0.5, -0.5):
            names.add(f"lrpsign_{body}_mu_{_number_text(mu)}")
    for body in bodies:
        names.add(f"zblrp_{body}_VGG16ILSVRC")
    for base in NON_LRP_BASES:
        for suffix in MODIFIER_SUFFIXES:
            names.add(base + suffix)
    for body in ("epsilon_0_1", "alpha_1_beta_0", "z_plus", "gamma", "flat", "w_square"):
        for suffix in MODIFIER_SUFFIXES[1:4]:
            names.add(f"lrp_{body}{suffix}")
    out = sorted(names)
    if pattern:
        rx = re.compile(pattern)
        out = [n for n in out if rx.search(n)]
    return out
