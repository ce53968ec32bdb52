// SPDX-License-Identifier: GPL-2.0
/* ping.bpf.c - the smallest object that exercises libtrace's libbpf binding.
 *
 * Every program fires only for the process whose tgid is in `config`, so the
 * tests are deterministic however busy the machine is:
 *
 *   getppid()  -> ping_ringbuf: a 16-byte `struct ping` into the ring buffer
 *                 `rb`, and +1 in the per-CPU counter `calls`
 *   getpgid(x) -> ping_perf:    a 20-byte `struct pong` into the perf event
 *                 array `pb` (20 = 4-byte size + 20 fills 24, no padding)
 *   getsid(x)  -> ping_unused:  never expected to load (tests set_autoload)
 *   uprobe     -> ping_uprobe:  +1 in `uprobe_hits` (attached explicitly)
 *
 * `kv` is a plain hash map for the user-space map API only.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#define PING_MAGIC 0x474e4950 /* "PING" little-endian */
#define PONG_MAGIC 0x474e4f50 /* "PONG" little-endian */
#define RB_BYTES (16 * 4096)  /* ring buffer size: a power-of-two number of pages */
#define KV_ENTRIES 16         /* room for the map round-trip test */

/* A CO-RE relocation, so btf_custom_path matters at load time. */
struct task_struct {
	int tgid;
} __attribute__((preserve_access_index));

/* The syscall tracepoints' context: common header, syscall nr, six args. */
struct sys_enter_ctx {
	__u64 common;
	long id;
	unsigned long args[6];
};

struct ping {
	__u32 magic;
	__u32 pid;
	__u32 tid;
	__u32 core_tgid;
};

struct pong {
	__u32 magic;
	__u32 pid;
	__u32 tid;
	__u32 arg;
	__u32 cpu;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32); /* tgid of the test process */
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, RB_BYTES);
} rb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} pb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} uprobe_hits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KV_ENTRIES);
	__type(key, __u32);
	__type(value, __u64);
} kv SEC(".maps");

static __always_inline int is_target(__u32 tgid)
{
	__u32 zero = 0;
	__u32 *target = bpf_map_lookup_elem(&config, &zero);

	return target && *target && *target == tgid;
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int ping_ringbuf(struct sys_enter_ctx *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct task_struct *task = (void *)bpf_get_current_task();
	struct ping ev = {};
	__u32 zero = 0;
	__u64 *count;

	if (!is_target(id >> 32))
		return 0;
	ev.magic = PING_MAGIC;
	ev.pid = id >> 32;
	ev.tid = (__u32)id;
	ev.core_tgid = BPF_CORE_READ(task, tgid);
	bpf_ringbuf_output(&rb, &ev, sizeof(ev), 0);
	count = bpf_map_lookup_elem(&calls, &zero);
	if (count)
		*count += 1;
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_getpgid")
int ping_perf(struct sys_enter_ctx *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct pong ev = {};

	if (!is_target(id >> 32))
		return 0;
	ev.magic = PONG_MAGIC;
	ev.pid = id >> 32;
	ev.tid = (__u32)id;
	ev.arg = (__u32)ctx->args[0];
	ev.cpu = bpf_get_smp_processor_id();
	bpf_perf_event_output(ctx, &pb, BPF_F_CURRENT_CPU, &ev, sizeof(ev));
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_getsid")
int ping_unused(struct sys_enter_ctx *ctx)
{
	return 0;
}

SEC("uprobe")
int ping_uprobe(void *ctx)
{
	__u32 zero = 0;
	__u64 *hits;

	if (!is_target(bpf_get_current_pid_tgid() >> 32))
		return 0;
	hits = bpf_map_lookup_elem(&uprobe_hits, &zero);
	if (hits)
		__sync_fetch_and_add(hits, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
