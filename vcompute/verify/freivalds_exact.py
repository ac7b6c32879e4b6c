"""Deprecated: moved to :mod:`vcompute.verify.freivalds.exact`; this path re-exports it for outside code.

vcompute itself imports the new path (``tests/test_layers.py`` checks).
"""

import sys
import warnings

import vcompute.verify.freivalds.exact as _moved

warnings.warn("vcompute.verify.freivalds_exact is deprecated: import vcompute.verify.freivalds.exact", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
