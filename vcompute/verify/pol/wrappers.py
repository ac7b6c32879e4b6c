"""Deprecated: moved to :mod:`vcompute.workloads.training.pol.wrappers`; this path re-exports it for outside code.

vcompute itself imports the new path (``tests/test_layers.py`` checks).
"""

import sys
import warnings

import vcompute.workloads.training.pol.wrappers as _moved

warnings.warn("vcompute.verify.pol.wrappers is deprecated: import vcompute.workloads.training.pol.wrappers", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
