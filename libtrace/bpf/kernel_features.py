"""The first mainline kernel that offers each BPF feature libtrace could use.

This is a table of facts, not a probe: the tracer decides what to load by
*trying* features on the running kernel (distro kernels backport), while this
table lets the kernel matrix and ``libtrace`` tooling *predict*, from a
compiled object alone, which kernels can load it (see
:mod:`libtrace.bpf.objinfo`).

Sources.  Every row carries a comment naming the kernel commit that added the
feature (first 12 hex digits of the mainline commit).  Unless a row says
otherwise, version and commit are those of iovisor/bcc
``docs/kernel-versions.md``.  Rows marked ``ebpf-docs`` take the version from
docs.ebpf.io (isovalent/ebpf-docs), which reads it off the first release tag
containing the commit; there bcc's table is off by one release (a commit
merged into bpf-next after a merge window closed ships one release later).
Helper ids are assigned in merge order, so ``since`` never decreases with the
id; a test holds the table to that.

Versions are ``(major, minor)`` tuples, comparable with ``<``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

KernelVersion = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Helper:
    """One BPF helper: its name without the ``bpf_`` prefix, and first kernel."""

    name: str
    since: KernelVersion


@dataclass(frozen=True, slots=True)
class MapType:
    """One ``BPF_MAP_TYPE_*``: lower-case name without the prefix, first kernel."""

    name: str
    since: KernelVersion


# --- Language and loader features ------------------------------------------

#: The bpf() syscall and maps.  99c55f7d47c0 "bpf: introduce BPF syscall and maps"
EBPF_BASELINE: Final[KernelVersion] = (3, 18)
#: bpf-to-bpf calls.  cc8b0b92a169 "bpf: introduce function calls (function boundaries)"
BPF_TO_BPF_CALLS: Final[KernelVersion] = (4, 16)
#: Global data (.data/.rodata/.bss as array maps, BPF_PSEUDO_MAP_VALUE).
#: d8eca5bbb2be "bpf: implement lookup-free direct value access for maps"
GLOBAL_DATA: Final[KernelVersion] = (5, 2)
#: Programs larger than BPF_MAXINSNS for privileged loaders.
#: c04c0d2b968a "bpf: increase complexity limit and maximum program size"
LARGE_PROGRAMS: Final[KernelVersion] = (5, 2)
#: Bounded loops (back-edges accepted by the verifier).
#: 2589726d12a1 "bpf: introduce bounded loops"
BOUNDED_LOOPS: Final[KernelVersion] = (5, 3)
#: A scalar spilled to the stack keeps its bounds when reloaded.  Before it,
#: a helper size that clang reloads from the stack is an unknown scalar
#: ("R5 min value is negative"): 4.19 tracks only spilled pointers, 5.3-5.9
#: only constants.  5689d49b71ad "bpf: Track spill/fill of bounded scalars."
SPILLED_SCALAR_BOUNDS: Final[KernelVersion] = (5, 10)
#: Helper size arguments that may be zero (ARG_CONST_SIZE_OR_ZERO); 4.14's
#: bpf_probe_read refuses a size whose minimum is 0.
#: 9fd29c08e520 "bpf: improve verifier ARG_CONST_SIZE_OR_ZERO semantics"
ZERO_SIZE_ARGUMENTS: Final[KernelVersion] = (4, 15)
#: From here on bpf_prog_load() no longer demands kern_version ==
#: LINUX_VERSION_CODE for kprobe-type programs (uprobes are kprobe programs);
#: before it, the loader must pass the kernel's own code (4.14.y/4.19.y pin
#: the sublevel at 255, so uname() is wrong there).
#: 6c4fc209fcf9 "bpf: remove useless version check for prog load"
NO_KERN_VERSION_CHECK: Final[KernelVersion] = (5, 0)
#: BTF itself.  69b693f0aefa "bpf: btf: Introduce BPF Type Format (BTF)"
BTF: Final[KernelVersion] = (4, 18)
#: Kernel BTF at /sys/kernel/btf/vmlinux (needs CONFIG_DEBUG_INFO_BTF), which
#: libbpf reads to apply CO-RE relocations.  341dfcf8d78e "btf: expose BTF info
#: through sysfs" (committed Aug 2019, first tagged v5.4-rc1).
KERNEL_BTF: Final[KernelVersion] = (5, 4)
#: BTF-defined maps (SEC(".maps")) need libbpf only: libbpf turns them into
#: ordinary map-create calls and retries without BTF ids on kernels that
#: reject them, so they raise no kernel requirement of their own.
BTF_DEFINED_MAPS: Final[KernelVersion] = EBPF_BASELINE

#: BPF_MAXINSNS (include/uapi/linux/bpf_common.h): the per-program limit, in
#: 8-byte instruction slots, before LARGE_PROGRAMS (and for unprivileged
#: loaders still).
MAX_INSNS_BEFORE_5_2: Final = 4096
#: BPF_COMPLEXITY_LIMIT_INSNS from c04c0d2b968a on: the per-program limit for
#: privileged loaders.
MAX_INSNS: Final = 1_000_000


# --- Helpers, by id (enum bpf_func_id in include/uapi/linux/bpf.h) ----------

_H = Helper
HELPERS: Final[Mapping[int, Helper]] = MappingProxyType({
    1: _H("map_lookup_elem", (3, 19)),  # d0003ec01c66
    2: _H("map_update_elem", (3, 19)),  # d0003ec01c66
    3: _H("map_delete_elem", (3, 19)),  # d0003ec01c66
    # 2541517c32be "tracing, perf: Implement BPF programs attached to kprobes"
    4: _H("probe_read", (4, 1)),  # 2541517c32be
    5: _H("ktime_get_ns", (4, 1)),  # d9847d310ab4
    6: _H("trace_printk", (4, 1)),  # 9c959c863f82
    7: _H("get_prandom_u32", (4, 1)),  # 03e69b508b6f
    8: _H("get_smp_processor_id", (4, 1)),  # c04167ce2ca0
    9: _H("skb_store_bytes", (4, 1)),  # 91bc4822c3d6
    10: _H("l3_csum_replace", (4, 1)),  # 91bc4822c3d6
    11: _H("l4_csum_replace", (4, 1)),  # 91bc4822c3d6
    12: _H("tail_call", (4, 2)),  # 04fd61ab36ec
    13: _H("clone_redirect", (4, 2)),  # 3896d655f4d4
    14: _H("get_current_pid_tgid", (4, 2)),  # ffeedafbf023
    15: _H("get_current_uid_gid", (4, 2)),  # ffeedafbf023
    16: _H("get_current_comm", (4, 2)),  # ffeedafbf023
    17: _H("get_cgroup_classid", (4, 3)),  # 8d20aabe1c76
    18: _H("skb_vlan_push", (4, 3)),  # 4e10df9a60d9
    19: _H("skb_vlan_pop", (4, 3)),  # 4e10df9a60d9
    20: _H("skb_get_tunnel_key", (4, 3)),  # d3aa45ce6b94
    21: _H("skb_set_tunnel_key", (4, 3)),  # d3aa45ce6b94
    22: _H("perf_event_read", (4, 3)),  # 35578d798400
    23: _H("redirect", (4, 4)),  # 27b29f63058d
    24: _H("get_route_realm", (4, 4)),  # c46646d0484f
    25: _H("perf_event_output", (4, 4)),  # a43eec304259
    26: _H("skb_load_bytes", (4, 5)),  # 05c74e5e53f6 (ebpf-docs agrees)
    27: _H("get_stackid", (4, 6)),  # d5a3b1f69186
    28: _H("csum_diff", (4, 6)),  # 7d672345ed29
    29: _H("skb_get_tunnel_opt", (4, 6)),  # 14ca0751c96f
    30: _H("skb_set_tunnel_opt", (4, 6)),  # 14ca0751c96f
    31: _H("skb_change_proto", (4, 8)),  # 6578171a7ff0
    32: _H("skb_change_type", (4, 8)),  # d2485c4242a8
    33: _H("skb_under_cgroup", (4, 8)),  # 4a482f34afcc
    34: _H("get_hash_recalc", (4, 8)),  # 13c5c240f789
    35: _H("get_current_task", (4, 8)),  # 606274c5abd8
    36: _H("probe_write_user", (4, 8)),  # 96ae52279594 (ebpf-docs agrees)
    37: _H("current_task_under_cgroup", (4, 9)),  # 60d20f9195b2 (ebpf-docs agrees)
    38: _H("skb_change_tail", (4, 9)),  # 5293efe62df8
    39: _H("skb_pull_data", (4, 9)),  # 36bbef52c7eb
    40: _H("csum_update", (4, 9)),  # 36bbef52c7eb
    41: _H("set_hash_invalid", (4, 9)),  # 7a4b28c6cc9f
    42: _H("get_numa_node_id", (4, 10)),  # 2d0e30c30f84
    43: _H("skb_change_head", (4, 10)),  # 3a0af8fd61f9
    44: _H("xdp_adjust_head", (4, 10)),  # 17bedab27231
    45: _H("probe_read_str", (4, 11)),  # a5e8c07059d0
    46: _H("get_socket_cookie", (4, 12)),  # 91b8270f2a4d
    47: _H("get_socket_uid", (4, 12)),  # 6acc5c291068
    48: _H("set_hash", (4, 13)),  # ded092cd73c2
    49: _H("setsockopt", (4, 13)),  # 8c4b4c7e9ff0
    50: _H("skb_adjust_room", (4, 13)),  # 2be7e212d541
    51: _H("redirect_map", (4, 14)),  # 97f91a7cf04f
    52: _H("sk_redirect_map", (4, 14)),  # 174a79ff9515
    53: _H("sock_map_update", (4, 14)),  # 174a79ff9515
    54: _H("xdp_adjust_meta", (4, 15)),  # de8f3a83b0a0
    55: _H("perf_event_read_value", (4, 15)),  # 908432ca84fc
    56: _H("perf_prog_read_value", (4, 15)),  # 4bebdc7a85aa
    57: _H("getsockopt", (4, 15)),  # cd86d1fd2102
    58: _H("override_return", (4, 16)),  # 9802d86585db
    59: _H("sock_ops_cb_flags_set", (4, 16)),  # b13d88072172
    60: _H("msg_redirect_map", (4, 17)),  # 4f738adba30a
    61: _H("msg_apply_bytes", (4, 17)),  # 2a100317c9eb
    62: _H("msg_cork_bytes", (4, 17)),  # 91843d540a13
    63: _H("msg_pull_data", (4, 17)),  # 015632bb30da
    64: _H("bind", (4, 17)),  # d74bad4e74ee
    65: _H("xdp_adjust_tail", (4, 18)),  # b32cc5b9a346
    66: _H("skb_get_xfrm_state", (4, 18)),  # 12bed760a78d
    67: _H("get_stack", (4, 18)),  # c195651e565a (ebpf-docs; bcc names de2ff05f48af)
    68: _H("skb_load_bytes_relative", (4, 18)),  # 4e1ec56cdc59
    69: _H("fib_lookup", (4, 18)),  # 87f5fc7e48dd
    70: _H("sock_hash_update", (4, 18)),  # 81110384441a
    71: _H("msg_redirect_hash", (4, 18)),  # 81110384441a
    72: _H("sk_redirect_hash", (4, 18)),  # 81110384441a
    73: _H("lwt_push_encap", (4, 18)),  # fe94cc290f53
    74: _H("lwt_seg6_store_bytes", (4, 18)),  # fe94cc290f53
    75: _H("lwt_seg6_adjust_srh", (4, 18)),  # fe94cc290f53
    76: _H("lwt_seg6_action", (4, 18)),  # fe94cc290f53
    77: _H("rc_repeat", (4, 18)),  # f4364dcfc86d
    78: _H("rc_keydown", (4, 18)),  # f4364dcfc86d
    79: _H("skb_cgroup_id", (4, 18)),  # cb20b08ead40
    80: _H("get_current_cgroup_id", (4, 18)),  # bf6fa2c893c5
    81: _H("get_local_storage", (4, 19)),  # cd3394317653
    82: _H("sk_select_reuseport", (4, 19)),  # 2dbb9b9e6df6
    83: _H("skb_ancestor_cgroup_id", (4, 19)),  # 7723628101aa
    84: _H("sk_lookup_tcp", (4, 20)),  # 6acc9b432e67
    85: _H("sk_lookup_udp", (4, 20)),  # 6acc9b432e67
    86: _H("sk_release", (4, 20)),  # 6acc9b432e67
    87: _H("map_push_elem", (4, 20)),  # f1a2e44a3aec
    88: _H("map_pop_elem", (4, 20)),  # f1a2e44a3aec
    89: _H("map_peek_elem", (4, 20)),  # f1a2e44a3aec
    90: _H("msg_push_data", (4, 20)),  # 6fff607e2f14 (ebpf-docs agrees)
    91: _H("msg_pop_data", (5, 0)),  # 7246d8ed4dcc (ebpf-docs agrees)
    92: _H("rc_pointer_rel", (5, 0)),  # 01d3240a04f4
    93: _H("spin_lock", (5, 1)),  # d83525ca62cf (ebpf-docs agrees)
    94: _H("spin_unlock", (5, 1)),  # d83525ca62cf
    95: _H("sk_fullsock", (5, 1)),  # 46f8bc92758c
    96: _H("tcp_sock", (5, 1)),  # 655a51e536c0
    97: _H("skb_ecn_set_ce", (5, 1)),  # f7c917ba11a6
    98: _H("get_listener_sock", (5, 1)),  # dbafd7ddd623
    99: _H("skc_lookup_tcp", (5, 2)),  # edbf8c01de5a (ebpf-docs agrees)
    100: _H("tcp_check_syncookie", (5, 2)),  # 399040847084
    101: _H("sysctl_get_name", (5, 2)),  # 808649fb787d
    102: _H("sysctl_get_current_value", (5, 2)),  # 1d11b3016cec
    103: _H("sysctl_get_new_value", (5, 2)),  # 4e63acdff864
    104: _H("sysctl_set_new_value", (5, 2)),  # 4e63acdff864
    105: _H("strtol", (5, 2)),  # d7a4cb9b6705
    106: _H("strtoul", (5, 2)),  # d7a4cb9b6705
    107: _H("sk_storage_get", (5, 2)),  # 6ac99e8f23d4 (ebpf-docs agrees)
    108: _H("sk_storage_delete", (5, 2)),  # 6ac99e8f23d4
    109: _H("send_signal", (5, 3)),  # 8b401f9ed244 (ebpf-docs agrees)
    110: _H("tcp_gen_syncookie", (5, 4)),  # 70d66244317e (ebpf-docs; bcc says 5.3)
    111: _H("skb_output", (5, 5)),  # a7658e1a4164 (ebpf-docs agrees)
    # 6ae08ae3dea2 "bpf: Add probe_read_{user, kernel} and probe_read_{user, kernel}_str helpers"
    112: _H("probe_read_user", (5, 5)),  # 6ae08ae3dea2 (ebpf-docs agrees)
    113: _H("probe_read_kernel", (5, 5)),  # 6ae08ae3dea2
    114: _H("probe_read_user_str", (5, 5)),  # 6ae08ae3dea2
    115: _H("probe_read_kernel_str", (5, 5)),  # 6ae08ae3dea2
    116: _H("tcp_send_ack", (5, 6)),  # 206057fe020a (ebpf-docs; bcc says 5.5)
    117: _H("send_signal_thread", (5, 6)),  # 8482941f0906 (ebpf-docs; bcc says 5.5)
    118: _H("jiffies64", (5, 6)),  # 5576b991e9c1 (ebpf-docs; bcc says 5.5)
    # fff7b64355ea "bpf: Add bpf_read_branch_records() helper", committed 2020-02-19
    119: _H("read_branch_records", (5, 7)),  # fff7b64355ea (ebpf-docs; bcc says 5.6)
    # b4490c5c4e02 "bpf: Added new helper bpf_get_ns_current_pid_tgid", committed 2020-03-12
    120: _H("get_ns_current_pid_tgid", (5, 7)),  # b4490c5c4e02
    # d831ee84bfc9 "bpf: Add bpf_xdp_output() helper", committed 2020-03-12
    121: _H("xdp_output", (5, 7)),  # d831ee84bfc9 (ebpf-docs; bcc says 5.6)
    122: _H("get_netns_cookie", (5, 7)),  # f318903c0bf4 (ebpf-docs agrees)
    123: _H("get_current_ancestor_cgroup_id", (5, 7)),  # 0f09abd105da (ebpf-docs; bcc 5.6)
    124: _H("sk_assign", (5, 7)),  # cf7fbe660f2d (ebpf-docs; bcc says 5.6)
    125: _H("ktime_get_boot_ns", (5, 8)),  # 71d19214776e (ebpf-docs agrees)
    126: _H("seq_printf", (5, 8)),  # 492e639f0c22 (ebpf-docs; bcc says 5.7)
    127: _H("seq_write", (5, 8)),  # 492e639f0c22 (ebpf-docs; bcc says 5.7)
    128: _H("sk_cgroup_id", (5, 8)),  # f307fa2cb4c9 (ebpf-docs; bcc says 5.7)
    129: _H("sk_ancestor_cgroup_id", (5, 8)),  # f307fa2cb4c9 (ebpf-docs; bcc says 5.7)
    130: _H("ringbuf_output", (5, 8)),  # 457f44363a88 (ebpf-docs agrees)
    131: _H("ringbuf_reserve", (5, 8)),  # 457f44363a88
    132: _H("ringbuf_submit", (5, 8)),  # 457f44363a88
    133: _H("ringbuf_discard", (5, 8)),  # 457f44363a88
    134: _H("ringbuf_query", (5, 8)),  # 457f44363a88
    135: _H("csum_level", (5, 8)),  # 7cdec54f9713 (ebpf-docs; bcc says 5.7)
    136: _H("skc_to_tcp6_sock", (5, 9)),  # af7ec1383361 (ebpf-docs agrees)
    137: _H("skc_to_tcp_sock", (5, 9)),  # 478cfbdf5f13
    138: _H("skc_to_tcp_timewait_sock", (5, 9)),  # 478cfbdf5f13
    139: _H("skc_to_tcp_request_sock", (5, 9)),  # 478cfbdf5f13
    140: _H("skc_to_udp6_sock", (5, 9)),  # 0d4fad3e57df
    141: _H("get_task_stack", (5, 9)),  # fa28dcb82a38 (ebpf-docs agrees)
    142: _H("load_hdr_opt", (5, 10)),  # 0813a841566f
    143: _H("store_hdr_opt", (5, 10)),  # 0813a841566f
    144: _H("reserve_hdr_opt", (5, 10)),  # 0813a841566f
    145: _H("inode_storage_get", (5, 10)),  # 8ea636848aca
    146: _H("inode_storage_delete", (5, 10)),  # 8ea636848aca
    147: _H("d_path", (5, 10)),  # 6e22ab9da793
    148: _H("copy_from_user", (5, 10)),  # 07be4c4a3e7a
    149: _H("snprintf_btf", (5, 10)),  # c4d0bfb45068
    150: _H("seq_printf_btf", (5, 10)),  # eb411377aed9
    151: _H("skb_cgroup_classid", (5, 10)),  # b426ce83baa7
    152: _H("redirect_neigh", (5, 10)),  # b4ab31414970
    153: _H("per_cpu_ptr", (5, 10)),  # eaa6bcb71ef6
    154: _H("this_cpu_ptr", (5, 10)),  # 63d9b80dcf2c
    155: _H("redirect_peer", (5, 10)),  # 9aa1206e8f48
    156: _H("task_storage_get", (5, 11)),  # 4cf1bc1f1045
    157: _H("task_storage_delete", (5, 11)),  # 4cf1bc1f1045
    158: _H("get_current_task_btf", (5, 11)),  # 3ca1032ab7ab (ebpf-docs agrees)
    159: _H("bprm_opts_set", (5, 11)),  # 3f6719c7b62f
    160: _H("ktime_get_coarse_ns", (5, 11)),  # d05512618056
    161: _H("ima_inode_hash", (5, 11)),  # 27672f0d280a
    162: _H("sock_from_file", (5, 11)),  # 4f19cab76136
    163: _H("check_mtu", (5, 12)),  # 34b2021cc616
    164: _H("for_each_map_elem", (5, 13)),  # 69c087ba6225
    165: _H("snprintf", (5, 13)),  # 7b15523a989b
    166: _H("sys_bpf", (5, 14)),  # 79a7f8bdb159
    167: _H("btf_find_by_name_kind", (5, 14)),  # 3d78417b60fb
    168: _H("sys_close", (5, 14)),  # 3abea089246f
    169: _H("timer_init", (5, 15)),  # b00628b1c7d5
    170: _H("timer_set_callback", (5, 15)),  # b00628b1c7d5
    171: _H("timer_start", (5, 15)),  # b00628b1c7d5
    172: _H("timer_cancel", (5, 15)),  # b00628b1c7d5
    173: _H("get_func_ip", (5, 15)),  # 5d8b583d04ae
    174: _H("get_attach_cookie", (5, 15)),  # 7adfc6c9b315
    175: _H("task_pt_regs", (5, 15)),  # dd6e10fbd9fb
    176: _H("get_branch_snapshot", (5, 16)),  # 856c02dbce4f
    177: _H("trace_vprintk", (5, 16)),  # 10aceb629e19
    178: _H("skc_to_unix_sock", (5, 16)),  # 9eeb3aa33ae0
    179: _H("kallsyms_lookup_name", (5, 16)),  # d6aef08a872b
    180: _H("find_vma", (5, 17)),  # 7c7e3d31e785
    181: _H("loop", (5, 17)),  # e6f2dd0f8067
    182: _H("strncmp", (5, 17)),  # c5fb19937455
    183: _H("get_func_arg", (5, 17)),  # f92c1e183604
    184: _H("get_func_ret", (5, 17)),  # f92c1e183604
    185: _H("get_func_arg_cnt", (5, 17)),  # f92c1e183604
    186: _H("get_retval", (5, 18)),  # b44123b4a3dc
    187: _H("set_retval", (5, 18)),  # b44123b4a3dc
    188: _H("xdp_get_buff_len", (5, 18)),  # 0165cc817075
    189: _H("xdp_load_bytes", (5, 18)),  # 3f364222d032
    190: _H("xdp_store_bytes", (5, 18)),  # 3f364222d032
    191: _H("copy_from_user_task", (5, 18)),  # 376040e47334
    192: _H("skb_set_tstamp", (5, 18)),  # 9bb984f28d5b
    193: _H("ima_file_hash", (5, 18)),  # 174b16946e39
    194: _H("kptr_xchg", (5, 19)),  # c0a5a21c25f3
    195: _H("map_lookup_percpu_elem", (5, 19)),  # 07343110b293
    196: _H("skc_to_mptcp_sock", (5, 19)),  # 3bc253c2e652
    197: _H("dynptr_from_mem", (5, 19)),  # 263ae152e962
    198: _H("ringbuf_reserve_dynptr", (5, 19)),  # bc34dee65a65
    199: _H("ringbuf_submit_dynptr", (5, 19)),  # bc34dee65a65
    200: _H("ringbuf_discard_dynptr", (5, 19)),  # bc34dee65a65
    201: _H("dynptr_read", (5, 19)),  # 13bbbfbea759
    202: _H("dynptr_write", (5, 19)),  # 13bbbfbea759
    203: _H("dynptr_data", (5, 19)),  # 34d4ef5775f7
    204: _H("tcp_raw_gen_syncookie_ipv4", (6, 0)),  # 33bf9885040c
    205: _H("tcp_raw_gen_syncookie_ipv6", (6, 0)),  # 33bf9885040c
    206: _H("tcp_raw_check_syncookie_ipv4", (6, 0)),  # 33bf9885040c
    207: _H("tcp_raw_check_syncookie_ipv6", (6, 0)),  # 33bf9885040c
    208: _H("ktime_get_tai_ns", (6, 1)),  # c8996c98f703
    209: _H("user_ringbuf_drain", (6, 1)),  # 205715673844
    210: _H("cgrp_storage_get", (6, 2)),  # c4bcfb38a95e
    211: _H("cgrp_storage_delete", (6, 2)),  # c4bcfb38a95e
})
del _H

#: Helper id of bpf_tail_call (a tail call is a call to this helper).
TAIL_CALL_HELPER: Final = 12


# --- Map types, by BPF_MAP_TYPE_* value ---------------------------------------

_M = MapType
MAP_TYPES: Final[Mapping[int, MapType]] = MappingProxyType({
    1: _M("hash", (3, 19)),  # 0f8e4bd8a1fc
    2: _M("array", (3, 19)),  # 28fbcfa08d8e
    3: _M("prog_array", (4, 2)),  # 04fd61ab36ec
    4: _M("perf_event_array", (4, 3)),  # ea317b267e9d
    5: _M("percpu_hash", (4, 6)),  # 824bd0ce6c7c
    6: _M("percpu_array", (4, 6)),  # a10423b87a7e
    7: _M("stack_trace", (4, 6)),  # d5a3b1f69186
    8: _M("cgroup_array", (4, 8)),  # 4ed8ec521ed5
    9: _M("lru_hash", (4, 10)),  # 29ba732acbee, 3a08c2fd7634
    10: _M("lru_percpu_hash", (4, 10)),  # 8f8449384ec3, 961578b63474
    11: _M("lpm_trie", (4, 11)),  # b95a5c4db09b
    12: _M("array_of_maps", (4, 12)),  # 56f668dfe00d
    13: _M("hash_of_maps", (4, 12)),  # bcc6b1b7ebf8
    14: _M("devmap", (4, 14)),  # 546ac1ffb70d
    15: _M("sockmap", (4, 14)),  # 174a79ff9515
    16: _M("cpumap", (4, 15)),  # 6710e1126934
    17: _M("xskmap", (4, 18)),  # fbfc504a24f5
    18: _M("sockhash", (4, 18)),  # 81110384441a
    19: _M("cgroup_storage", (4, 19)),  # de9cbbaadba5
    20: _M("reuseport_sockarray", (4, 19)),  # 5dc4c4b7d4e8
    21: _M("percpu_cgroup_storage", (4, 20)),  # b741f1630346
    22: _M("queue", (4, 20)),  # f1a2e44a3aec
    23: _M("stack", (4, 20)),  # f1a2e44a3aec
    24: _M("sk_storage", (5, 2)),  # 6ac99e8f23d4
    25: _M("devmap_hash", (5, 4)),  # 6f9d451ab1a3
    26: _M("struct_ops", (5, 6)),  # 85d33df357b6
    # 457f44363a88 "bpf: Implement BPF ring buffer and verifier support for it"
    27: _M("ringbuf", (5, 8)),  # 457f44363a88
    28: _M("inode_storage", (5, 10)),  # 8ea636848aca
    29: _M("task_storage", (5, 11)),  # 4cf1bc1f1045
    30: _M("bloom_filter", (5, 16)),  # 9330986c0300
    31: _M("user_ringbuf", (6, 1)),  # 583c1f420173
})
del _M


# --- Program kinds, by libtrace's name for a libbpf SEC() family ------------
# Versions are per program type; an attach type added later within a type
# (e.g. a newer cgroup/sock_addr hook) may need a newer kernel than its row.
# Kinds libbpf knows but that have no row here raise no requirement.

PROGRAM_TYPES: Final[Mapping[str, KernelVersion]] = MappingProxyType({
    "socket": (3, 19),  # ddd872bc3098 (BPF_PROG_TYPE_SOCKET_FILTER)
    "kprobe": (4, 1),  # 2541517c32be "tracing, perf: Implement BPF programs attached to kprobes"
    "kretprobe": (4, 1),  # 2541517c32be
    "ksyscall": (4, 1),  # 2541517c32be (libbpf attaches a kprobe to the syscall wrapper)
    "kretsyscall": (4, 1),  # 2541517c32be (as ksyscall)
    "tc": (4, 1),  # 96be4325f443 (BPF_PROG_TYPE_SCHED_CLS)
    "action": (4, 1),  # 94caee8c312d (BPF_PROG_TYPE_SCHED_ACT)
    "uprobe": (4, 3),  # 04a22fae4cbc "tracing, perf: Implement BPF programs attached to uprobes"
    "uretprobe": (4, 3),  # 04a22fae4cbc
    "usdt": (4, 3),  # 04a22fae4cbc (libbpf's USDT support attaches uprobes)
    "tracepoint": (4, 7),  # 98b5c2c65c29 "perf, bpf: allow bpf programs attach to tracepoints"
    "xdp": (4, 8),  # 6a773a15a1e8
    "perf_event": (4, 9),  # 0515e5999a46
    "cgroup_skb": (4, 10),  # 0e33661de493
    "cgroup_sock": (4, 10),  # 610236587600
    "lwt": (4, 10),  # 3a0af8fd61f9 (lwt_in, lwt_out, lwt_xmit)
    "sockops": (4, 13),  # 40304b2a1567
    "sk_skb": (4, 14),  # b005fd189cec
    "cgroup_device": (4, 15),  # ebc614f68736
    "sk_msg": (4, 17),  # 4f738adba30a
    "raw_tracepoint": (4, 17),  # c4f6699dfcb8
    "cgroup_sock_addr": (4, 17),  # 4fbac77d2d09
    "lwt_seg6local": (4, 18),  # 004d4b274e2a
    "lirc_mode2": (4, 18),  # f4364dcfc86d
    "sk_reuseport": (4, 19),  # 2dbb9b9e6df6
    "flow_dissector": (4, 20),  # d58e468b1112
    "cgroup_sysctl": (5, 2),  # 7b146cebe30c
    "raw_tracepoint_writable": (5, 2),  # 9df1c28bb752
    "cgroup_sockopt": (5, 3),  # 0d01da6afc54
    "tp_btf": (5, 5),  # f1b9509c2fb0 (BPF_PROG_TYPE_TRACING)
    "fentry": (5, 5),  # fec56f5890d9 (BPF trampoline)
    "fexit": (5, 5),  # fec56f5890d9
    "struct_ops": (5, 6),  # 27ae7997a661
    "freplace": (5, 6),  # be8704ff07d2 (BPF_PROG_TYPE_EXT)
    "lsm": (5, 7),  # fc611f47f218, 641cd7b06c91
    "iter": (5, 8),  # 180139dca8b3
    "sk_lookup": (5, 9),  # e9ddbb7707ff
    "syscall": (5, 14),  # 79a7f8bdb159 (ebpf-docs; bcc's program-type table says 5.15)
})


# --- Program kinds: libbpf's SEC() families -------------------------------------

#: prog_type of a section no libbpf SEC() family matches.
UNKNOWN_PROGRAM: Final = "unknown"

#: (SEC() prefix, kind), after libbpf's section_defs; a section matches a
#: prefix when it equals it or continues with "/", so "kprobe" does not take
#: "kprobe.multi/..." and the order of the rows does not matter.
SECTION_PREFIXES: Final[tuple[tuple[str, str], ...]] = (
    ("socket", "socket"),
    ("sk_reuseport", "sk_reuseport"),
    ("kprobe.multi", "kprobe.multi"),
    ("kretprobe.multi", "kretprobe.multi"),
    ("kprobe", "kprobe"),
    ("kretprobe", "kretprobe"),
    ("ksyscall", "ksyscall"),
    ("kretsyscall", "kretsyscall"),
    ("uprobe.s", "uprobe.s"),
    ("uretprobe.s", "uretprobe.s"),
    ("uprobe", "uprobe"),
    ("uretprobe", "uretprobe"),
    ("usdt", "usdt"),
    ("tc", "tc"),
    ("classifier", "tc"),
    ("action", "action"),
    ("tracepoint", "tracepoint"),
    ("tp", "tracepoint"),
    ("raw_tracepoint.w", "raw_tracepoint_writable"),
    ("raw_tp.w", "raw_tracepoint_writable"),
    ("raw_tracepoint", "raw_tracepoint"),
    ("raw_tp", "raw_tracepoint"),
    ("tp_btf", "tp_btf"),
    ("fentry.s", "fentry.s"),
    ("fexit.s", "fexit.s"),
    ("fmod_ret.s", "fmod_ret.s"),
    ("fentry", "fentry"),
    ("fexit", "fexit"),
    ("fmod_ret", "fmod_ret"),
    ("freplace", "freplace"),
    ("lsm.s", "lsm.s"),
    ("lsm_cgroup", "lsm_cgroup"),
    ("lsm", "lsm"),
    ("iter.s", "iter.s"),
    ("iter", "iter"),
    ("syscall", "syscall"),
    ("xdp.frags", "xdp"),
    ("xdp", "xdp"),
    ("perf_event", "perf_event"),
    ("lwt_in", "lwt"),
    ("lwt_out", "lwt"),
    ("lwt_xmit", "lwt"),
    ("lwt_seg6local", "lwt_seg6local"),
    ("sockops", "sockops"),
    ("sk_skb", "sk_skb"),
    ("sk_msg", "sk_msg"),
    ("lirc_mode2", "lirc_mode2"),
    ("flow_dissector", "flow_dissector"),
    ("cgroup_skb", "cgroup_skb"),
    ("cgroup/skb", "cgroup_skb"),
    ("cgroup/dev", "cgroup_device"),
    ("cgroup/sysctl", "cgroup_sysctl"),
    ("cgroup/getsockopt", "cgroup_sockopt"),
    ("cgroup/setsockopt", "cgroup_sockopt"),
    *((f"cgroup/{hook}", "cgroup_sock")
      for hook in ("sock_create", "sock_release", "sock", "post_bind4", "post_bind6")),
    *((f"cgroup/{hook}{family}", "cgroup_sock_addr")
      for hook in ("bind", "connect", "sendmsg", "recvmsg", "getpeername", "getsockname")
      for family in ("4", "6")),
    ("struct_ops", "struct_ops"),
    ("sk_lookup", "sk_lookup"),
)


def program_kind(section: str) -> str:
    """The libbpf SEC() family of a program section, or ``"unknown"``."""
    name = section.removeprefix("?")  # "?" marks a program libbpf does not autoload
    for prefix, kind in SECTION_PREFIXES:
        if name == prefix or name.startswith(prefix + "/"):
            return kind
    return UNKNOWN_PROGRAM


# --- Lookups -------------------------------------------------------------------

def helper_name(helper_id: int) -> str:
    """The helper's name without ``bpf_``, or ``helper_<id>`` for an unknown id."""
    helper = HELPERS.get(helper_id)
    return helper.name if helper else f"helper_{helper_id}"


