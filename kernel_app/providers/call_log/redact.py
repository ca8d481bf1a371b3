"""Secrets never reach the call log: API keys, Authorization headers, the database password.

A ``Redactor`` knows the secret values of this process (the providers' API keys from the environment,
the password in ``database_url`` or PGPASSWORD) and removes them wherever they appear: in the prompt, the
answer, the settings and the function arguments. Settings keys that name a secret (``api_key``,
``Authorization``, ``password``...) lose their value whatever it is, and text shaped like a bearer
token, an OpenAI key or a URL with a password is masked even when its value is not known here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

REDACTED = "[redacted]"
# Environment variables that hold credentials of the services we talk to, and any *_KEY / *_TOKEN /
# *_SECRET / *_PASSWORD variable: their values are removed wherever they appear.
SECRET_ENV = ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "AZURE_CLIENT_SECRET", "PGPASSWORD")
SECRET_ENV_SUFFIXES = ("_KEY", "_TOKEN", "_SECRET", "_PASSWORD", "_PASSWD")
MIN_SECRET = 6  # shorter values ("1", "yes") would mask ordinary words
SECRET_KEY = re.compile(
    r"(?i)^(api[-_]?key|x[-_]api[-_]key|authorization|proxy[-_]authorization|password|passwd|secret|client[-_]secret|"
    r"access[-_]?token|refresh[-_]?token|token|bearer|cookie|set[-_]cookie|ad[-_]token|azure[-_]ad[-_]token)$"
)
PATTERNS = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}"), r"\1 " + REDACTED),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"), REDACTED),
    # scheme://user:password@host: the password goes, the rest stays readable.
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]+):[^\s@/]+@"), r"\1:" + REDACTED + "@"),
)


CACHE_SIZE = 2048  # texts remembered as redacted


def _may_match(text: str) -> bool:
    """A cheap look for what PATTERNS find, so that most texts skip the regular expressions."""
    if "sk-" in text or ("://" in text and "@" in text):
        return True
    lowered = text.lower()
    return "bearer" in lowered or "basic" in lowered


class Redactor:
    """``Redactor(secrets).text(s)`` / ``.value(obj)``: ``s`` or ``obj`` with every secret removed."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so that a secret containing another is removed whole.
        self.secrets = sorted({s for s in secrets if s and len(s) >= MIN_SECRET}, key=len, reverse=True)
        self._done: dict[str, str] = {}

    @classmethod
    def from_environment(cls, database_url: str | None = None, extra: Iterable[str] = ()) -> Redactor:
        secrets = [os.environ.get(name, "") for name in SECRET_ENV]
        secrets += [value for name, value in os.environ.items() if name.upper().endswith(SECRET_ENV_SUFFIXES)]
        if database_url:
            secrets += url_passwords(database_url)
        return cls([*secrets, *extra])

    def text(self, text: str) -> str:
        # A conversation's earlier messages come back in every later call: each text is redacted once.
        done = self._done.get(text)
        if done is not None:
            return done
        clean = text
        for secret in self.secrets:
            if secret in clean:
                clean = clean.replace(secret, REDACTED)
        if _may_match(clean):
            for pattern, replacement in PATTERNS:
                clean = pattern.sub(replacement, clean)
        if len(self._done) >= CACHE_SIZE:
            self._done.clear()
        self._done[text] = clean
        return clean

    def value(self, value: Any) -> Any:
        """A JSON-ready value with secrets removed: by key for mappings, by content for text."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {
                str(k): REDACTED if SECRET_KEY.match(str(k)) and v not in (None, "") else self.value(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value


def url_passwords(url: str) -> list[str]:
    """The password of a URL (``postgresql://user:pw@host/db``) or of a key=value conninfo, as written and decoded."""
    found: list[str] = []
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password:
        found += [password, unquote(password)]
    match = re.search(r"(?:^|\s|[?&])password=([^\s&]+)", url)
    if match:
        found += [match.group(1), unquote(match.group(1))]
    return found
