"""Deprecated: moved to :mod:`vcompute.verify.freivalds.model._jax`; this path re-exports it for outside code.

vcompute itself imports the new path (``tests/test_layers.py`` checks).
"""

import sys
import warnings

import vcompute.verify.freivalds.model._jax as _moved

warnings.warn("vcompute.verify.model._jax is deprecated: import vcompute.verify.freivalds.model._jax", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
