"""The columns of the matrix: what a kernel-level test proves about a kernel.

A test says which column it counts for with ``@pytest.mark.capability(NAME)``;
a forced old-kernel variant (a fixture parameter) files the same tests under
its own column with ``variant_capability(NAME)``, which wins.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..parsers import SPECS
from ..services import SERVICES

#: What every column needs of a guest kernel: bpf(), tracepoint programs, syscall
#: tracepoints, and the loopback networking the test peers use.
BASE_KCONFIG = ("BPF_SYSCALL", "BPF_EVENTS", "FTRACE_SYSCALLS", "PERF_EVENTS", "INET", "UNIX")
#: What the check_* columns add: tcpdump in the guest opens an AF_PACKET socket.
CHECK_KCONFIG = ("PACKET", "IPV6")


@dataclass(frozen=True, slots=True)
class Capability:
    name: str
    title: str  #: short column heading
    description: str
    #: Kernel options (without ``CONFIG_``) the column's tests need beyond
    #: :data:`BASE_KCONFIG`; a kernel built by ``libtrace kernels build`` has them all.
    kconfig: tuple[str, ...] = ()

    @property
    def needs(self) -> tuple[str, ...]:
        """Every kernel option the column needs."""
        return BASE_KCONFIG + self.kconfig


#: The columns before the check_* ones.
_KERNEL_COLUMNS: tuple[Capability, ...] = (
    Capability("attach", "attach", "syscall tracepoint programs load, attach and deliver"),
    Capability(
        "buffer",
        "buffer",
        "the event buffer (ring buffer, or the perf-buffer fallback) delivers every event in order",
    ),
    Capability(
        "core_identity",
        "CO-RE identity",
        "socket family, transport, addresses and ports read from struct sock",
        ("DEBUG_INFO_BTF",),
    ),
    Capability("tcp_capture", "TCP", "byte-exact TCP capture through every syscall family",
               ("IPV6",)),
    Capability("udp_capture", "UDP", "byte-exact UDP capture incl. sendmmsg/recvmmsg"),
    Capability("payload_cap", "cap", "payloads beyond the cap are cut at the cap, size kept"),
    Capability("lost_accounting", "lost", "an overloaded buffer counts lost events"),
    Capability("cleanup", "cleanup", "nothing stays loaded after exit, SIGTERM or SIGKILL"),
    Capability(
        "go_tls",
        "Go TLS",
        "uprobes on a Go program's crypto/tls deliver its plaintext; exec/exit followed, "
        "attach after the delay",
        ("UPROBES", "UPROBE_EVENTS"),
    ),
)
#: The columns after the check_* ones: the forced old-kernel variants.
_VARIANT_COLUMNS: tuple[Capability, ...] = (
    Capability("compat_perfbuf", "perfbuf", "everything above with the perf buffer forced"),
    Capability("compat_probe_read", "probe-read", "with bpf_probe_read forced"),
    Capability("compat_no_btf", "no-BTF", "with the no-BTF socket identity forced"),
    Capability("compat_oldest", "oldest", "with all three old-kernel paths forced (4.14's object)"),
)


def check_column(service: str) -> Capability:
    """The column of ``libtrace check SERVICE``, titled after its protocol."""
    title = SPECS[SERVICES[service].protocol].title
    return Capability(
        f"check_{service}",
        title,
        f"libtrace check {service}: a real {title} server and clients, the traced records "
        "equal a simultaneous tcpdump's on both sides, nothing lost",
        CHECK_KCONFIG,
    )


def capabilities() -> tuple[Capability, ...]:
    """Every column, in order.  The check_* columns are those of the services
    registered now (one per protocol), so a protocol added with its service
    has its column."""
    checks = tuple(check_column(name) for name in SERVICES)
    return (*_KERNEL_COLUMNS, *checks, *_VARIANT_COLUMNS)


def by_name() -> dict[str, Capability]:
    """:func:`capabilities` by column name."""
    return {capability.name: capability for capability in capabilities()}


def column_title(name: str) -> str:
    """A column's heading (an unknown column, from an older report: its name)."""
    known = by_name().get(name)
    return known.title if known is not None else name
