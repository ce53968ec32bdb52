/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The BPF ring buffer's records decoded into SocketEvents, a batch per call.
 *
 * Theory of operation: libtrace/tracer/ringbuf.py explains the ring's layout
 * and walks it in Python; this module does the same walk and, per record,
 * what libtrace/tracer/events.py's decode() does, so that draining costs no
 * Python call per event.  It is the compiled form of those two, not a second
 * design: events.py configures it with the SocketEvent class, the slots of
 * its fields and the same lookup tables and caching functions decode() uses,
 * and tests/tracer/test_native.py checks that both give equal events.  Unlike
 * the Python walk it loads the positions and lengths with acquire and stores
 * the consumer position with release semantics (as libbpf does), so it is
 * right on any architecture.
 *
 * Values that repeat (comm, addresses, flags, and ints such as pids, ports
 * and cgroup ids) come from small direct-mapped caches of Python objects,
 * filled through events.py's functions (ints: made here) on a miss.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <linux/types.h>

/* struct lt_event, as the BPF programs write it: the one definition, shared
 * with them (found beside this file's directory, in the package). */
#include "../bpf/socket_trace.h"

#define BUSY_BIT (1u << 31)
#define DISCARD_BIT (1u << 30)
#define RECORD_HEADER 8

/* SocketEvent's fields, in the order configure() receives their slots. */
enum field {
	F_TYPE, F_PID, F_TID, F_COMM, F_FD, F_DIRECTION, F_SYSCALL, F_L4, F_FAMILY,
	F_LADDR, F_LPORT, F_RADDR, F_RPORT, F_TS_NS, F_OFFSET, F_SIZE, F_CGROUP_ID,
	F_FLAGS, F_DATA, N_FIELDS
};

#define SMALL 256        /* table size for enum values and names */
#define COMM_CACHE 256   /* direct-mapped cache slots (powers of two) */
#define ADDR_CACHE 1024
#define INT_CACHE 1024

struct comm_slot {
	char key[16];
	PyObject *value;
};

struct int_slot {
	uint64_t key;
	PyObject *value;
};

struct addr_slot {
	uint16_t family;
	uint8_t key[16];
	PyObject *value;
};

static struct {
	PyTypeObject *cls;
	Py_ssize_t offsets[N_FIELDS];
	const char *names[N_FIELDS]; /* the slots' own names: for an event of another class */
	PyObject *types[SMALL];     /* EventType by value, NULL: unknown */
	PyObject *directions[2];
	PyObject *syscalls[SMALL];  /* Syscall by value */
	PyObject *syscall_unknown;
	PyObject *l4_names[SMALL];  /* "tcp"/"udp"/"" */
	PyObject *families[SMALL];  /* "ipv4"/"ipv6"/"" */
	PyObject *flags[SMALL];     /* EventFlag by value, filled on demand */
	PyObject *address_fn;       /* (family, raw16) -> str */
	PyObject *comm_fn;          /* raw16 -> str */
	PyObject *flags_fn;         /* int -> EventFlag */
	uint32_t process_types;     /* bit per event type handed to `process` */
	struct comm_slot comms[COMM_CACHE];
	struct addr_slot addrs[ADDR_CACHE];
	struct int_slot ints[INT_CACHE];
} st;

/* A cache slot's index from a 16-byte key (a comm, an address): two word
 * loads and a multiply-xor fold.  The caches only need a spread; FNV-1a byte
 * by byte, as this was, cost ~80 instructions a key, three keys an event. */
static uint32_t hash16(const void *data)
{
	uint64_t a, b;

	memcpy(&a, data, 8);
	memcpy(&b, (const char *)data + 8, 8);
	a = (a ^ (b * 0x9E3779B97F4A7C15ull)) * 0xC2B2AE3D27D4EB4Full;
	return (uint32_t)(a >> 32);
}

static int same16(const void *x, const void *y)
{
	uint64_t a[2], b[2];

	memcpy(a, x, 16);
	memcpy(b, y, 16);
	return ((a[0] ^ b[0]) | (a[1] ^ b[1])) == 0;
}

/* An int field's object.  Most repeat from event to event (pids, ports,
 * cgroup ids) and are above CPython's small ints, so each was a new int,
 * allocated and freed per event: a direct-mapped cache of the objects, keyed
 * by value, gives the same value as the one object (ints are immutable). */
