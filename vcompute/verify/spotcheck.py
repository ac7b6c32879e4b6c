"""Deprecated: moved to :mod:`vcompute.verify.replication.spotcheck`; this path re-exports it for outside code.

vcompute itself imports the new path (``tests/test_layers.py`` checks).
"""

import sys
import warnings

import vcompute.verify.replication.spotcheck as _moved

warnings.warn("vcompute.verify.spotcheck is deprecated: import vcompute.verify.replication.spotcheck", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
