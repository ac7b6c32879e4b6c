"""Deprecated: moved to :mod:`vcompute.workloads.training.pol.adversaries`; this path re-exports it for outside code.

vcompute itself imports the new path (``tests/test_layers.py`` checks).
"""

import sys
import warnings

import vcompute.workloads.training.pol.adversaries as _moved

warnings.warn("vcompute.verify.pol.adversaries is deprecated: import vcompute.workloads.training.pol.adversaries", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
