"""Deprecated: moved to :mod:`vcompute.verify.freivalds.model._output`; this path re-exports it for outside code.

vcompute itself imports the new path (``tests/test_layers.py`` checks).
"""

import sys
import warnings

import vcompute.verify.freivalds.model._output as _moved

warnings.warn("vcompute.verify.model._output is deprecated: import vcompute.verify.freivalds.model._output", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
