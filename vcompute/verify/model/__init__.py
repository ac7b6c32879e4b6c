"""Deprecated: moved to :mod:`vcompute.verify.freivalds.model`; this path re-exports it for outside code.

vcompute itself imports the new path (``tests/test_layers.py`` checks).
"""

import warnings

from vcompute.verify.freivalds.model import *  # noqa: F403
from vcompute.verify.freivalds.model import __all__  # noqa: F401

warnings.warn("vcompute.verify.model is deprecated: import vcompute.verify.freivalds.model",
              DeprecationWarning, stacklevel=2)
