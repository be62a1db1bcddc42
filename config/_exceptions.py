"""Errors of the config layer.

ConfigError            the file cannot become a Config; names file, key and reason
"""

from __future__ import annotations


class ConfigError(Exception):
    """A config file could not be read, parsed or validated."""

    def __init__(self, file: str, key: str, reason: str) -> None:
        self.file = file
        self.key = key
        self.reason = reason
        where = f"{file}: {key}" if key else file
        super().__init__(f"{where}: {reason}")
