/*
 * Real-time system calls for Sinew's control loop that Swift's Glibc module does not expose (the GNU
 * _np affinity call, sched_getcpu, prctl timer slack), thin wrappers that return errno instead of
 * touching the thread-local errno from Swift, async-signal-safe signal flags, and a bare C fixed-rate
 * clock_nanosleep loop used as the in-run baseline by `sinew bench loop`.
 *
 * Every function returning int returns 0 on success or a positive errno value.
 */
#ifndef SINEW_CREALTIME_H
#define SINEW_CREALTIME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- clocks and sleeping ---- */

/** CLOCK_MONOTONIC now, in nanoseconds. */
static inline int64_t sinew_rt_monotonic_ns(void);

/** Sleeps until `deadline_ns` on CLOCK_MONOTONIC (absolute, TIMER_ABSTIME), resuming after signals. */
int sinew_rt_sleep_until_ns(int64_t deadline_ns);

/* ---- scheduling, affinity, memory ---- */

/** Puts the calling thread under SCHED_FIFO at `priority` (1...99). */
int sinew_rt_set_fifo_priority(int priority);

/** Pins the calling thread to one CPU (0-based). */
int sinew_rt_set_affinity(int cpu);

/** The CPU the calling thread runs on now, or -1. */
int sinew_rt_current_cpu(void);

/** Number of CPUs online. */
int sinew_rt_cpu_count(void);

/** Sets the calling thread's timer slack in nanoseconds (prctl PR_SET_TIMERSLACK; 1 is the minimum). */
int sinew_rt_set_timer_slack_ns(unsigned long slack_ns);

/** mlockall(MCL_CURRENT | MCL_FUTURE). */
int sinew_rt_lock_memory(void);

/** munlockall(). */
int sinew_rt_unlock_memory(void);

/** Touches `bytes` of the calling thread's stack so that its pages are resident before the loop starts. */
void sinew_rt_prefault_stack(size_t bytes);

/* ---- waking threads without allocation: futexes over 32-bit words ---- */

/**
 * Sleeps while `*word` equals `expected`, until `sinew_rt_futex_wake` on it or the absolute CLOCK_MONOTONIC
 * `deadline_ns` (0: no deadline). Returns 0 when woken or when the word already differed, ETIMEDOUT at the
 * deadline, or another errno. Spurious wake-ups happen: check the word again.
 */
int sinew_rt_futex_wait(uint32_t *word, uint32_t expected, int64_t deadline_ns);

/** Wakes up to `count` threads sleeping on `word`. Returns 0 or errno. */
int sinew_rt_futex_wake(uint32_t *word, int count);

/** Atomic load with acquire ordering. */
static inline uint32_t sinew_rt_atomic_load_acquire(const uint32_t *word) {
    return __atomic_load_n(word, __ATOMIC_ACQUIRE);
}

/** Atomic store with release ordering. */
static inline void sinew_rt_atomic_store_release(uint32_t *word, uint32_t value) {
    __atomic_store_n(word, value, __ATOMIC_RELEASE);
}

/** Atomic add (acquire and release); returns the new value. */
static inline uint32_t sinew_rt_atomic_add(uint32_t *word, uint32_t delta) {
    return __atomic_add_fetch(word, delta, __ATOMIC_ACQ_REL);
}

/** Atomic subtract (acquire and release); returns the new value. */
static inline uint32_t sinew_rt_atomic_subtract(uint32_t *word, uint32_t delta) {
    return __atomic_sub_fetch(word, delta, __ATOMIC_ACQ_REL);
}

/* ---- the bare baseline loop ---- */

/**
 * A fixed-rate loop with nothing in it: sleeps to absolute deadlines `period_ns` apart on CLOCK_MONOTONIC
 * (the first one `period_ns` after the call) and stores each wake-up's lateness (wake time minus deadline,
 * ns) into `lateness_ns[0 ..< ticks]`. When `fifo_priority` > 0 the calling thread is put under
 * SCHED_FIFO at that priority for the duration of the loop (and restored after); when `cpu` >= 0 it is
 * pinned to that CPU (not restored). Returns 0, or the errno of the first failing sleep.
 */
int sinew_rt_bare_loop(int64_t period_ns, int64_t ticks, int64_t *lateness_ns, int fifo_priority, int cpu);

/* ---- signals: handlers only set flags ---- */

/** Installs SIGINT and SIGTERM handlers that set the shutdown-requested flag (SA_RESTART). */
int sinew_signals_install_shutdown_handlers(void);

/** Installs a handler for `signo` (e.g. SIGUSR1) that counts emergency-stop requests. */
int sinew_signals_install_estop_handler(int signo);

/// Ignores SIGPIPE process-wide (writes to a closed peer fail with EPIPE). Returns 0 or errno.
int sinew_signals_ignore_broken_pipes(void);

/** Restores the default disposition of `signo`. */
int sinew_signals_restore_default(int signo);

/** The signal number that requested shutdown, or 0 if none did. */
int sinew_signals_shutdown_signal(void);

/** Number of shutdown requests received so far. */
uint64_t sinew_signals_shutdown_count(void);

/** Number of emergency-stop signals received so far. */
uint64_t sinew_signals_estop_count(void);

/** Forgets a shutdown request (after it has been handled, or between tests). */
void sinew_signals_clear_shutdown(void);

/* ---- emergency stop over a Unix socket ---- */

/**
 * Creates a listening Unix stream socket at `path`. A stale socket there (nobody listening) is replaced;
 * anything else that exists is left alone: -EEXIST for a path that is not a socket, -EADDRINUSE for a socket
 * another process listens on. Returns the descriptor, or -errno.
 */
int sinew_estop_socket_listen(const char *path);

/**
 * Waits up to `timeout_ms` for a client on the listening socket `fd`, reads one message (up to 64 bytes,
 * 100 ms budget) and answers it ("ok: e-stop" or an error line, never raising SIGPIPE). Returns 1 when the
 * message's first word is "estop", 2 when it is "recover" (case-sensitive), 0 when nothing or something else
 * arrived, -errno on error.
 */
int sinew_estop_socket_poll(int fd, int timeout_ms);

/** Whether a client's message (`length` bytes, not NUL-terminated) asks for the e-stop: its first word is
 * `estop`. The socket protocol's parser, exposed for the fuzzer. */
int sinew_estop_message_is_estop(const char *text, ssize_t length);

/** The command of a client's message: 1 `estop`, 2 `recover`, 0 anything else (the socket protocol's parser). */
int sinew_estop_message_command(const char *text, ssize_t length);

/** Connects to the Unix socket at `path` and sends `message`. Returns 0 or errno. */
int sinew_estop_socket_send(const char *path, const char *message);

/** An inotify descriptor watching `directory` for entries created, moved in or written; -errno on error. */
int sinew_estop_file_watch(const char *directory);

/**
 * Waits up to `timeout_ms` for events on the watch `fd`; returns 1 when one concerns the entry `name`, 0 when
 * none did, -ENOENT when the directory itself went away, -errno on error.
 */
int sinew_estop_file_poll(int fd, const char *name, int timeout_ms);

/* ---- inline definitions ---- */

#include <time.h>

static inline int64_t sinew_rt_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + (int64_t)ts.tv_nsec;
}

#ifdef __cplusplus
}
#endif

#endif
