"""Make the repository root importable when the project is not installed.

Redundant once the package is installed (``pip install -e .``) or pytest's
``pythonpath = ["."]`` is set in pyproject.toml.
"""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[3])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
