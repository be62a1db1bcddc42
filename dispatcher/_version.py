"""The dispatcher's version: the installed distribution's, read once at import."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Final

DISTRIBUTION: Final = "llm-dispatcher"


def _installed_version() -> str:
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # a source tree on PYTHONPATH that was never installed
        return "0+unknown"


VERSION: Final = _installed_version()
"""What `dispatcher --version` prints and `dispatcher_build_info{version}` carries."""
