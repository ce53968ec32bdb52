"""Read a guest's serial console as it streams: sentinels, panics and splats.

Pure bookkeeping, no I/O: :class:`ConsoleWatcher` is fed one line at a time
(with the monotonic time it arrived) and the runner asks it what happened.
Kernel lines are told from payload output by their printk timestamp
(``[    1.234567] ``, forced on with ``printk.time=1``), so a payload that
prints "WARNING:" is not mistaken for a kernel splat.
"""

from __future__ import annotations

import contextlib
import re
from collections import deque

from .initramfs import BOOTED_SENTINEL, ERROR_SENTINEL, EXIT_SENTINEL, START_SENTINEL

#: Lines of console kept for the result's log tail.
TAIL_LINES = 60

#: Kernel lines kept after a splat's first line (its registers and Call Trace).
SPLAT_CONTEXT_LINES = 40

#: Lines kept from a panic onwards.
PANIC_LINES = 12

#: Splats kept in a result; a storm of warnings is summarised by its first ones.
MAX_SPLAT_LINES = 200

KERNEL_LINE = re.compile(r"^\s*(?:<\d+>)?\[\s*\d+\.\d+\]\s?")

#: The first line of a kernel splat (the Call Trace that follows is context).
SPLAT_HEAD = re.compile(
    r"WARNING:|BUG:|Oops|soft lockup|hung_task|blocked for more than \d+ seconds"
    r"|self-detected stall|rcu: INFO|rcu_sched detected stall|Call Trace"
)

#: The end of a splat's context.
SPLAT_END = re.compile(r"---\[ end trace")

#: Lines that continue a splat: register dumps, module lists, stack frames.
SPLAT_BODY = re.compile(
    r"^\s|\+0x[0-9a-f]+/0x[0-9a-f]+|^(?:Modules linked in|CPU:|Hardware name|RIP:|RSP:|"
    r"R[A-Z0-9]{2}:|FS:|CS:|CR2:|DR[0-9]:|Code:|Call Trace|</?TASK>|</?IRQ>|Workqueue:|"
    r"Tainted|irq event stamp|hardirqs|softirqs|Stack:|---\[|\?|INFO:|\s*\(|\w+ D |task:)"
)

PANIC = re.compile(r"Kernel panic - not syncing")

#: The kernel refusing its own BTF at boot (a pahole newer than the kernel:
#: "BPF:Invalid btf_info kind_flag"); every BPF load then fails with EINVAL,
#: so the kernel is broken for the matrix, not the tracer.
BTF_BROKEN = re.compile(r"^BPF:\s?(Invalid|.*[Ee]rror)|failed to validate module \[vmlinux\] BTF")


def strip_timestamp(line: str) -> str:
    """A kernel line without its ``[ seconds]`` prefix."""
    return KERNEL_LINE.sub("", line, count=1)


class ConsoleWatcher:
    """Follows a console log line by line."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.booted_at: float | None = None
        self.payload_started = False
        self.exit_code: int | None = None
        self.error: str | None = None
        self.panic: list[str] = []
        self.splats: list[str] = []
        self.splat_heads: list[str] = []
        #: Kernel lines saying it cannot use its own BTF (see BTF_BROKEN).
        self.btf_broken: list[str] = []
        self._context_left = 0

    def feed(self, line: str, now: float) -> None:
        """Take one console line (without its line ending)."""
        self.tail.append(line)
        if not KERNEL_LINE.match(line):
            self._payload_line(line.strip(), now)
            return
        text = strip_timestamp(line)
        if BTF_BROKEN.search(text) and len(self.btf_broken) < 3:
            self.btf_broken.append(text.strip())
        if PANIC.search(text) or self.panic:
            if len(self.panic) < PANIC_LINES:
                self.panic.append(text)
            return
        if len(self.splats) >= MAX_SPLAT_LINES:
            return
        if SPLAT_HEAD.search(text) and not (self._context_left and "Call Trace" in text):
            self.splats.append(text)
            self.splat_heads.append(text)
            self._context_left = SPLAT_CONTEXT_LINES
        elif self._context_left and SPLAT_BODY.search(text):
            self.splats.append(text)
            self._context_left = 0 if SPLAT_END.search(text) else self._context_left - 1
        else:
            self._context_left = 0

    def _payload_line(self, text: str, now: float) -> None:
        if text == BOOTED_SENTINEL and self.booted_at is None:
            self.booted_at = now
        elif text == START_SENTINEL:
            self.payload_started = True
        elif text.startswith(EXIT_SENTINEL) and self.exit_code is None:
            with contextlib.suppress(ValueError):
                self.exit_code = int(text[len(EXIT_SENTINEL) :].strip())
        elif text.startswith(ERROR_SENTINEL) and self.error is None:
            self.error = text[len(ERROR_SENTINEL) :].strip()

    @property
    def boot_s(self) -> float | None:
        """Seconds from the start to the init's first line."""
        return None if self.booted_at is None else self.booted_at - self.start

    @property
    def finished(self) -> bool:
        """True once the payload's exit, a set-up error or a panic was seen."""
        return self.exit_code is not None or self.error is not None or bool(self.panic)

    def panic_reason(self) -> str:
        """The panic line, and the first splat before it (an Oops's BUG line) if any."""
        reason = self.panic[0].strip() if self.panic else "kernel panic"
        return reason + (f" (after: {self.splat_heads[0].strip()})" if self.splat_heads else "")
