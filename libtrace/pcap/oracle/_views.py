"""The oracle's view of each protocol: tshark's PDUs -> messages -> records.

A view holds one connection.  Each message carries only the fields tshark
decoded, under libtrace's names; ``ours`` projects a libtrace message onto
the same names, and the comparison looks at the oracle's keys only (what
tshark does not know, it does not vouch for).  Pairing follows the
protocol's rule (in order; by stream, id, correlation id or packet id) or
tshark's own link between the two frames where its dissector makes one.
The name tables here (DNS types from dnspython, MQTT packet types, MySQL
commands, Kafka API keys) are the specifications' numbers.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import dns.opcode
import dns.rcode
import dns.rdatatype

from ...parsers import MAX_ARGS_KEPT, ApiKey
from ._tshark import Pdu, Tree, first, leaves, subtrees

Role = Literal["request", "response"]


@dataclass(slots=True)
class Message:
    sender: str  #: "client" or "server"
    ts_ns: int
    frame: int
    role: Role
    #: the fields tshark decoded; None: it could not decode this message
    fields: dict[str, Any] | None
    #: pairs a response with its request (None: in order)
    key: Hashable | None = None
    #: the frame of the request tshark says this response answers
    link: int | None = None
    #: whether the response says the exchange failed (None: tshark cannot tell)
    failed: bool | None = None
    #: False: a record alone (one-way request, unsolicited greeting)
    paired: bool = True
    #: an undecoded frame of responses that answers every request waiting for one
    #: (tshark lost count of the values in it; the server answers in order)
    answers_all: bool = False


@dataclass(frozen=True, slots=True)
class OracleRecord:
    """A record as the comparison sees it: ours projected, or tshark's."""

    client: str
    server: str
    request_ts: int | None
    request: dict[str, Any] | None
    response_ts: int | None
    response: dict[str, Any] | None
    failed: bool | None = None
    request_undecoded: bool = False
    response_undecoded: bool = False

    @property
    def first_ts(self) -> int:
        return self.request_ts if self.request_ts is not None else self.response_ts or 0

    def same_place(self, mine: OracleRecord) -> bool:
        return (mine.client, mine.server, mine.first_ts) == (
            self.client,
            self.server,
            self.first_ts,
        )

    def agrees(self, mine: OracleRecord) -> bool:
        """``mine`` (libtrace's, projected) says what this one says."""
        if (mine.client, mine.server) != (self.client, self.server):
            return False
        if (mine.request_ts, mine.response_ts) != (self.request_ts, self.response_ts):
            return False
        if self.failed is not None and mine.failed != self.failed:
            return False
        for theirs, ours, undecoded in (
            (self.request, mine.request, self.request_undecoded),
            (self.response, mine.response, self.response_undecoded),
        ):
            if undecoded:
                continue
            if (theirs is None) != (ours is None):
                return False
            if theirs is not None and not all(
                _same(ours.get(k, _MISSING), v)  # type: ignore[union-attr]
                for k, v in theirs.items()
            ):
                return False
        return True

    def describe(self) -> str:
        def side(ts: int | None, fields: dict[str, Any] | None, undecoded: bool) -> object:
            return ("undecoded" if undecoded else fields, ts)

        return (f"record {self.client} -> {self.server}: request "
                f"{side(self.request_ts, self.request, self.request_undecoded)}, response "
                f"{side(self.response_ts, self.response, self.response_undecoded)}"
                f", failed {self.failed}")  # fmt: skip


_MISSING = object()


def _same(ours: Any, theirs: Any) -> bool:
    """Equal, or ours is a text field libtrace clipped (ending in an ellipsis)."""
    if ours == theirs:
        return True
    return (
        isinstance(ours, str)
        and isinstance(theirs, str)
        and ours.endswith("…")
        and len(theirs) >= len(ours)
        and theirs.startswith(ours[:-1])
    )