static PyObject *int_of(uint64_t value)
{
	struct int_slot *slot;

	if (value < SMALL)
		return PyLong_FromUnsignedLongLong(value); /* CPython's own small ints */
	slot = &st.ints[(uint32_t)((value * 0x9E3779B97F4A7C15ull) >> 32) & (INT_CACHE - 1)];
	if (slot->value && slot->key == value)
		return Py_NewRef(slot->value);
	Py_XSETREF(slot->value, PyLong_FromUnsignedLongLong(value));
	if (!slot->value)
		return NULL;
	slot->key = value;
	return Py_NewRef(slot->value);
}

static PyObject *comm_of(const char raw[16])
{
	struct comm_slot *slot = &st.comms[hash16(raw) & (COMM_CACHE - 1)];
	PyObject *value;

	if (slot->value && same16(slot->key, raw))
		return Py_NewRef(slot->value);
	value = PyObject_CallFunction(st.comm_fn, "y#", raw, (Py_ssize_t)16);
	if (!value)
		return NULL;
	memcpy(slot->key, raw, 16);
	Py_XSETREF(slot->value, Py_NewRef(value));
	return value;
}

static PyObject *address_of(uint16_t family, const uint8_t raw[16])
{
	uint32_t h = hash16(raw) ^ family;
	struct addr_slot *slot = &st.addrs[h & (ADDR_CACHE - 1)];
	PyObject *value;

	if (slot->value && slot->family == family && same16(slot->key, raw))
		return Py_NewRef(slot->value);
	value = PyObject_CallFunction(st.address_fn, "Hy#", family, (const char *)raw,
				      (Py_ssize_t)16);
	if (!value)
		return NULL;
	slot->family = family;
	memcpy(slot->key, raw, 16);
	Py_XSETREF(slot->value, Py_NewRef(value));
	return value;
}

static PyObject *flags_of(uint16_t flags)
{
	PyObject *value;

	if (flags < SMALL && st.flags[flags])
		return Py_NewRef(st.flags[flags]);
	value = PyObject_CallFunction(st.flags_fn, "H", flags);
	if (value && flags < SMALL)
		st.flags[flags] = Py_NewRef(value);
	return value;
}

static PyObject *name_of(PyObject *const table[SMALL], uint16_t value, PyObject *otherwise)
{
	PyObject *name = value < SMALL ? table[value] : NULL;

	return Py_NewRef(name ? name : otherwise);
}

/* One record into a new SocketEvent.  Returns 1 with *out set, 0 for a record
 * that is not an event (*out NULL: counted as a decode error), -1 with an
 * exception set. */
static int decode(const char *record, uint32_t length, PyObject **out)
{
	struct lt_event h;
	PyObject *values[N_FIELDS] = {0};
	PyObject *event;
	int i;

	*out = NULL;
	if (length < sizeof(h))
		return 0;
	memcpy(&h, record, sizeof(h));
	if ((uint64_t)sizeof(h) + h.captured > length || !st.types[h.type])
		return 0;
	values[F_TYPE] = Py_NewRef(st.types[h.type]);
	values[F_PID] = int_of(h.pid);
	values[F_TID] = int_of(h.tid);
	values[F_COMM] = comm_of(h.comm);
	values[F_FD] = PyLong_FromLong(h.fd);
	values[F_DIRECTION] = Py_NewRef(st.directions[h.direction & 1]);
	values[F_SYSCALL] = name_of(st.syscalls, h.syscall, st.syscall_unknown);
	values[F_L4] = name_of(st.l4_names, h.l4, st.l4_names[0]);
	values[F_FAMILY] = name_of(st.families, h.family, st.families[0]);
	values[F_LADDR] = address_of(h.family, h.laddr);
	values[F_LPORT] = int_of(h.lport);
	values[F_RADDR] = address_of(h.family, h.raddr);
	values[F_RPORT] = int_of(h.rport);
	values[F_TS_NS] = PyLong_FromUnsignedLongLong(h.ts_ns);
	values[F_OFFSET] = PyLong_FromUnsignedLongLong(h.offset);
	values[F_SIZE] = PyLong_FromUnsignedLong(h.size);
	values[F_CGROUP_ID] = int_of(h.cgroup_id);
	values[F_FLAGS] = flags_of(h.flags);
	values[F_DATA] = PyBytes_FromStringAndSize(record + sizeof(h), h.captured);
	for (i = 0; i < N_FIELDS; i++)
		if (!values[i])
			goto fail;
	/* Every value exists before the object does: a collection that runs
	 * meanwhile never sees a half-built event. */
	event = st.cls->tp_alloc(st.cls, 0);
	if (!event)
		goto fail;
	for (i = 0; i < N_FIELDS; i++)
		*(PyObject **)((char *)event + st.offsets[i]) = values[i]; /* steals */
	/* An event holds only ints, strings, bytes and enum members, and is
	 * frozen: it can be in no reference cycle, so the cyclic collector need
	 * not visit it (as CPython untracks tuples of such values).  Hundreds of
	 * thousands of them wait in the time order at a time; visiting each on
	 * every collection cost more than decoding it. */
	if (PyObject_GC_IsTracked(event))
		PyObject_GC_UnTrack(event);
	*out = event;
	return 1;
fail:
	for (i = 0; i < N_FIELDS; i++)
		Py_XDECREF(values[i]);
	return -1;
}

