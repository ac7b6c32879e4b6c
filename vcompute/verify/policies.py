"""Deprecated: moved to :mod:`vcompute.trust.policies`; this path re-exports it for outside code.

vcompute itself imports the new path (``tests/test_layers.py`` checks).
"""

import sys
import warnings

import vcompute.trust.policies as _moved

warnings.warn("vcompute.verify.policies is deprecated: import vcompute.trust.policies", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
