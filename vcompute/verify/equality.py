"""Deprecated: moved to :mod:`vcompute.verify.replication.equality`; this path re-exports it for outside code.

vcompute itself imports the new path (``tests/test_layers.py`` checks).
"""

import sys
import warnings

import vcompute.verify.replication.equality as _moved

warnings.warn("vcompute.verify.equality is deprecated: import vcompute.verify.replication.equality", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
