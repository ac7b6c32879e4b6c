"""Deprecated: moved to :mod:`vcompute.verify.freivalds.validate`; this path re-exports it for outside code.

vcompute itself imports the new path (``tests/test_layers.py`` checks).
"""

import sys
import warnings

import vcompute.verify.freivalds.validate as _moved

warnings.warn("vcompute.verify.freivalds_validate is deprecated: import vcompute.verify.freivalds.validate", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
