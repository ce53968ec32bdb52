/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The drain benchmark's event source (benchmarks/drain.py compiles it with cc).
 *
 * It opens a loopback TCP connection to a forked reader child, which only
 * drains it, then prints "ready <port>" and waits for commands on stdin, one
 * per line: "<rate> <milliseconds>" makes it write() CHUNK-byte chunks on
 * its end of the connection at <rate> writes per second for that long, then
 * print "done <writes> <elapsed_ns>".  EOF on stdin ends it.  Each write() is
 * one event for a tracer filtered to this process's pid; the reader is
 * another process, so its reads are not traced.
 *
 * With an argument N > 1 it sends the chunks N at a time with sendmmsg(),
 * each chunk one message: still one event per chunk (the programs emit each
 * message of an mmsg call as its own event), for a syscall and its entry and
 * exit per N chunks, so that the writers' own syscalls are not what limits
 * the rate offered.  A "write" below is then one message.  Those calls pass
 * MSG_MORE: TCP then corks the messages into full segments instead of
 * sending each 64-byte one through loopback on its own, work the programs do
 * not touch that otherwise limited what the writers could offer (about
 * 0.9 M messages/s from three writers on two cores).  The programs still see
 * each message, and emit it as its own event.
 *
 * The rate is held by writing in batches of one TICK_NS tick's worth and
 * sleeping until the next tick's absolute deadline; a writer that falls
 * behind catches up without sleeping, so the offered rate is the target
 * unless the writer itself cannot go that fast: a step ends at its deadline
 * either way, and the printed count says what was offered.
 *
 * SIGTERM ends the current step and the writer, which still closes its end
 * and waits for the reader: no orphan is left for an init that may not reap.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Bytes per write(): one small request-sized event. */
#define CHUNK 64
/* Batch period of the rate limiter: 1 ms keeps bursts small and sleeps few. */
#define TICK_NS 1000000LL
/* Most chunks one sendmmsg() call sends: drain.py compiles this file with
 * -DMAX_PER_CALL set to the messages of an mmsg call the programs follow
 * (MAX_MMSG in libtrace/bpf/socket_trace.h); more would be a gap in the
 * stream, not events. */
#ifndef MAX_PER_CALL
#error "compile with -DMAX_PER_CALL=N (benchmarks/drain.py does)"
#endif
/* Reader buffer: large, so the reader costs few syscalls. */
#define READ_BUF (1 << 16)

static volatile sig_atomic_t stopping;

static void on_sigterm(int sig)
{
	(void)sig;
	stopping = 1;
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void reader(int port)
{
	static char buf[READ_BUF];
	struct sockaddr_in addr = {
		.sin_family = AF_INET,
		.sin_port = htons(port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		die("reader connect");
	for (;;) {
		ssize_t got = read(fd, buf, sizeof(buf));

		if (got == 0)
			_exit(0);
		if (got < 0 && errno != EINTR)
			die("reader read");
	}
}

/* Up to `count` chunks with one syscall: write() for one, sendmmsg() for more.
 * Returns how many went (a blocking TCP socket takes each message whole). */
static int send_chunks(int fd, int count)
{
	static const char chunk[CHUNK] = "libtrace drain benchmark chunk";
	static struct iovec iov = { (void *)chunk, CHUNK };
	static struct mmsghdr msgs[MAX_PER_CALL];

	if (count == 1)
		return write(fd, chunk, CHUNK) == CHUNK ? 1 : -1;
	for (int i = 0; i < count; i++) {
		msgs[i].msg_hdr.msg_iov = &iov;
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	return sendmmsg(fd, msgs, count, MSG_MORE);
}

static long long run_step(int fd, long long rate, long long duration_ms, int per_call,
			  int64_t *elapsed)
{
	long long total = rate * duration_ms / 1000, written = 0;
	long long per_tick = rate * TICK_NS / 1000000000LL;
	int64_t start = now_ns(), end = start + duration_ms * 1000000LL, next;

	if (per_tick < 1)
		per_tick = 1;
	/* Stop at the deadline even if behind: a step lasts what it was told. */
	while (written < total && now_ns() < end && !stopping) {
		long long batch = total - written < per_tick ? total - written : per_tick;

		for (long long left = batch; left > 0;) {
			int sent = send_chunks(fd, left < per_call ? (int)left : per_call);

			if (sent < 1) {
				if (stopping)
					break;
				die("write");
			}
			written += sent;
			left -= sent;
		}
		/* The deadline by which `written` writes are due at `rate`. */
		next = start + written * 1000000000LL / rate;
		if (next > now_ns()) {
			struct timespec ts = { next / 1000000000LL, next % 1000000000LL };

			while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR &&
			       !stopping)
				;
		}
	}
	*elapsed = now_ns() - start;
	return written;
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr = {
		.sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	socklen_t len = sizeof(addr);
	int listener, conn, status;
	long long rate, duration_ms;
	pid_t child;
	int per_call = argc > 1 ? atoi(argv[1]) : 1;

	/* No SA_RESTART: a blocked write() or scanf() returns, and the loops see the flag. */
	struct sigaction term = { .sa_handler = on_sigterm };

	if (per_call < 1 || per_call > MAX_PER_CALL) {
		fprintf(stderr, "chunks per call must be 1 to %d\n", MAX_PER_CALL);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	listener = socket(AF_INET, SOCK_STREAM, 0);
	if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(listener, 1) < 0 || getsockname(listener, (struct sockaddr *)&addr, &len) < 0)
		die("listen");
	child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		signal(SIGTERM, SIG_DFL);
		close(listener);
		reader(ntohs(addr.sin_port));
	}
	sigaction(SIGTERM, &term, NULL);
	conn = accept(listener, NULL, NULL);
	if (conn < 0)
		die("accept");
	close(listener);
	printf("ready %d\n", ntohs(addr.sin_port));
	fflush(stdout);
	while (!stopping && scanf("%lld %lld", &rate, &duration_ms) == 2) {
		int64_t elapsed = 0;
		long long written;

		if (rate < 1 || duration_ms < 1) {
			fprintf(stderr, "bad step %lld %lld\n", rate, duration_ms);
			return 2;
		}
		written = run_step(conn, rate, duration_ms, per_call, &elapsed);
		printf("done %lld %lld\n", written, (long long)elapsed);
		fflush(stdout);
	}
	close(conn);
	waitpid(child, &status, 0);
	return 0;
}
