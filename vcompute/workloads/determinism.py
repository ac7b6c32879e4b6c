"""Deprecated: moved to :mod:`vcompute.verify.replication.determinism`; this path re-exports it for outside code.

vcompute itself imports the new path (``tests/test_layers.py`` checks).
"""

import sys
import warnings

import vcompute.verify.replication.determinism as _moved

warnings.warn("vcompute.workloads.determinism is deprecated: import vcompute.verify.replication.determinism", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