def map_type_name(map_type: int) -> str:
    """The map type's name, or ``map_type_<n>`` for an unknown value."""
    known = MAP_TYPES.get(map_type)
    return known.name if known else f"map_type_{map_type}"


def helper_since(name: str) -> KernelVersion:
    """The first kernel with helper ``bpf_<name>``.

    Raises:
        KeyError: the table has no helper of that name.
    """
    for helper in HELPERS.values():
        if helper.name == name:
            return helper.since
    raise KeyError(name)


def map_type_since(name: str) -> KernelVersion:
    """The first kernel with ``BPF_MAP_TYPE_<NAME>`` (``name`` lower-case, as in the table).

    Raises:
        KeyError: the table has no map type of that name.
    """
    for map_type in MAP_TYPES.values():
        if map_type.name == name:
            return map_type.since
    raise KeyError(name)


def newest_known() -> KernelVersion:
    """The newest kernel this table knows a feature of.

    A helper id or map type beyond the table is at least this new, because
    both enums only ever grow at the end.
    """
    return max(
        max(h.since for h in HELPERS.values()),
        max(m.since for m in MAP_TYPES.values()),
    )


def format_version(version: KernelVersion) -> str:
    """``(5, 8)`` -> ``"5.8"``."""
    return f"{version[0]}.{version[1]}"