static int configured(void)
{
	if (!st.cls) {
		PyErr_SetString(PyExc_RuntimeError, "_ringdecode is not configured");
		return 0;
	}
	return 1;
}

/* Hand a decoded event to its list (a process event, or any other); steals it. */
static int deliver(PyObject *event, const char *record, PyObject *events, PyObject *process)
{
	uint8_t type;
	int failed;

	memcpy(&type, record + offsetof(struct lt_event, type), 1);
	failed = PyList_Append(type < 32 && (st.process_types >> type) & 1 ? process : events,
			       event);
	Py_DECREF(event);
	return failed;
}

/* Decode a ring record's events into their lists: one event, or a CPU's batch
 * of them back to back, each starting 8-byte aligned (struct lt_batch in
 * socket_trace.bpf.c).  1: all decoded; 0: a malformed one (it and the rest
 * are dropped: where the next starts is unknown); -1: an exception is set. */
static int decode_record(const char *record, uint32_t length, PyObject *events,
			 PyObject *process)
{
	uint32_t at = 0;

	do {
		uint32_t captured;
		PyObject *event;
		int rc = decode(record + at, length - at, &event);

		if (rc <= 0)
			return rc;
		memcpy(&captured, record + at + offsetof(struct lt_event, captured), 4);
		if (deliver(event, record + at, events, process) < 0)
			return -1;
		at += (sizeof(struct lt_event) + captured + 7) & ~7u;
	} while (at < length && length - at >= sizeof(struct lt_event));
	return 1;
}

