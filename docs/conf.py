"""Sphinx configuration: furo, MyST (+ executed MyST-NB tutorials), autodoc + napoleon.

Builds offline (no intersphinx; MathJax bundled) with warnings as errors: ``make docs``.
The built pages load no remote script, style or font (``vcompute_docs`` checks).
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

import vcompute  # noqa: E402

project = "vcompute"
author = "vcompute developers"
copyright = "vcompute developers"
release = vcompute.__version__
version = release

extensions = [
    "myst_nb",  # MyST Markdown pages and executable MyST notebooks (includes myst_parser)
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax from the package, copied into _static: maths renders offline
    "sphinx.ext.viewcode",
    "vcompute_docs",  # pages generated from proofs/, protocols/, experiments/ and the package
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb"}
# Generated pages are sources under _build/_gen; everything else in _build is output.
exclude_patterns = ["_build/[!_]*/**", "_build/.*/**", "_build/ipython/**", "jupyter_execute", "**/.ipynb_checkpoints", "README.md"]
templates_path: list[str] = []

# --- theme
html_theme = "furo"
html_title = f"vcompute {release}"
html_static_path = ["_static"]
html_show_sourcelink = False

# --- MyST
myst_enable_extensions = ["colon_fence", "dollarmath", "amsmath", "deflist", "tasklist", "attrs_inline"]
myst_heading_anchors = 3

# --- quiet, self-contained kernels: tutorial kernels keep IPython's profile under
# _build and log only errors (the kernel's "running over TCP" warning is about
# a loopback socket of the build itself); nbclient's per-notebook INFO lines go.
import logging  # noqa: E402
import os  # noqa: E402

_IPYTHON = DOCS / "_build" / "ipython"
(_IPYTHON / "profile_default").mkdir(parents=True, exist_ok=True)
(_IPYTHON / "profile_default" / "ipython_kernel_config.py").write_text('c.IPKernelApp.log_level = "ERROR"\n')
os.environ["IPYTHONDIR"] = str(_IPYTHON)
logging.getLogger("traitlets").setLevel(logging.WARNING)

# --- MyST-NB: tutorials execute at build time, cached between builds by content.
nb_execution_mode = "cache"
nb_execution_cache_path = str(DOCS / "_build" / ".jupyter_cache")
nb_execution_timeout = 180
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True

# --- autodoc / napoleon
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_member_order = "bysource"
autodoc_inherit_docstrings = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_attr_annotations = True

# No network: no intersphinx. References to types outside vcompute stay plain text.
nitpicky = False
# Two classes are named Tolerance (vcompute.verify.replication.equality: replication's comparison; vcompute.verify.
# inference.tolerance: the LLM verifier's calibrated bands). autodoc links a bare type annotation
# by name, so a signature that mentions one finds both; prose references are written fully
# qualified instead. Only the ambiguous-link warning of the Python domain is silenced.
suppress_warnings: list[str] = ["ref.python"]


# --- docstrings: |x| is an absolute value and *args an argument, not reST markup
# Numerical docstrings write norms and absolute values as |x| or |A(BR) - CR|,
# which reST reads as substitution references (we define none) and reports as
# errors. Escape such bars, except in literals, doctest lines and tables.
import re  # noqa: E402

_SUBST = re.compile(r"(?<![\\|\w])\|(?=\S)([^|\n]*?\S)\|(?![|\w])")
# ``*args`` written bare (``fn: the model; *args: its arguments``) opens an
# emphasis that never closes: escape a star before a name, outside literals
# and well-formed *emphasis*.
_STAR = re.compile(r"(?<![\\*\w`])(\*{1,2})(?=[A-Za-z_])")
_LITERAL = re.compile(r"(``.+?``|`[^`]+`|(?<![\w*])\*{1,2}[^\s*][^*]*?(?<=\S)\*{1,2}(?![\w*]))")


def _escape_bars(app, what, name, obj, options, lines):  # noqa: ARG001 - Sphinx signature
    for i, line in enumerate(lines):
        s = line.lstrip()
        if s.startswith((">>>", "...", "|", "+")) or ("|" not in line and "*" not in line):
            continue
        parts = _LITERAL.split(line)
        lines[i] = "".join(p if k % 2 else _STAR.sub(lambda m: "\\*" * len(m.group(1)), _SUBST.sub(r"\\|\1\\|", p))
                           for k, p in enumerate(parts))


def setup(app):
    """Connect the docstring hooks."""
    app.connect("autodoc-process-docstring", _escape_bars)
