"""Running tshark on a capture and reading its dissection: one :class:`Pdu` per
protocol data unit, with the frame's time, endpoints and the PDU's fields.

tshark's JSON nests a PDU's fields in subtrees named by their display text
(``"GET / HTTP/1.1\\r\\n": {...}``); :func:`leaves` flattens a subtree into
field name -> every value, which is what the views ask for.  A PDU that
tshark reassembled from several TCP segments is timed by its first segment,
as libtrace times a message by the chunk that carried its first byte.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...errors import LibtraceError

#: Seconds tshark may take on one fixture.
TSHARK_TIMEOUT_S = 120


class OracleUnavailable(LibtraceError, RuntimeError):
    """tshark is not installed (or failed to run)."""


@dataclass(frozen=True, slots=True)
class Pdu:
    """One PDU of the oracle's protocol, as tshark dissected it."""

    frame: int
    ts_ns: int
    src: str  #: "ip:port" of the sender
    dst: str
    tree: dict[str, Any]  #: the PDU's subtree of tshark's JSON
    #: a TCP segment with payload that tshark neither dissected as the protocol nor
    #: reassembled into a later PDU: the start of a message it never got whole
    #: (its ``tree`` is empty)
    unclaimed: bool = False


def leaves(tree: Any, out: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    """Every field under ``tree``: name -> its values in order."""
    out = {} if out is None else out
    if isinstance(tree, dict):
        for name, value in tree.items():
            if isinstance(value, str):
                out.setdefault(name, []).append(value)
            elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                out.setdefault(name, []).extend(value)
            else:
                leaves(value, out)
    elif isinstance(tree, list):
        for item in tree:
            leaves(item, out)
    return out


def first(fields: dict[str, list[str]], name: str) -> str | None:
    values = fields.get(name)
    return values[0] if values else None


def subtrees(tree: Any, name: str) -> list[Any]:
    """The values of every key ``name`` anywhere under ``tree`` (lists unrolled)."""
    found: list[Any] = []
    if isinstance(tree, dict):
        for key, value in tree.items():
            if key == name:
                found += value if isinstance(value, list) else [value]
            else:
                found += subtrees(value, name)
    elif isinstance(tree, list):
        for item in tree:
            found += subtrees(item, name)
    return found


class Tree(dict[str, Any]):
    """A JSON object of tshark's: a key given several times holds the list of its
    values (as ``--no-duplicate-keys`` gives), and ``pairs`` keeps the order in
    which they came, which is the order of the PDUs when a dissector puts
    several in one object (RESP)."""

    pairs: list[tuple[str, Any]]

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, Any]]) -> Tree:
        tree = cls()
        tree.pairs = pairs
        for key, value in pairs:
            if key not in tree:
                tree[key] = value
            elif isinstance(tree[key], _Repeated):
                tree[key].append(value)
            else:
                tree[key] = _Repeated([tree[key], value])
        return tree


class _Repeated(list[Any]):
    """The values of a key given more than once in one object."""


def _endpoint(host: str, port: str) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def dissect(
    pcap: str, layer: str, decode_as: list[str], split: Callable[[Tree], list[Tree]] | None = None
) -> list[Pdu]:
    """The PDUs of ``layer`` in ``pcap``, in frame order (several per frame when
    pipelined; ``split`` cuts one layer object into its PDUs where the dissector
    puts several in one)."""
    if shutil.which("tshark") is None:
        raise OracleUnavailable("tshark is not installed (Debian package tshark)")
    argv = ["tshark", "-r", pcap, "-T", "json"]
    for rule in decode_as:
        argv += ["-d", rule]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=True,
                             timeout=TSHARK_TIMEOUT_S).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        raise OracleUnavailable(f"tshark failed on {pcap}: {exc}") from exc
    packets = json.loads(out or "[]", object_pairs_hook=Tree.from_pairs)
    times: dict[int, int] = {}
    pdus: list[Pdu] = []
    for packet in packets:
        layers = packet["_source"]["layers"]
        frame = int(layers["frame"]["frame.number"])
        seconds, _, fraction = layers["frame"]["frame.time_epoch"].partition(".")
        times[frame] = int(seconds) * 1_000_000_000 + int(fraction.ljust(9, "0")[:9])
        tcp = layers.get("tcp") or {}
        unclaimed = (layer not in layers and int(tcp.get("tcp.len", "0")) > 0
                     and "tcp.reassembled_in" not in tcp)  # fmt: skip
        if layer not in layers and not unclaimed:
            continue
        ip = layers.get("ip") or layers.get("ipv6") or {}
        src_host = ip.get("ip.src") or ip.get("ipv6.src")
        dst_host = ip.get("ip.dst") or ip.get("ipv6.dst")
        l4 = layers.get("tcp") or layers.get("udp") or {}
        kind = "tcp" if "tcp" in layers else "udp"
        src = _endpoint(str(src_host), l4[f"{kind}.srcport"])
        dst = _endpoint(str(dst_host), l4[f"{kind}.dstport"])
        if unclaimed:
            pdus.append(Pdu(frame, times[frame], src, dst, {}, unclaimed=True))
            continue
        trees = layers[layer] if isinstance(layers[layer], list) else [layers[layer]]
        if split is not None:
            trees = [pdu for tree in trees for pdu in split(tree)]
        # A reassembled PDU comes first in its frame and began in its first segment.
        segments = leaves(layers.get("tcp.segments", {})).get("tcp.segment", [])
        for index, tree in enumerate(trees):
            ts = times[frame]
            if index == 0 and segments:
                ts = times.get(int(segments[0]), ts)
            pdus.append(Pdu(frame, ts, src, dst, tree if isinstance(tree, dict) else {}))
    return pdus