class View:
    """One connection of one protocol, as tshark dissects it."""

    #: tshark's layer name in its JSON, its decode-as name, the transports
    layer: ClassVar[str] = ""
    dissector: ClassVar[str] = ""
    transports: ClassVar[tuple[str, ...]] = ("tcp",)

    def __init__(self, client: str, server: str) -> None:
        self.client, self.server = client, server
        self.messages: list[Message] = []

    def pdu(self, pdu: Pdu, sender: str) -> None:
        """Take one PDU tshark dissected."""
        raise NotImplementedError

    def unclaimed(self, pdu: Pdu, sender: str) -> None:
        """A segment whose message tshark saw begin but never got whole (by default
        nothing is said of it)."""

    @staticmethod
    def split(tree: Tree) -> list[Tree]:
        """One layer object of tshark's cut into PDUs (most dissectors: one each)."""
        return [tree]

    @staticmethod
    def ours(message: dict[str, Any], role: str) -> dict[str, Any]:
        """A libtrace record's message under the oracle's names."""
        return message

    @staticmethod
    def sent_by_server(pdu: Pdu) -> bool | None:
        """Whether the message says it came from the server (None: it does not say)."""
        return None

    def records(self) -> list[OracleRecord]:
        """The messages paired: by tshark's link, by key, else in order."""
        out: list[OracleRecord] = []
        fifo: deque[Message] = deque()
        keyed: dict[Hashable, Message] = {}
        by_frame: dict[int, list[Message]] = {}
        for message in sorted(self.messages, key=lambda m: m.ts_ns):
            if not message.paired:
                alone = message if message.role == "request" else None
                out.append(self._record(alone, None if alone else message))
                continue
            if message.role == "request":
                if message.key is None:
                    fifo.append(message)
                else:
                    previous = keyed.pop(message.key, None)
                    if previous is not None:
                        out.append(self._record(previous, None))
                    keyed[message.key] = message
                by_frame.setdefault(message.frame, []).append(message)
                continue
            if message.answers_all and len(fifo) > 1:
                while len(fifo) > 1:
                    waiting = fifo.popleft()
                    by_frame[waiting.frame].remove(waiting)
                    out.append(self._record(waiting, message))
            request: Message | None = None
            if message.link is not None and by_frame.get(message.link):
                request = by_frame[message.link][0]
                if request.key is not None:
                    keyed.pop(request.key, None)
                elif request in fifo:
                    fifo.remove(request)
            elif message.key is not None:
                request = keyed.pop(message.key, None)
            elif fifo:
                request = fifo.popleft()
            if request is not None:
                by_frame[request.frame].remove(request)
            out.append(self._record(request, message))
        out += [self._record(m, None) for m in [*fifo, *keyed.values()]]
        return out

    def _record(self, request: Message | None, response: Message | None) -> OracleRecord:
        def clean(message: Message | None) -> dict[str, Any] | None:
            if message is None or message.fields is None:
                return None
            return message.fields

        return OracleRecord(
            client=self.client, server=self.server,
            request_ts=request.ts_ns if request is not None else None, request=clean(request),
            response_ts=response.ts_ns if response is not None else None,
            response=clean(response),
            failed=response.failed if response is not None else None,
            request_undecoded=request is not None and request.fields is None,
            response_undecoded=response is not None and response.fields is None,
        )  # fmt: skip


def _int(value: str | None) -> int | None:
    return int(value, 0) if value not in (None, "") else None


