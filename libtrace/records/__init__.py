"""Live L7 records: tracer events → reassembly → inference → parsers → pairing → dicts."""

from ._conversation import Conversation, endpoint_text

__all__ = ["Conversation", "endpoint_text"]
