"""Deprecated: moved to :mod:`vcompute.trust.correlated`; this path re-exports it for outside code.

vcompute itself imports the new path (``tests/test_layers.py`` checks).
"""

import sys
import warnings

import vcompute.trust.correlated as _moved

warnings.warn("vcompute.verify.correlated is deprecated: import vcompute.trust.correlated", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
