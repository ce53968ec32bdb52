"""The Python side of socket_trace.h, generated from it, agrees with the C
compiler's reading of the header and is current; the decoder turns records
into events (or a clear error) whatever the bytes."""

from __future__ import annotations

import ctypes
import json
import subprocess
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libtrace.bpf import layout
from libtrace.bpf.build import SOURCE_DIR
from libtrace.tracer import _layout
from libtrace.tracer.events import (
    HEADER_SIZE,
    DecodeError,
    Direction,
    EventFlag,
    EventType,
    RawEvent,
    SocketEvent,
    Syscall,
    decode,
    decode_python,
    with_changes,
)

#: The generated layout as clang's reading of the header saw it: the C program
#: below prints what the C compiler makes of the same names.
CONSTANTS, GROUPS = layout.read_header()
STRUCTS = [group for group in GROUPS if group.kind == "struct"]


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
    for group in STRUCTS:
        size = f"sizeof({group.c_name})"
        lines.append(f'printf("\\"{group.c_name}\\": {{\\"sizeof\\": %zu", {size});')
        for item in group.items:
            lines.append(
                f'printf(", \\"{item.name}\\": %zu", offsetof({group.c_name}, {item.name}));'
            )
        lines.append('printf("}, ");')
    values = [*CONSTANTS, *(item for g in GROUPS if g.kind != "struct" for item in g.items)]
    for item in values:
        lines.append(f'printf("\\"{item.c_name}\\": %lld, ", (long long)({item.c_name}));')
    lines += ['printf("\\"end\\": 0}");', "return 0; }"]
    tmp = tmp_path_factory.mktemp("layout")
    (tmp / "layout.c").write_text("\n".join(lines))
    subprocess.run(
        ["cc", f"-I{SOURCE_DIR}", "-o", str(tmp / "layout"), str(tmp / "layout.c")], check=True
    )
    return json.loads(
        subprocess.run([str(tmp / "layout")], capture_output=True, text=True, check=True).stdout
    )


def test_the_generated_layout_is_current():
    """``_layout.py`` is what the generator makes of the header now: a field
    added to the header and not regenerated fails here."""
    assert layout.GENERATED.read_text() == layout.generate()


@pytest.mark.parametrize("group", STRUCTS, ids=lambda group: group.name)
def test_each_generated_structure_has_the_c_layout(c_layout, group):
    mirror = getattr(_layout, group.name)
    assert ctypes.sizeof(mirror) == c_layout[group.c_name]["sizeof"]
    assert [name for name, *_ in mirror._fields_] == [item.name for item in group.items]
    for item in group.items:
        assert getattr(mirror, item.name).offset == c_layout[group.c_name][item.name], item.name


def test_each_generated_value_has_the_c_value(c_layout):
    assert len(CONSTANTS) >= 10 and any(item.name == "MAX_PAYLOAD" for item in CONSTANTS)
    for item in CONSTANTS:
        assert getattr(_layout, item.name) == c_layout[item.c_name], item.c_name
    for group in GROUPS:
        if group.kind != "struct":
            python = getattr(_layout, group.name)
            assert [member.name for member in python] == [item.name for item in group.items]
            for item in group.items:
                assert python[item.name].value == c_layout[item.c_name], item.c_name


def test_the_struct_reading_of_the_header_matches_ctypes():
    record = make_record(b"xy", pid=1234, fd=-5, ts_ns=2**63 + 1, offset=7, syscall=16)
    event = decode_python(record)
    raw = RawEvent.from_buffer_copy(record)
    assert (event.pid, event.fd, event.ts_ns, event.offset) == (raw.pid, raw.fd, raw.ts_ns, 7)
    assert event.syscall is Syscall.GO_TLS_WRITE and event.data == b"xy"
    assert Syscall(999) is Syscall.UNKNOWN


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