# -- HTTP/1 ---------------------------------------------------------------------------------
class Http1View(View):
    layer, dissector = "http", "http"

    def unclaimed(self, pdu: Pdu, sender: str) -> None:
        # a request whose head never came whole (bytes lost inside it): tshark says
        # nothing of its fields, but that a request began here
        if sender == "client":
            self.messages.append(Message(sender, pdu.ts_ns, pdu.frame, "request", None))

    def pdu(self, pdu: Pdu, sender: str) -> None:
        f = leaves(pdu.tree)
        fields: dict[str, Any]
        if first(f, "http.request.method") is not None:
            fields = {"method": first(f, "http.request.method"),
                      "path": first(f, "http.request.uri"),
                      "version": (first(f, "http.request.version") or "").removeprefix("HTTP/"),
                      "host": first(f, "http.host")}  # fmt: skip
            self.messages.append(Message(sender, pdu.ts_ns, pdu.frame, "request", fields))
        elif first(f, "http.response.code") is not None:
            status = int(first(f, "http.response.code") or 0)
            fields = {"status": status, "reason": first(f, "http.response.phrase") or "",
                      "version": (first(f, "http.response.version") or "").removeprefix("HTTP/"),
                      "content_type": first(f, "http.content_type")}  # fmt: skip
            self.messages.append(Message(sender, pdu.ts_ns, pdu.frame, "response", fields,
                                         link=_int(first(f, "http.request_in")),
                                         failed=status >= 400))  # fmt: skip


# -- HTTP/2 ---------------------------------------------------------------------------------
class Http2View(View):
    layer, dissector = "http2", "http2"

    def __init__(self, client: str, server: str) -> None:
        super().__init__(client, server)
        self._responses: dict[int, Message] = {}

    def pdu(self, pdu: Pdu, sender: str) -> None:
        for frame in subtrees(pdu.tree, "http2.stream"):
            f = leaves(frame)
            kind, stream = _int(first(f, "http2.type")), _int(first(f, "http2.streamid"))
            if stream is None or kind is None or stream == 0:
                continue
            fields: dict[str, Any] | None
            if kind == 1 and first(f, "http2.headers.method") is not None:
                fields = {"method": first(f, "http2.headers.method"),
                          "path": first(f, "http2.headers.path"),
                          "scheme": first(f, "http2.headers.scheme"),
                          "authority": first(f, "http2.headers.authority"),
                          "content_type": first(f, "http2.headers.content_type"),
                          "stream_id": stream}  # fmt: skip
                self.messages.append(Message(sender, pdu.ts_ns, pdu.frame, "request", fields,
                                             key=stream))  # fmt: skip
                continue
            if sender != "server" or kind not in (0, 1, 3):
                continue
            response = self._responses.get(stream)
            if response is None:
                if kind == 0:
                    continue  # DATA before any HEADERS: not a response libtrace would start
                response = Message(
                    sender,
                    pdu.ts_ns,
                    pdu.frame,
                    "response",
                    {"stream_id": stream, "body_size": 0},
                    key=stream,
                )
                self._responses[stream] = response
                self.messages.append(response)
            fields = response.fields
            assert fields is not None  # a response this view made always has fields
            if kind == 1 and first(f, "http2.headers.status") is not None:
                status = int(first(f, "http2.headers.status") or 0)
                fields.update(status=status, content_type=first(f, "http2.headers.content_type"))
                response.failed = status >= 400
            if kind == 1:  # gRPC's outcome comes in the trailers (or a trailers-only reply)
                headers = dict(zip(f.get("http2.header.name", []),
                                   f.get("http2.header.value", []), strict=False))
                if "grpc-status" in headers:
                    fields.update(grpc_status=int(headers["grpc-status"]),
                                  grpc_message=headers.get("grpc-message"))
                    response.failed = fields["grpc_status"] != 0
            elif kind == 0:
                padding = _int(first(f, "http2.pad_length")) or 0
                length = _int(first(f, "http2.length")) or 0
                fields["body_size"] += length - padding - (1 if padding else 0)
            elif kind == 3:
                fields["reset_code"] = _int(first(f, "http2.rst_stream.error"))


# -- DNS --------------------------------------------------------------------------------------
def _dns_name(name: str | None) -> str | None:
    if name is None:
        return None
    return "." if name == "<Root>" else name.rstrip(".") + "."


_DNS_DATA = {
    "A": "dns.a",
    "AAAA": "dns.aaaa",
    "CNAME": "dns.cname",
    "PTR": "dns.ptr.domain_name",
    "NS": "dns.ns",
    "MX": "dns.mx.mail_exchange",
    "TXT": "dns.txt",
}
_DNS_NAMES = frozenset({"CNAME", "PTR", "NS", "MX"})


