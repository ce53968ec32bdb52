"""The Hessian 2.0 sliver of the Dubbo parser, for code outside the parsers.

The encoders and readers live in the compiled ``_hessian2`` (see
:mod:`libtrace.compiled`); this module is their public name, used by the FAKE
Dubbo server of :mod:`libtrace.services` to read request prefixes and write
responses in the same forms the parser reads.
"""

from __future__ import annotations

from ._hessian2 import MAX_STRING_CHUNKS, encode_int, encode_string, read_int, read_string

__all__ = ["MAX_STRING_CHUNKS", "encode_int", "encode_string", "read_int", "read_string"]
