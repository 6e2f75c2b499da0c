"""Graph canonization: any model, as its hand-written module twin, checked for coverage.

See ``docs/your-model.md``. :func:`canonize` gives the twin a preset is applied to;
:func:`uncovered` lists the operations of a twin that no rule covers.
"""
from .canonical import GraphInfo, borrow, canonize, clear_cache, graph_info, register_leaf
from .coverage import Uncovered, functional_uncovered, uncovered
from .modules import ElementwiseConstant, Mean
from .twin import structural_copy

__all__ = ["GraphInfo", "borrow", "canonize", "clear_cache", "graph_info", "register_leaf", "Uncovered", "functional_uncovered", "uncovered",
           "ElementwiseConstant", "Mean", "structural_copy"]
