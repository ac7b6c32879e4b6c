"""Deprecated: moved to :mod:`vcompute.verify.freivalds._fused_codegen`; this path re-exports it for outside code.

vcompute itself imports the new path (``tests/test_layers.py`` checks).
"""

import sys
import warnings

import vcompute.verify.freivalds._fused_codegen as _moved

warnings.warn("vcompute.verify._fused_codegen is deprecated: import vcompute.verify.freivalds._fused_codegen", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
