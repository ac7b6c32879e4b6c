"""Deprecated: moved to :mod:`vcompute.verify.freivalds.tolerance`; this path re-exports it for outside code.

vcompute itself imports the new path (``tests/test_layers.py`` checks).
"""

import sys
import warnings

import vcompute.verify.freivalds.tolerance as _moved

warnings.warn("vcompute.verify.tolerance is deprecated: import vcompute.verify.freivalds.tolerance", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
