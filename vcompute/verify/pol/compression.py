"""Deprecated: moved to :mod:`vcompute.workloads.training.pol.compression`; this path re-exports it for outside code.

vcompute itself imports the new path (``tests/test_layers.py`` checks).
"""

import sys
import warnings

import vcompute.workloads.training.pol.compression as _moved

warnings.warn("vcompute.verify.pol.compression is deprecated: import vcompute.workloads.training.pol.compression", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
