"""Secrets taken out of messages before they become records: on by default.

Theory of operation: a tracer sees whatever a process sends, passwords and
tokens included.  Each protocol's spec names a ``redact`` rule (a function of
its module, next to its message classes) that returns the message with the
secret-bearing values replaced by :data:`REDACTED`; the flow layer's
:class:`~libtrace.flows.Conversation` applies it to every message before
pairing, so no record, live or from a capture, and no output made from one
holds the secret.  :class:`Redaction` is the policy (which header names,
which query parameters, whether every SQL literal goes) and counts what it
replaced.  ``Redaction.off()`` (``--no-redact``) keeps everything.

What each protocol's rule covers is listed in the README's Security section;
values a parser never keeps (an MQTT CONNECT password, Kafka SASL bytes, the
MySQL handshake's auth data, request bodies) cannot leak through records.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import unquote_plus

#: What stands where a secret was.
REDACTED = "<redacted>"
#: Header names whose values are credentials (compared in lower case).
DEFAULT_HEADERS = frozenset({
    "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key",
    "x-auth-token", "x-amz-security-token",
})  # fmt: skip
#: A query parameter whose name contains one of these (lower case) is redacted.
DEFAULT_QUERY_WORDS = frozenset({
    "password", "passwd", "pwd", "token", "secret", "api_key", "apikey", "access_key",
    "signature", "credential", "auth",
})  # fmt: skip

#: A quoted SQL string, either quote, with backslash escapes and doubled quotes.
_QUOTED = r"""'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*["]"""
#: SQL that sets a credential, with the literal to hide in the group "secret".
_SQL_SECRETS = tuple(re.compile(f"(?i){prefix}(?P<secret>{_QUOTED})") for prefix in (
    r"\bIDENTIFIED\s+(?:WITH\s+\S+\s+)?(?:BY|AS)\s+",  # CREATE/ALTER USER, GRANT
    r"\bPASSWORD\s*\(\s*",  # PASSWORD('...')
    r"\bSET\s+PASSWORD\b[^=]*=\s*",  # SET PASSWORD [FOR user] = '...'
))  # fmt: skip
#: Every SQL literal: strings, hexadecimal and numbers (for shapes without data).
_SQL_LITERAL = re.compile(f"{_QUOTED}|\\b0x[0-9a-fA-F]+\\b|(?<![\\w.])-?\\d+(?:\\.\\d+)?\\b")


@dataclass(slots=True)
class Redaction:
    """What to take out of messages, and how many values were.

    Attributes:
        enabled: False keeps every value (``--no-redact``).
        headers: header names (lower case) whose values are secrets.
        query_words: a query parameter whose lower-case name contains one of
            these is a secret.
        sql_literals: replace every literal of a SQL statement with ``?``
            (statement shapes without data), not only credentials.
        count: values replaced so far.
    """

    enabled: bool = True
    headers: frozenset[str] = DEFAULT_HEADERS
    query_words: frozenset[str] = DEFAULT_QUERY_WORDS
    sql_literals: bool = False
    count: int = field(default=0, compare=False)

    @classmethod
    def off(cls) -> Redaction:
        return cls(enabled=False)

    def with_headers(self, names: Iterable[str]) -> Redaction:
        """This policy with more header names (``--redact-header``)."""
        extra = frozenset(name.strip().lower() for name in names if name.strip())
        return Redaction(self.enabled, self.headers | extra, self.query_words, self.sql_literals)

    def secret(self, value: str | None) -> str | None:
        """``value`` replaced (counted), or None if there was none."""
        if value is None:
            return None
        self.count += 1
        return REDACTED

    def header_pairs(self, headers: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
        """Headers with the values of secret names replaced (and HTTP/2's ``:path``
        pseudo-header with its credential-like query parameters)."""
        out, changed = [], False
        for name, value in headers:
            lower = name.lower()
            if lower in self.headers:
                self.count += 1
                value, changed = REDACTED, True
            elif lower == ":path":
                path = self.path(value)
                value, changed = path or "", changed or path is not value
            out.append((name, value))
        return tuple(out) if changed else headers

    def path(self, path: str | None) -> str | None:
        """A request target with the values of credential-like query parameters
        replaced; the rest stays as it was sent."""
        if path is None or "?" not in path:
            return path
        base, _, query = path.partition("?")
        query, hash_mark, fragment = query.partition("#")
        parts = query.split("&")
        for i, part in enumerate(parts):
            name, equals, _ = part.partition("=")
            if equals and self._secret_name(unquote_plus(name)):
                self.count += 1
                parts[i] = f"{name}={REDACTED}"
        redacted = f"{base}?{'&'.join(parts)}{hash_mark}{fragment}"
        return path if redacted == path else redacted

    def sql(self, query: str | None) -> str | None:
        """A statement with credential literals replaced (every literal with ``sql_literals``)."""
        if query is None:
            return None
        if self.sql_literals:
            query, n = without_literals(query)
            self.count += n
            return query
        for pattern in _SQL_SECRETS:
            query, n = pattern.subn(_keep_all_but_secret, query)
            self.count += n
        return query

    def _secret_name(self, name: str) -> bool:
        lower = name.lower()
        return any(word in lower for word in self.query_words)


def without_literals(query: str) -> tuple[str, int]:
    """``query`` with every literal (strings, hexadecimal, numbers) replaced by
    ``?``, and how many were: its shape (``--redact-sql-literals``, ``libtrace stat``)."""
    return _SQL_LITERAL.subn("?", query)


def _keep_all_but_secret(match: re.Match[str]) -> str:
    start, end = match.span("secret")
    text = match.group(0)
    base = match.start()
    return f"{text[: start - base]}'{REDACTED}'{text[end - base:]}"
