"""Sphinx configuration of deploybench's documentation site.

Built from Markdown (MyST) with the Furo theme; the command-line reference comes from
``cli.py``'s own parser (sphinx-argparse) and the configuration and zoo tables from the
code (``docs/_ext/deploybench_docs.py``), so none of them is kept by hand. Build:
``python -m sphinx -W -b html docs docs/_build/html``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent / "_ext")]

project = "deploybench"
author = "the deploybench authors"
copyright = "2026, the deploybench authors"  # noqa: A001 - Sphinx's own name

extensions = ["myst_parser", "sphinxarg.ext", "deploybench_docs"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
smartquotes = False  # "--flag" stays two hyphens, not a dash

html_theme = "furo"
html_title = "deploybench"
