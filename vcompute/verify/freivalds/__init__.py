"""Freivalds' scheme: randomised checks of linear algebra, from one product to a whole model.

One subpackage per scheme (``docs/dev/conventions.md``); this one holds

- :mod:`~vcompute.verify.freivalds.scheme`: :class:`Freivalds`, the check of
  ``C = A @ B (+ bias)`` (float with a rounding tolerance, integer exactly);
- :mod:`~vcompute.verify.freivalds.tolerance`: the float rounding model;
- :mod:`~vcompute.verify.freivalds.exact`: integer products over prime fields;
- :mod:`~vcompute.verify.freivalds.conv`: convolutions as products;
- :mod:`~vcompute.verify.freivalds.validate`: claim screening for products;
- :mod:`~vcompute.verify.freivalds.fused`, :mod:`~vcompute.verify.freivalds.kernel`:
  the fused / compiled kernels that make the check cheap;
- :mod:`~vcompute.verify.freivalds.model`: whole torch / JAX models, every
  linear layer checked and the glue recomputed.
"""

from vcompute.verify.freivalds.scheme import Freivalds, PreparedMatrix, unit_roundoff

__all__ = ["Freivalds", "PreparedMatrix", "unit_roundoff"]
