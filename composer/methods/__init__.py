"""Attributors (how a map is computed) and modifiers (what is done to it afterwards).

A method preset names one attributor and any number of modifiers; LRP presets use the
``gradient`` attributor with their composite registered, starting from the target logit.
Attributors receive a :class:`Backprop`, which runs the model with the preset's composite.
Each module registers its own: :mod:`.gradients`, :mod:`.gradcam`, :mod:`.deeplift`, :mod:`.modifiers`.
"""
from .base import ATTRIBUTORS, MODIFIERS, Backprop, attributor, check_attributor, check_modifier, modifier
from . import deeplift, gradcam, gradients, modifiers  # noqa: E402,F401  (they register themselves)

__all__ = ["ATTRIBUTORS", "MODIFIERS", "Backprop", "attributor", "check_attributor", "check_modifier",
           "modifier"]
