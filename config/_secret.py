"""Secrets read from the config: they compare by value and never print."""

from __future__ import annotations

from typing import Final

_ENV_PREFIXES: Final = ("env:", "os.environ/")


class Secret:
    """A credential. ``repr``/``str`` show where it came from, never its value."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str = "inline") -> None:
        self._value = value
        self.source = source

    def reveal(self) -> str:
        """The credential itself, for building a provider request and nothing else."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.redacted()!r})"

    __str__ = __repr__

    def redacted(self) -> str:
        return f"{self.source} (***)" if self.source != "inline" else "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def env_reference(text: str) -> str | None:
    """The variable name of an ``env:NAME`` / ``os.environ/NAME`` reference, else None."""
    for prefix in _ENV_PREFIXES:
        if text.startswith(prefix):
            return text[len(prefix) :].strip()
    return None
