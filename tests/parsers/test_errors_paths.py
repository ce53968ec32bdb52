"""The parsers' exceptions as callers see them."""

from __future__ import annotations

import pytest

from libtrace.errors import ProtocolError
from libtrace.parsers import UnknownProtocolError, parser_for


def test_an_unknown_protocol_names_itself_and_the_known_ones_in_plain_text() -> None:
    with pytest.raises(UnknownProtocolError) as raised:
        parser_for("gopher")
    assert isinstance(raised.value, ProtocolError) and isinstance(raised.value, KeyError)
    # KeyError's str() would be the repr, quotes and all
    assert str(raised.value).startswith("no parser for protocol 'gopher' (have ")
    assert "dns" in str(raised.value) and not str(raised.value).startswith('"')
