"""Deprecated: moved to :mod:`vcompute.verify.freivalds.fused`; this path re-exports it for outside code.

vcompute itself imports the new path (``tests/test_layers.py`` checks).
"""

import sys
import warnings

import vcompute.verify.freivalds.fused as _moved

warnings.warn("vcompute.verify.freivalds_fused is deprecated: import vcompute.verify.freivalds.fused", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
