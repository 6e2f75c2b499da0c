"""Hooks that zennit lacks, written to the TF reference's maths (``docs/reference.md``).

Each class is registered by name so that ``rule_specs/*.yaml`` can refer to it; zennit's own rules
are reachable from specs as ``zennit:<Name>``.
"""
from .alpha_beta import AlphaBetaHook
from .base import HOOKS, register_hook, safe_divide, sign_map
from .epsilon import EpsilonHook
from .gamma import ReferenceGammaHook
from .gradient import GradientHook
from .norm import NormHook
from .transformer import IdentityRuleHook, ImplicitZHook, NormIdentityHook, StopHook, UniformHook
from .wsquare import WSquareHook
from .zbox import ZBoxHook

__all__ = ["HOOKS", "register_hook", "safe_divide", "sign_map", "EpsilonHook", "AlphaBetaHook",
           "ReferenceGammaHook", "GradientHook", "NormHook", "WSquareHook", "ZBoxHook",
           "IdentityRuleHook", "ImplicitZHook", "NormIdentityHook", "StopHook", "UniformHook"]
