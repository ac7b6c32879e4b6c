"""Deprecated: moved to :mod:`vcompute.verify.freivalds.kernel`; this path re-exports it for outside code.

vcompute itself imports the new path (``tests/test_layers.py`` checks).
"""

import sys
import warnings

import vcompute.verify.freivalds.kernel as _moved

warnings.warn("vcompute.verify.freivalds_kernel is deprecated: import vcompute.verify.freivalds.kernel", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
