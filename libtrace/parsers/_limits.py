"""Every bound the parsers enforce, in one place, each with the reason for its value.

A parser never buffers, allocates or loops beyond these, whatever the length
fields of the bytes it is fed claim.  Change them here, not inline.
"""

from __future__ import annotations

#: Bytes a parser buffers per direction while waiting for the end of a message.
#: Bodies that are skipped (HTTP content, HTTP/2 DATA) do not count; a message
#: whose header part alone exceeds this is dropped with a Desync.  4 MiB holds
#: any realistic Redis reply, DNS message, HTTP head or Kafka request header.
MAX_BUFFER_BYTES = 4 * 1024 * 1024

#: Largest single message (frame, packet, RESP value) whose bytes are parsed
#: rather than skipped.  Equal to the buffer bound: a message must fit in it.
MAX_MESSAGE_BYTES = MAX_BUFFER_BYTES

#: Bytes kept while hunting for a message start after a desync: enough for a
#: long HTTP request line, small enough that rescanning stays cheap.
MAX_RESYNC_TAIL = 8 * 1024

#: HTTP/1 head (request or status line plus headers).  nginx's default
#: large_client_header_buffers is 4 x 8 KiB; 64 KiB covers every server.
MAX_HTTP_HEAD_BYTES = 64 * 1024

#: Largest HTTP/1 body or chunk size believed (the largest off_t, 2**63 - 1):
#: a Content-Length or chunk-size beyond it (30 hex digits, as in other
#: tracers' integer-overflow incidents) is malformed, as nginx and Go's
#: net/http also refuse it, instead of a body skipped to the end of the stream
#: (which would swallow every pipelined message after it).
MAX_HTTP_BODY_BYTES = (1 << 63) - 1

#: Header fields per HTTP message (HTTP/1 and HTTP/2); Apache stops at 100.
MAX_HEADERS = 256

#: HTTP/2 streams tracked at once per connection; the default
#: SETTINGS_MAX_CONCURRENT_STREAMS of common servers is 100-250.
MAX_H2_STREAMS = 1024

#: An HTTP/2 frame other than DATA must fit the buffer to be parsed; DATA is skipped.
MAX_H2_FRAME_BYTES = MAX_BUFFER_BYTES

#: HPACK dynamic table size the decoder accepts (the default is 4096; servers
#: rarely advertise more than 64 KiB).
MAX_HPACK_TABLE_BYTES = 64 * 1024

#: Decoded header list size per HTTP/2 header block (h2's default is 64 KiB).
MAX_HPACK_HEADER_LIST_BYTES = 256 * 1024

#: RESP nesting depth (arrays in arrays); Redis itself replies at most ~7 deep.
MAX_RESP_DEPTH = 32

#: A RESP line (simple string, error, number, inline command); Redis's own
#: inline limit is 64 KiB.
MAX_RESP_LINE_BYTES = 64 * 1024

#: Arguments kept in a record (the rest are counted, not kept).
MAX_ARGS_KEPT = 16

#: Characters kept of any string that goes into a record (arguments, queries,
#: paths, errors); longer strings are cut and end with an ellipsis.
MAX_FIELD_CHARS = 512

#: Answers kept in a DNS record.
MAX_DNS_ANSWERS_KEPT = 32

#: Requests waiting for their response per connection in the pairing layer;
#: beyond this the oldest is emitted unpaired ("unknown").
MAX_PENDING_REQUESTS = 4096

#: Bytes at the start of a direction that protocol inference looks at.
MAX_INFERENCE_BYTES = 4096

#: Bytes of a varint (unsigned LEB128): 10 bytes carry 64 bits.
MAX_VARINT_BYTES = 10