class DnsView(View):
    layer, dissector, transports = "dns", "dns", ("udp", "tcp")

    @staticmethod
    def sent_by_server(pdu: Pdu) -> bool | None:
        return first(leaves(pdu.tree.get("dns.flags_tree", {})), "dns.flags.response") == "1"

    def pdu(self, pdu: Pdu, sender: str) -> None:
        tree = pdu.tree
        # an UPDATE's first section is its zone (RFC 2136), read where a query's question is
        queries = subtrees(tree, "Queries") or subtrees(tree, "Zone")
        f = leaves(queries) if queries else {}
        top = {k: v for k, v in tree.items() if isinstance(v, str)}
        flags = leaves(tree.get("dns.flags_tree", {}))
        qtype = _int(first(f, "dns.qry.type"))
        fields: dict[str, Any] = {
            "id": int(top["dns.id"], 16),
            "name": _dns_name(first(f, "dns.qry.name")),
            "qtype": dns.rdatatype.to_text(dns.rdatatype.RdataType.make(qtype))
            if qtype is not None
            else None,
        }
        response = first(flags, "dns.flags.response") == "1"
        if not response:
            opcode = _int(first(flags, "dns.flags.opcode"))
            fields["opcode"] = (
                dns.opcode.to_text(dns.opcode.Opcode.make(opcode)) if opcode is not None else None
            )
            self.messages.append(Message(sender, pdu.ts_ns, pdu.frame, "request", fields))
            return
        rcode = _int(first(flags, "dns.flags.rcode")) or 0
        answers = []
        for answer in subtrees(tree, "Answers"):
            for rr in answer.values() if isinstance(answer, dict) else ():
                a = leaves(rr)
                kind = dns.rdatatype.to_text(
                    dns.rdatatype.RdataType.make(_int(first(a, "dns.resp.type")) or 0)
                )
                data = first(a, _DNS_DATA.get(kind, "")) if kind in _DNS_DATA else None
                answers.append({"name": _dns_name(first(a, "dns.resp.name")), "type": kind,
                                "ttl": _int(first(a, "dns.resp.ttl")),
                                **({"data": _dns_name(data) if kind in _DNS_NAMES else data}
                                   if data is not None else {})})  # fmt: skip
        fields.update(
            rcode=dns.rcode.to_text(dns.rcode.Rcode.make(rcode)),
            truncated=first(flags, "dns.flags.truncated") == "1",
            answers=answers,
        )
        self.messages.append(Message(sender, pdu.ts_ns, pdu.frame, "response", fields,
                                     link=_int(first(leaves(tree), "dns.response_to")),
                                     failed=rcode != 0))  # fmt: skip

    @staticmethod
    def ours(message: dict[str, Any], role: str) -> dict[str, Any]:
        if "answers" not in message:
            return message
        # tshark names an answer's data only for the types in _DNS_DATA
        answers = [{k: v for k, v in a.items() if k != "data" or a["type"] in _DNS_DATA}
                   for a in message["answers"]]  # fmt: skip
        return {**message, "answers": answers}


# -- Redis ------------------------------------------------------------------------------------
def _resp_text(value: str) -> str:
    """tshark shows a bulk string as colon-separated hex when it is not all text."""
    try:
        return bytes.fromhex(value.replace(":", "")).decode("utf-8", "replace")
    except ValueError:
        return value


#: The RESP values tshark 4.0 knows (RESP2); RESP3 ones it marks as a fragment.
_RESP_VALUES = frozenset(
    {"resp.string", "resp.error", "resp.integer", "resp.bulk_string", "resp.array"}
)


#: A line MONITOR streams: "1700000000.123456 [0 127.0.0.1:50000] "SET" ...".
_MONITOR = re.compile(r"\d+\.\d+ \[\d+ [^\]]*\] ")


