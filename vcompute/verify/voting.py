"""Deprecated: moved to :mod:`vcompute.trust.voting`; this path re-exports it for outside code.

vcompute itself imports the new path (``tests/test_layers.py`` checks).
"""

import sys
import warnings

import vcompute.trust.voting as _moved

warnings.warn("vcompute.verify.voting is deprecated: import vcompute.trust.voting", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
