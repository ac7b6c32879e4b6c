"""Deprecated: moved to :mod:`vcompute.verify.freivalds._fused_kernels`; this path re-exports it for outside code.

vcompute itself imports the new path (``tests/test_layers.py`` checks).
"""

import sys
import warnings

import vcompute.verify.freivalds._fused_kernels as _moved

warnings.warn("vcompute.verify._fused_kernels is deprecated: import vcompute.verify.freivalds._fused_kernels", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