class RedisView(View):
    layer, dissector = "resp", "resp"

    @staticmethod
    def split(tree: Tree) -> list[Tree]:
        """tshark puts every RESP value of a frame in one object, in order, and marks
        what it could not read (an inline command, a RESP3 type) as a fragment."""
        return [Tree.from_pairs([(k, v)]) for k, v in tree.pairs
                if k in _RESP_VALUES or k == "resp.fragment"]  # fmt: skip

    def __init__(self, client: str, server: str) -> None:
        super().__init__(client, server)
        self._lost_frame = 0  # a server frame whose values tshark lost track of
        # What Redis's documentation says changes which commands get a reply
        # (CLIENT REPLY) and which server values answer nothing (pub/sub, MONITOR).
        self._reply_mode = "ON"
        self._subscribed = False
        self._monitoring = False

    def pdu(self, pdu: Pdu, sender: str) -> None:
        tree = pdu.tree
        if sender == "server" and pdu.frame == self._lost_frame:
            return  # the pieces of a value it could not read (a RESP3 map's items)
        if "resp.fragment" in tree:
            # one value tshark could not read; a client's next values are commands again
            if sender == "server":
                self._lost_frame = pdu.frame
                self.messages.append(Message(sender, pdu.ts_ns, pdu.frame, "response", None,
                                             answers_all=True))  # fmt: skip
            else:
                self.messages.append(Message(sender, pdu.ts_ns, pdu.frame, "request", None,
                                             paired=self._answered([])))  # fmt: skip
            return
        if sender == "client":
            array = tree.get("resp.array")
            words = ([_resp_text(v) for v in leaves(array).get("resp.bulk_string.value", [])]
                     if isinstance(array, dict) else [])  # fmt: skip
            count = _int(array.get("resp.array.length")) if isinstance(array, dict) else None
            fields = None
            if words and count == len(words):
                fields = {"command": words[0].upper(), "args": words[1:1 + MAX_ARGS_KEPT],
                          "arg_count": count - 1}  # fmt: skip
                self._subscribed |= fields["command"] in ("SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE")
                self._monitoring |= fields["command"] == "MONITOR"
            self.messages.append(Message(sender, pdu.ts_ns, pdu.frame, "request", fields,
                                         paired=self._answered(words)))  # fmt: skip
            return
        fields, failed = self._reply(tree)
        self.messages.append(Message(sender, pdu.ts_ns, pdu.frame, "response", fields,
                                     failed=failed, paired=not self._pushed(tree)))  # fmt: skip

    def _answered(self, words: list[str]) -> bool:
        """CLIENT REPLY OFF silences replies until ON; SKIP the next command's; neither
        OFF nor SKIP is answered itself."""
        mode = self._reply_mode
        if mode == "SKIP":
            self._reply_mode = "ON"
        upper = [w.upper() for w in words[:3]]
        if (
            upper[:2] == ["CLIENT", "REPLY"]
            and len(upper) == 3
            and upper[2] in ("ON", "OFF", "SKIP")
        ):
            self._reply_mode = upper[2]
            return upper[2] == "ON"
        return mode == "ON"

    def _pushed(self, tree: dict[str, Any]) -> bool:
        """A message a subscriber receives, or a line MONITOR streams: no command's reply."""
        array = tree.get("resp.array")
        if self._subscribed and isinstance(array, dict):
            values = leaves(array).get("resp.bulk_string.value", [])
            return bool(values) and _resp_text(values[0]) in ("message", "pmessage", "smessage")
        line = tree.get("resp.string")
        return self._monitoring and isinstance(line, str) and _MONITOR.match(line) is not None

    @staticmethod
    def _reply(tree: dict[str, Any]) -> tuple[dict[str, Any] | None, bool | None]:
        if "resp.string" in tree:
            return {"type": "simple_string", "value": tree["resp.string"]}, False
        if "resp.error" in tree:
            return {"type": "error", "error": tree["resp.error"]}, True
        if "resp.integer" in tree:
            return {"type": "integer", "value": tree["resp.integer"]}, False
        bulk = tree.get("resp.bulk_string")
        if isinstance(bulk, dict):
            if bulk.get("resp.bulk_string.length") == "-1":
                return {"type": "null"}, False
            value = bulk.get("resp.bulk_string.value")
            return {
                "type": "bulk_string",
                "value": _resp_text(value) if value is not None else None,
            }, False
        array = tree.get("resp.array")
        if isinstance(array, dict) and "resp.array.length" in array:
            length = int(array["resp.array.length"])
            return (
                {"type": "null"} if length == -1 else {"type": "array", "length": length},
                False,
            )
        return None, None  # RESP3 types: tshark 4.0 does not know them


