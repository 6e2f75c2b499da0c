"""Adapter for ../shared/reference/compare.py: ``--impl tests.reference_adapter:explain``."""
import composer


def explain(model, x, method, target):
    return composer.explain(model, x, method, target=target)
