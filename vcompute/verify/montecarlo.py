"""Deprecated: moved to :mod:`vcompute.trust.montecarlo`; this path re-exports it for outside code.

vcompute itself imports the new path (``tests/test_layers.py`` checks).
"""

import sys
import warnings

import vcompute.trust.montecarlo as _moved

warnings.warn("vcompute.verify.montecarlo is deprecated: import vcompute.trust.montecarlo", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