# -- MySQL ------------------------------------------------------------------------------------
#: The command bytes (MySQL's client/server protocol, "Text Protocol" and "Prepared Statements").
MYSQL_COMMANDS = {
    1: "COM_QUIT",
    2: "COM_INIT_DB",
    3: "COM_QUERY",
    14: "COM_PING",
    22: "COM_STMT_PREPARE",
    23: "COM_STMT_EXECUTE",
    24: "COM_STMT_SEND_LONG_DATA",
    25: "COM_STMT_CLOSE",
    26: "COM_STMT_RESET",
    17: "COM_CHANGE_USER",
    4: "COM_FIELD_LIST",
    31: "COM_RESET_CONNECTION",
}
#: Commands the server does not answer.
MYSQL_UNANSWERED = frozenset({1, 24, 25})


class MysqlView(View):
    layer, dissector = "mysql", "mysql"

    def __init__(self, client: str, server: str) -> None:
        super().__init__(client, server)
        self._reply: Message | None = None  # the server message being read
        self._packets = 0  # its packets so far
        self._eofs: list[int] = []  # at which of its packets an EOF came
        # zstd compression: agreed in the login (its level), in force after the login's
        # answer; tshark 4.0 reads none of it
        self._zstd = self._zstd_in_force = False

    def unclaimed(self, pdu: Pdu, sender: str) -> None:
        if self._zstd_in_force and sender == "client":
            self._reply = None
            self.messages.append(Message(sender, pdu.ts_ns, pdu.frame, "request", None))

    def pdu(self, pdu: Pdu, sender: str) -> None:
        f = leaves(pdu.tree)
        # Bytes tshark left undissected, or an invalid command: it misread the packet
        # (tshark 4.0 does not inflate the compressed protocol; it reads only what a
        # compressing peer sent uncompressed).
        misread = "mysql.payload" in f or "mysql.command.invalid" in f
        if sender == "client" and self._zstd and self._reply is not None:
            self._zstd_in_force = True  # the login was answered
        if misread or self._zstd_in_force:
            f = {}
        self._zstd |= "mysql.compression.zstd_level" in f
        if sender == "client":
            self._reply = None
            command = _int(first(f, "mysql.command"))
            fields: dict[str, Any] | None = None
            paired = True
            if command is not None and command in MYSQL_COMMANDS:
                fields = {"command": MYSQL_COMMANDS[command]}
                if first(f, "mysql.query") is not None:
                    fields["query"] = first(f, "mysql.query")
                names = f.get("mysql.query_attr_name", [])
                if names:  # MySQL 8 query attributes (tshark reads string values)
                    fields["attributes"] = dict(zip(names, f.get("mysql.query_attr_value", []),
                                                    strict=True))
                if first(f, "mysql.stmt_id") is not None:
                    fields["statement_id"] = _int(first(f, "mysql.stmt_id"))
                if command == 2:
                    fields["database"] = first(f, "mysql.schema")
                paired = command not in MYSQL_UNANSWERED
            elif first(f, "mysql.user") is not None:
                fields = {"command": "LOGIN", "user": first(f, "mysql.user"),
                          "database": first(f, "mysql.schema")}  # fmt: skip
            self.messages.append(Message(sender, pdu.ts_ns, pdu.frame, "request", fields,
                                         paired=paired))  # fmt: skip
            return
        if self._reply is not None:
            self._packets += 1
            if first(f, "mysql.eof") is not None or (
                self._eofs and first(f, "mysql.response_code") == "0xfe"
            ):
                self._eofs.append(self._packets)
                self._rows()
            return
        self._packets, self._eofs = 1, []
        self._reply = self._first_packet(pdu, sender, f)
        self.messages.append(self._reply)

    def _first_packet(self, pdu: Pdu, sender: str, f: dict[str, list[str]]) -> Message:
        def message(
            fields: dict[str, Any] | None, failed: bool | None = False, paired: bool = True
        ) -> Message:
            return Message(sender, pdu.ts_ns, pdu.frame, "response", fields, failed=failed,
                           paired=paired)  # fmt: skip

        code = first(f, "mysql.response_code")
        if first(f, "mysql.version") is not None:
            return message(
                {"kind": "greeting", "server_version": first(f, "mysql.version")}, paired=False
            )
        if code == "0xff":
            return message(
                {
                    "kind": "error",
                    "error_code": _int(first(f, "mysql.error_code")),
                    "sql_state": first(f, "mysql.sqlstate"),
                    "error_message": first(f, "mysql.error.message"),
                },
                failed=True,
            )
        if first(f, "mysql.num_params") is not None:
            return message({"kind": "ok", "statement_id": _int(first(f, "mysql.stmt_id")),
                            "columns": _int(first(f, "mysql.num_fields")),
                            "params": _int(first(f, "mysql.num_params"))})  # fmt: skip
        if code == "0x00":
            return message({"kind": "ok", "affected_rows": _int(first(f, "mysql.affected_rows")),
                            "warnings": _int(first(f, "mysql.warnings"))})  # fmt: skip
        if first(f, "mysql.num_fields") is not None:
            return message({"kind": "resultset", "columns": _int(first(f, "mysql.num_fields"))})
        return message(None, failed=None)

    def _rows(self) -> None:
        """Rows are the packets between the column definitions' EOF and the last one."""
        reply = self._reply
        if reply is None or reply.fields is None or reply.fields.get("kind") != "resultset":
            return
        columns = reply.fields["columns"]
        if len(self._eofs) == 2 and self._eofs[0] == columns + 2:
            reply.fields["rows"] = self._eofs[1] - self._eofs[0] - 1


