"""A failed load says the verifier's last instruction and message, in one line."""

from __future__ import annotations

from libtrace.tracer._libbpf import verifier_verdict

#: The end of a 4.19 verifier log as libbpf 1.1 prints it (its warnings, line by line).
LOG_4_19 = """libbpf: prog 'lt_exit_readv': BPF program load failed: Permission denied
libbpf: prog 'lt_exit_readv': -- BEGIN PROG LOAD LOG --
0: (bf) r6 = r1
; struct lt_config *cfg = get_config();
267: (79) r5 = *(u64 *)(r10 -96)
268: (85) call bpf_perf_event_output#25
R5 min value is negative, either use unsigned or 'var &= const'
processed 412 insns (limit 131072), stack depth 112
-- END PROG LOAD LOG --
libbpf: prog 'lt_exit_readv': failed to load: -13
libbpf: failed to load object 'socket_trace.perfbuf.probe-read.btf.bpf.o'""".splitlines()


def test_the_verdict_names_the_program_the_instruction_and_the_message() -> None:
    assert verifier_verdict(LOG_4_19) == (
        "program lt_exit_readv: 268: (85) call bpf_perf_event_output#25 | "
        "R5 min value is negative, either use unsigned or 'var &= const'"
    )


def test_a_refusal_without_a_log_still_names_the_program() -> None:
    lines = ["libbpf: prog 'lt_go_tls_read_enter': failed to load: -22"]
    assert verifier_verdict(lines) == "program lt_go_tls_read_enter: no verifier log"
    assert verifier_verdict([]) is None