/* decode(record) -> SocketEvent | None: one record, as events.decode() without the errors. */
static PyObject *py_decode(PyObject *self, PyObject *arg)
{
	Py_buffer view;
	PyObject *event;
	int rc;

	if (!configured() || PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
		return NULL;
	rc = view.len > UINT32_MAX ? 0 : decode(view.buf, (uint32_t)view.len, &event);
	PyBuffer_Release(&view);
	if (rc < 0)
		return NULL;
	if (rc == 0)
		Py_RETURN_NONE;
	return event;
}

/* An event's field `f`, a new reference: from its slot for the event class,
 * by name for anything else (a subclass, a stand-in). */
static PyObject *field_of(PyObject *event, enum field f)
{
	PyObject *value;

	if (Py_TYPE(event) != st.cls)
		return PyObject_GetAttrString(event, st.names[f]);
	value = *(PyObject **)((char *)event + st.offsets[f]);
	if (!value) {
		PyErr_Format(PyExc_AttributeError, "%s is not set", st.names[f]);
		return NULL;
	}
	return Py_NewRef(value);
}

/* The fields data_fields() gives, in its order (events.py's DATA_FIELDS). */
static const enum field data_order[] = {
	F_TYPE, F_TS_NS, F_L4, F_RADDR, F_RPORT, F_FLAGS,
	F_PID, F_FD, F_DATA, F_DIRECTION, F_OFFSET, F_SIZE,
};
#define N_DATA_FIELDS (sizeof(data_order) / sizeof(data_order[0]))

/* data_fields(event) -> tuple: the fields the live record pipeline reads of a
 * data event, read from their slots (compiled code reads an attribute of the
 * uncompiled SocketEvent through the generic lookup, ~160 instructions each). */
static PyObject *py_data_fields(PyObject *self, PyObject *event)
{
	PyObject *out;
	size_t i;

	if (!configured())
		return NULL;
	out = PyTuple_New(N_DATA_FIELDS);
	if (!out)
		return NULL;
	for (i = 0; i < N_DATA_FIELDS; i++) {
		PyObject *value = field_of(event, data_order[i]);

		if (!value) {
			Py_DECREF(out);
			return NULL;
		}
		PyTuple_SET_ITEM(out, i, value);
	}
	return out;
}

/* ts_ns(event) -> int: the time order's sort key (operator.attrgetter's
 * generic lookup on the uncompiled class cost ~200 instructions an event). */
static PyObject *py_ts_ns(PyObject *self, PyObject *event)
{
	if (!configured())
		return NULL;
	return field_of(event, F_TS_NS);
}

/* payload_bytes(events) -> int: the bytes of payload a list of events carries. */
static PyObject *py_payload_bytes(PyObject *self, PyObject *events)
{
	unsigned long long total = 0;
	Py_ssize_t i;

	if (!configured())
		return NULL;
	if (!PyList_Check(events)) {
		PyErr_SetString(PyExc_TypeError, "payload_bytes() takes a list of events");
		return NULL;
	}
	for (i = 0; i < PyList_GET_SIZE(events); i++) {
		PyObject *data = field_of(PyList_GET_ITEM(events, i), F_DATA);
		Py_ssize_t size;

		if (!data)
			return NULL;
		size = PyObject_Size(data);
		Py_DECREF(data);
		if (size < 0)
			return NULL;
		total += (unsigned long long)size;
	}
	return PyLong_FromUnsignedLongLong(total);
}

/* fill_in(event, changes) -> event: set fields of an event in place, from
 * ((field index, value), ...) with the indexes of configure()'s slots (events.py's
 * NATIVE_FIELDS): for the no-BTF variant, which completes each event from
 * /proc.  Only for an event nobody else holds yet (the tracer's own, just
 * decoded): events are frozen.  The slot descriptors' __set__, called from
 * Python, cost a call with an argument tuple per field. */
static PyObject *py_fill_in(PyObject *self, PyObject *args)
{
	PyObject *event, *changes;
	Py_ssize_t i;

	if (!PyArg_ParseTuple(args, "OO!", &event, &PyTuple_Type, &changes))
		return NULL;
	if (!configured())
		return NULL;
	for (i = 0; i < PyTuple_GET_SIZE(changes); i++) {
		PyObject *pair = PyTuple_GET_ITEM(changes, i);
		long index;
		PyObject *value;

		if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
			PyErr_SetString(PyExc_TypeError, "fill_in() takes (index, value) pairs");
			return NULL;
		}
		index = PyLong_AsLong(PyTuple_GET_ITEM(pair, 0));
		if (index == -1 && PyErr_Occurred())
			return NULL;
		if (index < 0 || index >= N_FIELDS) {
			PyErr_Format(PyExc_IndexError, "no event field %ld", index);
			return NULL;
		}
		value = PyTuple_GET_ITEM(pair, 1);
		if (Py_TYPE(event) == st.cls) {
			PyObject **slot = (PyObject **)((char *)event + st.offsets[index]);

			Py_XSETREF(*slot, Py_NewRef(value));
		} else {
			/* A subclass, or anything else: through its slot descriptors
			 * (a frozen class's __setattr__ refuses). */
			PyObject *name = PyUnicode_FromString(st.names[index]);
			int failed = name ? PyObject_GenericSetAttr(event, name, value) : -1;

			Py_XDECREF(name);
			if (failed < 0)
				return NULL;
		}
	}
	return Py_NewRef(event);
}

/*
 * consume(consumer, producer, data, mask, limit, events, process)
 *     -> (records, errors)
 *
 * Walk the ring from the consumer position, appending each record's event to
 * `events` (or to `process` for the types given to configure()), publishing
 * the position after each record is copied; stop at the producer position, a
 * busy record, or `limit` records (<= 0: no limit).  `consumer` is the
 * read-write first page, `producer` the producer page, `data` the doubly
 * mapped data pages.  A record that is not an event is consumed and counted
 * in `errors`.
 */
