"""The Python mirror of socket_trace.h agrees with the C header, and the
decoder turns records into events (or a clear error) whatever the bytes."""

from __future__ import annotations

import ctypes
import json
import subprocess
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libtrace.bpf.build import SOURCE_DIR
from libtrace.tracer import events
from libtrace.tracer.events import (
    HEADER_SIZE,
    DecodeError,
    Direction,
    EventFlag,
    EventType,
    RawConfig,
    RawConn,
    RawConnKey,
    RawEvent,
    SocketEvent,
    Syscall,
    decode,
    with_changes,
)

MIRRORS = {
    "lt_event": RawEvent,
    "lt_config": RawConfig,
    "lt_conn_key": RawConnKey,
    "lt_conn": RawConn,
}
CONSTANTS = {
    "MAX_PAYLOAD": events.MAX_PAYLOAD,
    "MAX_PAYLOAD_PERFBUF": events.MAX_PAYLOAD_PERFBUF,
    "SCRATCH_SLOTS": events.SCRATCH_SLOTS,
    **{f"LT_EVENT_{e.name}": e.value for e in EventType},
    "LT_EGRESS": Direction.EGRESS.value,
    "LT_INGRESS": Direction.INGRESS.value,
    **{f"LT_SYS_{s.name}": s.value for s in Syscall if s is not Syscall.UNKNOWN},
    **{f"LT_FLAG_{f.name}": f.value for f in EventFlag if f.value < 0x100},
    "LT_COUNTER_EVENTS": events.COUNTER_EVENTS,
    "LT_COUNTER_LOST": events.COUNTER_LOST,
    "LT_COUNTER_BYTES": events.COUNTER_BYTES,
}


@pytest.fixture(scope="module")
def c_layout(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Sizes, offsets and constants as the C compiler sees socket_trace.h."""
    lines = [
        "#include <stdio.h>",
        "#include <stddef.h>",
        "#include <linux/types.h>",
        '#include "socket_trace.h"',
        "int main(void) {",
        'printf("{");',
    ]
    for struct, mirror in MIRRORS.items():
        lines.append(f'printf("\\"{struct}\\": {{\\"sizeof\\": %zu", sizeof(struct {struct}));')
        for name, *_ in mirror._fields_:
            if not name.startswith("_"):
                lines.append(f'printf(", \\"{name}\\": %zu", offsetof(struct {struct}, {name}));')
        lines.append('printf("}, ");')
    for name in CONSTANTS:
        lines.append(f'printf("\\"{name}\\": %lld, ", (long long)({name}));')
    lines += ['printf("\\"end\\": 0}");', "return 0; }"]
    tmp = tmp_path_factory.mktemp("layout")
    (tmp / "layout.c").write_text("\n".join(lines))
    subprocess.run(
        ["cc", f"-I{SOURCE_DIR}", "-o", str(tmp / "layout"), str(tmp / "layout.c")], check=True
    )
    return json.loads(
        subprocess.run([str(tmp / "layout")], capture_output=True, text=True, check=True).stdout
    )


@pytest.mark.parametrize("struct", list(MIRRORS))
def test_ctypes_mirror_matches_the_c_layout(c_layout, struct):
    mirror = MIRRORS[struct]
    assert ctypes.sizeof(mirror) == c_layout[struct]["sizeof"]
    for name, *_ in mirror._fields_:
        if not name.startswith("_"):
            assert getattr(mirror, name).offset == c_layout[struct][name], name


def test_constants_match_the_c_header(c_layout):
    for name, value in CONSTANTS.items():
        assert c_layout[name] == value, name


def make_record(payload: bytes = b"", **fields: object) -> bytes:
    values: dict[str, object] = {
        "type": EventType.DATA,
        "captured": len(payload),
        "size": len(payload),
        "family": 2,
        "l4": 6,
        "lport": 80,
        "rport": 5555,
        "pid": 7,
        "tid": 8,
        "fd": 3,
        "comm": b"curl",
    }
    raw = RawEvent(**{**values, **fields})
    raw.laddr[:4] = bytes([127, 0, 0, 1])
    raw.raddr[:4] = bytes([10, 1, 2, 3])
    return bytes(raw) + payload


def test_decode_a_data_record():
    event = decode(make_record(b"GET / HTTP/1.1\r\n", direction=1, offset=42, syscall=2))
    assert event.type is EventType.DATA and event.direction is Direction.INGRESS
    assert event.syscall is Syscall.WRITE
    assert (event.laddr, event.lport, event.raddr, event.rport) == (
        "127.0.0.1",
        80,
        "10.1.2.3",
        5555,
    )
    assert event.data == b"GET / HTTP/1.1\r\n" and event.offset == 42 and event.comm == "curl"
    assert event.to_json()["data_b64"] == "R0VUIC8gSFRUUC8xLjENCg=="


def test_perf_padding_after_the_payload_is_ignored():
    assert decode(make_record(b"abc") + b"\0" * 5).data == b"abc"


@pytest.mark.parametrize("cut", [0, 1, HEADER_SIZE - 1, HEADER_SIZE + 2])
def test_a_short_record_is_a_decode_error(cut):
    with pytest.raises(DecodeError):
        decode(make_record(b"abcd")[:cut])


def test_unknown_event_type_is_a_decode_error():
    with pytest.raises(DecodeError, match="unknown event type 99"):
        decode(make_record(type=99))


@pytest.mark.fuzz
@given(st.binary(max_size=HEADER_SIZE + 64))
def test_decode_never_fails_but_with_decode_error(record):
    try:
        event = decode(record)
    except DecodeError:
        return
    assert len(event.data) <= len(record) - HEADER_SIZE


def test_the_fast_decoder_builds_the_same_event_as_the_dataclass():
    record = make_record(b"hello", direction=0, offset=7, syscall=4, flags=0x6, ts_ns=99)
    expected = SocketEvent(
        type=EventType.DATA, pid=7, tid=8, comm="curl", fd=3, direction=Direction.EGRESS,
        syscall=Syscall.WRITEV, l4="tcp", family="ipv4", laddr="127.0.0.1", lport=80,
        raddr="10.1.2.3", rport=5555, ts_ns=99, offset=7, size=5, cgroup_id=0,
        flags=EventFlag.ADDR_FROM_CALL | EventFlag.PROBE_READ, data=b"hello",
    )
    assert decode(record) == expected
    changed = with_changes(expected, {"lport": 81, "laddr": "127.0.0.2"})
    assert changed == replace(expected, lport=81, laddr="127.0.0.2")
    assert expected.lport == 80  # the original is untouched
