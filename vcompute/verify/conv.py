"""Deprecated: moved to :mod:`vcompute.verify.freivalds.conv`; this path re-exports it for outside code.

vcompute itself imports the new path (``tests/test_layers.py`` checks).
"""

import sys
import warnings

import vcompute.verify.freivalds.conv as _moved

warnings.warn("vcompute.verify.conv is deprecated: import vcompute.verify.freivalds.conv", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