static PyObject *py_consume(PyObject *self, PyObject *args)
{
	PyObject *consumer_obj, *producer_obj, *data_obj, *events, *process;
	unsigned long long mask;
	long long limit;
	Py_buffer consumer = {0}, producer = {0}, data = {0};
	Py_ssize_t count = 0, errors = 0, handed = 0;
	PyObject *result = NULL;

	if (!PyArg_ParseTuple(args, "OOOKLO!O!", &consumer_obj, &producer_obj, &data_obj, &mask,
			      &limit, &PyList_Type, &events, &PyList_Type, &process))
		return NULL;
	if (!configured())
		return NULL;
	if (limit <= 0)
		limit = PY_SSIZE_T_MAX;
	if (PyObject_GetBuffer(consumer_obj, &consumer, PyBUF_WRITABLE) < 0)
		return NULL;
	if (PyObject_GetBuffer(producer_obj, &producer, PyBUF_SIMPLE) < 0)
		goto out;
	if (PyObject_GetBuffer(data_obj, &data, PyBUF_SIMPLE) < 0)
		goto out;
	if (consumer.len < 8 || producer.len < 8 || (unsigned long long)data.len < 2 * (mask + 1)) {
		PyErr_SetString(PyExc_ValueError, "ring mappings too small for the mask");
		goto out;
	}
	{
		uint64_t *consumer_pos = consumer.buf;
		const uint64_t *producer_pos = producer.buf;
		const char *base = data.buf;
		uint64_t position = __atomic_load_n(consumer_pos, __ATOMIC_ACQUIRE);

		for (;;) {
			uint64_t end = __atomic_load_n(producer_pos, __ATOMIC_ACQUIRE);

			if (position >= end || handed >= limit)
				break;
			while (position < end && handed < limit) {
				uint64_t at = position & mask;
				uint32_t word = __atomic_load_n((const uint32_t *)(base + at),
								__ATOMIC_ACQUIRE);
				uint32_t length = word & ~(BUSY_BIT | DISCARD_BIT);
				Py_ssize_t before = PyList_GET_SIZE(events) + PyList_GET_SIZE(process);
				int rc = 1;

				if (word & BUSY_BIT)
					goto done;
				if (!(word & DISCARD_BIT))
					rc = decode_record(base + at + RECORD_HEADER, length, events,
							   process);
				/* Copied (or failed): the space goes back to the producers
				 * before anything can raise, and the record is consumed. */
				position += (length + RECORD_HEADER + 7) & ~(uint64_t)7;
				__atomic_store_n(consumer_pos, position, __ATOMIC_RELEASE);
				if (word & DISCARD_BIT)
					continue;
				count++;
				/* The limit counts events: a record may be a batch of them. */
				handed += Py_MAX(1, PyList_GET_SIZE(events) + PyList_GET_SIZE(process) -
							    before);
				if (rc < 0)
					goto out;
				if (rc == 0)
					errors++;
			}
		}
	}
done:
	result = Py_BuildValue("nn", count, errors);
out:
	if (consumer.obj)
		PyBuffer_Release(&consumer);
	if (producer.obj)
		PyBuffer_Release(&producer);
	if (data.obj)
		PyBuffer_Release(&data);
	return result;
}

/* The perf buffer's rings (one per CPU): struct perf_event_mmap_page's
 * positions, and the records of linux/perf_event.h this tracer asks for. */
#define PERF_DATA_HEAD 1024 /* offsetof(struct perf_event_mmap_page, data_head) */
#define PERF_DATA_TAIL 1032
#define PERF_RECORD_LOST 2
#define PERF_RECORD_SAMPLE 9
#define PERF_RECORD_MAX 65536 /* a record's size is a u16 */

struct perf_header {
	uint32_t type;
	uint16_t misc;
	uint16_t size;
};

/* A record that wraps around the ring's end is copied here whole. */
static char perf_wrapped[PERF_RECORD_MAX];

/*
 * consume_perf(address, data_size, page_size, limit, events, process)
 *     -> (records, not_events, lost)
 *
 * The same as consume() for one perf buffer ring mapped at `address` (its
 * header page, then `data_size` bytes of data, a power of two): samples are
 * decoded into `events`/`process`, PERF_RECORD_LOST notices summed into `lost`,
 * and the tail published after each record.  The address comes from libbpf
 * (perf_buffer__buffer), which keeps the mapping while the buffer lives.
 */
