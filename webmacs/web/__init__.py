"""The live page's files (``static/``), shipped as package data and served by :mod:`webmacs.http.web`.

Plain HTML, CSS and ES modules plus a vendored copy of uPlot: nothing to build, nothing fetched
from the internet (lab machines often have none).
"""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