# -- MQTT -------------------------------------------------------------------------------------
#: Control packet types (MQTT 3.1.1 and 5.0, section 2.1.2).
MQTT_TYPES = {
    1: "CONNECT",
    2: "CONNACK",
    3: "PUBLISH",
    4: "PUBACK",
    5: "PUBREC",
    6: "PUBREL",
    7: "PUBCOMP",
    8: "SUBSCRIBE",
    9: "SUBACK",
    10: "UNSUBSCRIBE",
    11: "UNSUBACK",
    12: "PINGREQ",
    13: "PINGRESP",
    14: "DISCONNECT",
    15: "AUTH",
}


#: Fields whose encoding differs between MQTT 3.1.1 and 5 (properties come first in 5).
MQTT_VERSIONED = ("topics", "return_code", "return_codes")


class MqttView(View):
    layer, dissector = "mqtt", "mqtt"

    def __init__(self, client: str, server: str) -> None:
        super().__init__(client, server)
        # tshark learns the version from the CONNECT only: without it, it reads 3.1.1
        self._connect_seen = False

    def pdu(self, pdu: Pdu, sender: str) -> None:
        f = leaves(pdu.tree)
        kind = _int(first(f, "mqtt.msgtype"))
        self._connect_seen |= kind == 1
        if kind not in MQTT_TYPES:
            self.messages.append(Message(sender, pdu.ts_ns, pdu.frame, "request", None))
            return
        other = "server" if sender == "client" else "client"
        packet_id = _int(first(f, "mqtt.msgid"))
        fields: dict[str, Any] = {"packet_type": MQTT_TYPES[kind], "sender": sender,
                                  "packet_id": packet_id}  # fmt: skip
        role: Role = "request"
        paired = True
        key: Hashable = None
        failed: bool | None = None
        if kind == 1:
            fields.update(
                client_id=first(f, "mqtt.clientid"), protocol_level=_int(first(f, "mqtt.ver"))
            )
            key = "connect"
        elif kind == 3:
            qos = _int(first(f, "mqtt.qos")) or 0
            fields.update(
                topic=first(f, "mqtt.topic"), qos=qos, retain=first(f, "mqtt.retain") == "1"
            )
            paired, key = qos != 0, ("pub", sender, packet_id)
        elif kind in (8, 10):
            fields["topics"] = f.get("mqtt.topic", [])
            key = ("sub" if kind == 8 else "unsub", packet_id)
        elif kind == 12:
            key = "ping"
        elif kind == 6:
            key = ("rel", sender, packet_id)
        elif kind in (14, 15):
            paired = False
        else:
            role = "response"
            code = first(f, "mqtt.conack.val") or first(f, "mqtt.connack.reason_code")
            key = {2: "connect", 9: ("sub", packet_id), 11: ("unsub", packet_id),
                   13: "ping", 4: ("pub", other, packet_id), 5: ("pub", other, packet_id),
                   7: ("rel", other, packet_id)}.get(kind)  # fmt: skip
            if kind == 2:
                fields["return_code"] = _int(code)
                failed = bool(_int(code))
            elif kind == 9:
                codes = f.get("mqtt.suback.qos") or f.get("mqtt.suback.reason_code") or []
                fields["return_codes"] = [int(c, 0) for c in codes]
                failed = any(int(c, 0) >= 0x80 for c in codes)
            else:
                failed = False
        if not self._connect_seen:
            fields = {k: v for k, v in fields.items() if k not in MQTT_VERSIONED}
        self.messages.append(Message(sender, pdu.ts_ns, pdu.frame, role, fields, key=key,
                                     failed=failed, paired=paired))  # fmt: skip