static PyObject *py_consume_perf(PyObject *self, PyObject *args)
{
	unsigned long long address, data_size, page_size;
	long long limit;
	PyObject *events, *process;
	Py_ssize_t count = 0, errors = 0;
	unsigned long long lost = 0;

	if (!PyArg_ParseTuple(args, "KKKLO!O!", &address, &data_size, &page_size, &limit,
			      &PyList_Type, &events, &PyList_Type, &process))
		return NULL;
	if (!configured())
		return NULL;
	if (!address || !data_size || (data_size & (data_size - 1)) || page_size < 4096) {
		PyErr_SetString(PyExc_ValueError, "not a perf ring mapping");
		return NULL;
	}
	if (limit <= 0)
		limit = -1;
	{
		char *base = (char *)(uintptr_t)address;
		uint64_t *tail_pos = (uint64_t *)(base + PERF_DATA_TAIL);
		const char *data = base + page_size;
		uint64_t head = __atomic_load_n((uint64_t *)(base + PERF_DATA_HEAD), __ATOMIC_ACQUIRE);
		uint64_t tail = *tail_pos;
		uint64_t mask = data_size - 1;

		while (tail < head && count != limit) {
			const char *record = data + (tail & mask);
			struct perf_header h;
			PyObject *event = NULL;
			int rc = 1;

			memcpy(&h, record, sizeof(h)); /* 8-aligned: never wraps */
			if (h.size < sizeof(h))
				break; /* cannot happen; never loop on it */
			if ((tail & mask) + h.size > data_size) {
				uint64_t first = data_size - (tail & mask);

				memcpy(perf_wrapped, record, first);
				memcpy(perf_wrapped + first, data, h.size - first);
				record = perf_wrapped;
			}
			if (h.type == PERF_RECORD_SAMPLE && h.size >= sizeof(h) + 4) {
				uint32_t raw;

				memcpy(&raw, record + sizeof(h), 4);
				if (raw > h.size - sizeof(h) - 4)
					raw = h.size - sizeof(h) - 4;
				rc = decode(record + sizeof(h) + 4, raw, &event);
				count++;
			} else if (h.type == PERF_RECORD_LOST && h.size >= sizeof(h) + 16) {
				uint64_t n;

				memcpy(&n, record + sizeof(h) + 8, 8);
				lost += n;
				rc = 2;
			} else {
				rc = 2; /* another record type: not ours to read */
			}
			tail += h.size;
			__atomic_store_n(tail_pos, tail, __ATOMIC_RELEASE);
			if (rc < 0)
				return NULL;
			if (rc == 0)
				errors++;
			else if (rc == 1 &&
				 deliver(event, record + sizeof(h) + 4, events, process) < 0)
				return NULL;
		}
	}
	return Py_BuildValue("nnK", count, errors, lost);
}

static int fill_table(PyObject *mapping, PyObject *table[SMALL], const char *what)
{
	PyObject *key, *value;
	Py_ssize_t pos = 0;

	while (PyDict_Next(mapping, &pos, &key, &value)) {
		long index = PyLong_AsLong(key);

		if (index == -1 && PyErr_Occurred())
			return -1;
		if (index < 0 || index >= SMALL) {
			PyErr_Format(PyExc_ValueError, "%s value %ld out of range", what, index);
			return -1;
		}
		Py_XSETREF(table[index], Py_NewRef(value));
	}
	return 0;
}

/*
 * configure(cls, slots, types, directions, syscalls, syscall_unknown, l4_names,
 *           families, empty, address_fn, comm_fn, flags_fn, process_types)
 *
 * `slots`: SocketEvent's member descriptors in the order of enum field;
 * `types`, `syscalls`, `l4_names`, `families`: dicts by value (< 256);
 * `directions`: (EGRESS, INGRESS); `empty`: the name of an unknown l4/family.
 */
