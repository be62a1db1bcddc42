"""Redaction of a deployment's secrets from provider text, before anything cuts it.

Provider text (error bodies, in-band stream errors, transport exception texts) reaches
502 bodies, job errors and the job store. An upstream may reflect the key it was sent.
Every such text passes one `Redactor`, built by the actor from its deployment's secrets,
at the one place where an attempt's failure is recorded: the whole text is redacted
first and cut to `MESSAGE_CHARS` after, so a key straddling the cut cannot leave its
prefix behind. Texts that arrive already cut (at a ``…`` or at their end) also lose a
trailing piece that begins a secret.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Final, Protocol, runtime_checkable

import msgspec

from config import Deployment

MESSAGE_CHARS: Final = 500
"""The longest failure message kept from a provider (after redaction)."""
MIN_SECRET_CHARS: Final = 8
"""Shorter configured values (test placeholders, "none") are not searched for."""
MIN_PARTIAL_CHARS: Final = 4
"""A cut text ending in at least this many leading characters of a secret loses them."""
REDACTED: Final = "***"
CUT: Final = "…"

_SECRET_HEADER: Final = re.compile(
    r"auth|key|token|secret|signature|cookie|password|credential", re.I
)


@runtime_checkable
class SecretSource(Protocol):
    """Something that learns secrets at run time (a request signer's credentials)."""

    def secrets(self) -> tuple[str, ...]:
        """The secrets it holds now (no I/O)."""
        ...


class Redactor:
    """Replaces every known secret in a text with ``***``.

    `secrets` are fixed at construction; `more`, when given, is asked on every use for
    secrets that appear later (credentials a signer resolves at run time).
    """

    __slots__ = ("_given", "_more", "_secrets")

    def __init__(
        self, secrets: Iterable[str], more: Callable[[], Iterable[str]] | None = None
    ) -> None:
        self._given = tuple(secrets)
        self._secrets = _variants(self._given)
        self._more = more

    def __repr__(self) -> str:
        return f"<Redactor [{len(self._secrets)} secrets{' + signer' if self._more else ''}]>"

    def secrets(self) -> tuple[str, ...]:
        """What is searched for, longest first (also JSON-escaped forms)."""
        if self._more is None:
            return self._secrets
        more = tuple(self._more())
        return _variants((*self._given, *more)) if more else self._secrets

    def __call__(self, text: str) -> str:
        """`text` with every secret replaced (whole occurrences only)."""
        return _replace(text, self.secrets())

    def cut(self, text: str, limit: int = MESSAGE_CHARS) -> str:
        """`text` redacted whole, then cut to `limit` characters (``…`` marks the cut).

        A piece that begins a secret and ends at a cut (ours, or one made before the
        text got here) is redacted too.
        """
        secrets = self.secrets()
        text = _replace(text, secrets)
        if len(text) > limit:
            text = text[: limit - 1] + CUT
        if not secrets:
            return text
        ends = [len(text)]
        at = text.rfind(CUT)
        while at >= 0:
            ends.append(at)
            at = text.rfind(CUT, 0, at)
        for end in ends:  # right to left: earlier positions stay valid
            start = _partial_start(text, end, secrets)
            if start < end:
                text = text[:start] + REDACTED + text[end:]
        return text


def _replace(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:  # longest first: a secret containing another goes whole
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _partial_start(text: str, end: int, secrets: tuple[str, ...]) -> int:
    """Where the longest piece of `text` ending at `end` that begins a secret starts."""
    best = end
    for secret in secrets:
        for size in range(min(len(secret) - 1, end), MIN_PARTIAL_CHARS - 1, -1):
            if end - size < best and text.startswith(secret[:size], end - size):
                best = end - size
                break
    return best


def _variants(secrets: Iterable[str]) -> tuple[str, ...]:
    """Each secret as sent and as a JSON body may quote it, longest first."""
    found: set[str] = set()
    for secret in secrets:
        if len(secret) < MIN_SECRET_CHARS:
            continue
        quoted = msgspec.json.encode(secret).decode()[1:-1]
        found.update((secret, quoted, quoted.replace("/", "\\/")))
    return tuple(sorted(found, key=len, reverse=True))


def redactor_for(spec: Deployment, auth: object = None) -> Redactor:
    """The redactor of a deployment: its configured secrets, and its signer's if it has one."""
    return Redactor(
        deployment_secrets(spec), auth.secrets if isinstance(auth, SecretSource) else None
    )


def deployment_secrets(spec: Deployment) -> tuple[str, ...]:
    """Every secret a deployment's config holds: its api_key, the password in its api_base,
    and the values of headers whose names say they are credentials."""
    found: list[str] = []
    if spec.api_key is not None:
        found.append(spec.api_key.reveal())
    if spec.api_base:
        password = urllib.parse.urlsplit(spec.api_base).password
        if password:
            found += (password, urllib.parse.unquote(password))
    for name, value in spec.headers.items():
        if _SECRET_HEADER.search(name):
            found += (value, *value.split())  # "Bearer abc": the token alone too
    return tuple(found)