# -- Kafka ------------------------------------------------------------------------------------
class KafkaView(View):
    layer, dissector = "kafka", "kafka"

    def pdu(self, pdu: Pdu, sender: str) -> None:
        f = leaves(pdu.tree)
        correlation = _int(first(f, "kafka.correlation_id"))
        if sender == "client":
            fields = None
            if first(f, "kafka.request_key") is not None:
                fields = {"api": _int(first(f, "kafka.request_key")),
                          "api_version": _int(first(f, "kafka.request.version")),
                          "correlation_id": correlation,
                          "client_id": first(f, "kafka.client_id")}  # fmt: skip
            self.messages.append(Message(sender, pdu.ts_ns, pdu.frame, "request", fields,
                                         key=correlation))  # fmt: skip
            return
        fields = {"correlation_id": correlation}
        failed = None
        api = _int(first(f, "kafka.response_key"))
        if api is not None:
            fields.update(api=api, api_version=_int(first(f, "kafka.response.version")))
        if api == ApiKey.ApiVersions:
            # tshark 4.0 reads the error code right only here: it misplaces it in some
            # newer versions of other APIs (CreateTopics v7, whose topic id it does not know)
            fields["error_code"] = _int(first(f, "kafka.error"))
            failed = bool(fields["error_code"])
        self.messages.append(Message(sender, pdu.ts_ns, pdu.frame, "response", fields,
                                     key=correlation, link=_int(first(f, "kafka.request_frame")),
                                     failed=failed))  # fmt: skip

    @staticmethod
    def ours(message: dict[str, Any], role: str) -> dict[str, Any]:
        api = message.get("api")
        return {**message, "api": ApiKey[str(api)].value if api in ApiKey.__members__ else api}


#: Protocol name -> its view; Dubbo 2 has no tshark dissector.
VIEWS: dict[str, type[View]] = {
    "http1": Http1View,
    "http2": Http2View,
    "dns": DnsView,
    "redis": RedisView,
    "mysql": MysqlView,
    "mqtt": MqttView,
    "kafka": KafkaView,
}