static PyObject *py_configure(PyObject *self, PyObject *args)
{
	PyObject *cls, *slots, *types, *directions, *syscalls, *unknown, *l4_names, *families;
	PyObject *empty, *address_fn, *comm_fn, *flags_fn, *process_types;
	Py_ssize_t i;

	if (!PyArg_ParseTuple(args, "O!O!O!O!O!OO!O!UOOOO!", &PyType_Type, &cls, &PyTuple_Type,
			      &slots, &PyDict_Type, &types, &PyTuple_Type, &directions,
			      &PyDict_Type, &syscalls, &unknown, &PyDict_Type, &l4_names,
			      &PyDict_Type, &families, &empty, &address_fn, &comm_fn, &flags_fn,
			      &PyFrozenSet_Type, &process_types))
		return NULL;
	if (PyTuple_GET_SIZE(slots) != N_FIELDS || PyTuple_GET_SIZE(directions) != 2) {
		PyErr_SetString(PyExc_ValueError, "wrong number of slots or directions");
		return NULL;
	}
	for (i = 0; i < N_FIELDS; i++) {
		PyObject *descr = PyTuple_GET_ITEM(slots, i);
		PyMemberDef *member;

		if (!PyObject_TypeCheck(descr, &PyMemberDescr_Type)) {
			PyErr_SetString(PyExc_TypeError, "slots must be member descriptors");
			return NULL;
		}
		member = ((PyMemberDescrObject *)descr)->d_member;
		if (member->type != T_OBJECT_EX) {
			PyErr_SetString(PyExc_TypeError, "slots must hold objects");
			return NULL;
		}
		st.offsets[i] = member->offset;
	}
	if (fill_table(types, st.types, "event type") < 0 ||
	    fill_table(syscalls, st.syscalls, "syscall") < 0 ||
	    fill_table(l4_names, st.l4_names, "l4") < 0 ||
	    fill_table(families, st.families, "family") < 0)
		return NULL;
	if (!st.l4_names[0])
		st.l4_names[0] = Py_NewRef(empty);
	if (!st.families[0])
		st.families[0] = Py_NewRef(empty);
	for (i = 0; i < 2; i++)
		Py_XSETREF(st.directions[i], Py_NewRef(PyTuple_GET_ITEM(directions, i)));
	Py_XSETREF(st.syscall_unknown, Py_NewRef(unknown));
	Py_XSETREF(st.address_fn, Py_NewRef(address_fn));
	Py_XSETREF(st.comm_fn, Py_NewRef(comm_fn));
	Py_XSETREF(st.flags_fn, Py_NewRef(flags_fn));
	st.process_types = 0;
	{
		PyObject *iter = PyObject_GetIter(process_types), *item;

		if (!iter)
			return NULL;
		while ((item = PyIter_Next(iter))) {
			long type = PyLong_AsLong(item);

			Py_DECREF(item);
			if (type < 0 || type >= 32) {
				Py_DECREF(iter);
				PyErr_SetString(PyExc_ValueError, "process event types are 0..31");
				return NULL;
			}
			st.process_types |= 1u << type;
		}
		Py_DECREF(iter);
		if (PyErr_Occurred())
			return NULL;
	}
	Py_XSETREF(st.cls, (PyTypeObject *)Py_NewRef(cls));
	for (i = 0; i < N_FIELDS; i++) /* the class's own, which st.cls now keeps alive */
		st.names[i] = ((PyMemberDescrObject *)PyTuple_GET_ITEM(slots, i))->d_member->name;
	Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
	{"configure", py_configure, METH_VARARGS, "Set the event class, its slots and tables."},
	{"decode", py_decode, METH_O, "One record into a SocketEvent, or None if it is none."},
	{"data_fields", py_data_fields, METH_O,
	 "The fields the live record pipeline reads of a data event, as a tuple."},
	{"ts_ns", py_ts_ns, METH_O, "An event's ts_ns (the time order's key)."},
	{"payload_bytes", py_payload_bytes, METH_O, "The payload bytes of a list of events."},
	{"fill_in", py_fill_in, METH_VARARGS, "Set fields of a new event in place (no-BTF)."},
	{"consume", py_consume, METH_VARARGS, "Drain ring records into lists of SocketEvents."},
	{"consume_perf", py_consume_perf, METH_VARARGS,
	 "Drain one perf buffer ring into lists of SocketEvents; count its losses."},
	{NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
	.m_base = PyModuleDef_HEAD_INIT,
	.m_name = "_ringdecode",
	.m_doc = "BPF ring buffer records decoded into SocketEvents in batches (see events.py).",
	.m_size = -1,
	.m_methods = methods,
};

PyMODINIT_FUNC PyInit__ringdecode(void)
{
	return PyModule_Create(&module);
}
