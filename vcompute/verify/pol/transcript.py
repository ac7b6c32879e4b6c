"""Deprecated: moved to :mod:`vcompute.workloads.training.pol.transcript`; this path re-exports it for outside code.

vcompute itself imports the new path (``tests/test_layers.py`` checks).
"""

import sys
import warnings

import vcompute.workloads.training.pol.transcript as _moved

warnings.warn("vcompute.verify.pol.transcript is deprecated: import vcompute.workloads.training.pol.transcript", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
