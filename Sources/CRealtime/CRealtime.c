#define _GNU_SOURCE
#include "CRealtime.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

int sinew_rt_sleep_until_ns(int64_t deadline_ns) {
    struct timespec ts;
    ts.tv_sec = (time_t)(deadline_ns / 1000000000LL);
    ts.tv_nsec = (long)(deadline_ns % 1000000000LL);
    for (;;) {
        /* clock_nanosleep returns the error number rather than setting errno. */
        int rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        if (rc != EINTR) return rc;
    }
}

int sinew_rt_set_fifo_priority(int priority) {
    struct sched_param param;
    memset(&param, 0, sizeof param);
    param.sched_priority = priority;
    return pthread_setschedparam(pthread_self(), SCHED_FIFO, &param);
}

int sinew_rt_set_affinity(int cpu) {
    if (cpu < 0 || cpu >= CPU_SETSIZE) return EINVAL;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

int sinew_rt_current_cpu(void) { return sched_getcpu(); }

int sinew_rt_cpu_count(void) { return (int)sysconf(_SC_NPROCESSORS_ONLN); }

int sinew_rt_set_timer_slack_ns(unsigned long slack_ns) {
    return prctl(PR_SET_TIMERSLACK, slack_ns, 0, 0, 0) == 0 ? 0 : errno;
}

int sinew_rt_lock_memory(void) { return mlockall(MCL_CURRENT | MCL_FUTURE) == 0 ? 0 : errno; }

int sinew_rt_unlock_memory(void) { return munlockall() == 0 ? 0 : errno; }

void sinew_rt_prefault_stack(size_t bytes) {
    if (bytes > (size_t)8 << 20) bytes = (size_t)8 << 20;
    volatile unsigned char *stack = __builtin_alloca(bytes);
    for (size_t i = 0; i < bytes; i += 4096) stack[i] = 0;
}

int sinew_rt_bare_loop(int64_t period_ns, int64_t ticks, int64_t *lateness_ns, int fifo_priority, int cpu) {
    if (period_ns <= 0 || ticks < 0 || (ticks > 0 && lateness_ns == NULL)) return EINVAL;
    int old_policy = 0;
    struct sched_param old_param;
    int restore = 0;
    if (fifo_priority > 0 && pthread_getschedparam(pthread_self(), &old_policy, &old_param) == 0) {
        restore = sinew_rt_set_fifo_priority(fifo_priority) == 0;
    }
    if (cpu >= 0) (void)sinew_rt_set_affinity(cpu);
    int rc = 0;
    int64_t deadline = sinew_rt_monotonic_ns() + period_ns;
    for (int64_t i = 0; i < ticks; i++) {
        rc = sinew_rt_sleep_until_ns(deadline);
        if (rc != 0) break;
        lateness_ns[i] = sinew_rt_monotonic_ns() - deadline;
        deadline += period_ns;
    }
    if (restore) (void)pthread_setschedparam(pthread_self(), old_policy, &old_param);
    return rc;
}

/* Lock-free atomics are async-signal-safe; the handlers touch nothing else. */
static _Atomic int shutdown_signal = 0;
static _Atomic uint64_t shutdown_count = 0;
static _Atomic uint64_t estop_count = 0;

static void on_shutdown_signal(int signo) {
    atomic_store_explicit(&shutdown_signal, signo, memory_order_release);
    atomic_fetch_add_explicit(&shutdown_count, 1, memory_order_acq_rel);
}

static void on_estop_signal(int signo) {
    (void)signo;
    atomic_fetch_add_explicit(&estop_count, 1, memory_order_acq_rel);
}

static int install(int signo, void (*handler)(int)) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = handler;
    sigemptyset(&action.sa_mask);
    /* SA_RESTART so that the I/O threads' reads and writes are not cut short by a Ctrl-C. */
    action.sa_flags = SA_RESTART;
    return sigaction(signo, &action, NULL) == 0 ? 0 : errno;
}

int sinew_signals_install_shutdown_handlers(void) {
    /* SIGHUP: the terminal or SSH session went away; the robot is stopped as on SIGTERM. */
    int rc = install(SIGINT, on_shutdown_signal);
    if (rc == 0) rc = install(SIGTERM, on_shutdown_signal);
    if (rc == 0) rc = install(SIGHUP, on_shutdown_signal);
    return rc;
}

int sinew_signals_ignore_broken_pipes(void) {
    /* A write to a closed pipe or socket (`sinew run | head`, an e-stop client that hung up) then fails
       with EPIPE instead of killing the process with the robot torqued. */
    return install(SIGPIPE, SIG_IGN);
}

int sinew_signals_install_estop_handler(int signo) { return install(signo, on_estop_signal); }

int sinew_signals_restore_default(int signo) { return install(signo, SIG_DFL); }

int sinew_signals_shutdown_signal(void) { return atomic_load_explicit(&shutdown_signal, memory_order_acquire); }

uint64_t sinew_signals_shutdown_count(void) { return atomic_load_explicit(&shutdown_count, memory_order_acquire); }

uint64_t sinew_signals_estop_count(void) { return atomic_load_explicit(&estop_count, memory_order_acquire); }

void sinew_signals_clear_shutdown(void) { atomic_store_explicit(&shutdown_signal, 0, memory_order_release); }

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>

static int fill_address(const char *path, struct sockaddr_un *address) {
    memset(address, 0, sizeof *address);
    address->sun_family = AF_UNIX;
    size_t length = strlen(path);
    if (length == 0 || length >= sizeof address->sun_path) return ENAMETOOLONG;
    memcpy(address->sun_path, path, length + 1);
    return 0;
}

int sinew_estop_socket_listen(const char *path) {
    struct sockaddr_un address;
    int rc = fill_address(path, &address);
    if (rc != 0) return -rc;
    /* Only a stale socket may be replaced: never a file of someone else's, never a live run's socket. */
    struct stat existing;
    if (lstat(path, &existing) == 0) {
        if (!S_ISSOCK(existing.st_mode)) return -EEXIST;
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe < 0) return -errno;
        int live = connect(probe, (struct sockaddr *)&address, sizeof address) == 0;
        close(probe);
        if (live) return -EADDRINUSE;
        if (unlink(path) != 0) return -errno;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    if (bind(fd, (struct sockaddr *)&address, sizeof address) != 0 || listen(fd, 4) != 0) {
        rc = errno;
        close(fd);
        return -rc;
    }
    return fd;
}

/* Whether the first word of `text` is `word` (followed by the end, a space or a line end). */
static int first_word_is(const char *text, ssize_t length, const char *word) {
    ssize_t i = 0;
    while (i < length && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n')) i++;
    ssize_t n = (ssize_t)strlen(word);
    if (length - i < n || memcmp(text + i, word, (size_t)n) != 0) return 0;
    return length - i == n || text[i + n] == '\n' || text[i + n] == '\r' || text[i + n] == ' ' || text[i + n] == '\t';
}

int sinew_estop_message_command(const char *text, ssize_t length) {
    if (text == NULL || length <= 0) return 0;
    if (first_word_is(text, length, "estop")) return 1;
    if (first_word_is(text, length, "recover")) return 2;
    return 0;
}

int sinew_estop_message_is_estop(const char *text, ssize_t length) {
    return sinew_estop_message_command(text, length) == 1;
}

int sinew_estop_socket_poll(int fd, int timeout_ms) {
    struct pollfd waiting = {.fd = fd, .events = POLLIN};
    int ready = poll(&waiting, 1, timeout_ms);
    if (ready < 0) return errno == EINTR ? 0 : -errno;
    if (ready == 0) return 0;
    int client = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (client < 0) return errno == EINTR || errno == EAGAIN || errno == ECONNABORTED ? 0 : -errno;
    /* One short message per connection, read for at most 100 ms: a client that sends nothing, sends a
       flood or hangs up at once holds the watcher no longer than that. The message may come in pieces
       (`send("es")` then `send("top\n")`): bytes are gathered until a line end, the client's end of
       stream, a full buffer or the 100 ms, and only then read as a command. */
    char message[64];
    ssize_t length = 0;
    struct timespec started;
    clock_gettime(CLOCK_MONOTONIC, &started);
    for (;;) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long waited_ms = (now.tv_sec - started.tv_sec) * 1000 + (now.tv_nsec - started.tv_nsec) / 1000000;
        if (waited_ms >= 100) break;
        struct pollfd reading = {.fd = client, .events = POLLIN};
        int ready_to_read = poll(&reading, 1, (int)(100 - waited_ms));
        if (ready_to_read < 0 && errno == EINTR) continue;
        if (ready_to_read <= 0) break;
        ssize_t n = recv(client, message + length, sizeof message - (size_t)length, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) break;
        length += n;
        if (length == (ssize_t)sizeof message || memchr(message, '\n', (size_t)length) != NULL) break;
    }
    int command = length > 0 ? sinew_estop_message_command(message, length) : 0;
    if (length > 0) {
        const char *reply = command == 1   ? "ok: e-stop\n"
                            : command == 2 ? "ok: recovery requested\n"
                                           : "error: unknown command (send `estop` or `recover`)\n";
        /* MSG_NOSIGNAL: a peer that already hung up gives EPIPE, never SIGPIPE. */
        (void)!send(client, reply, strlen(reply), MSG_NOSIGNAL);
    }
    close(client);
    return command;
}

#include <sys/inotify.h>

int sinew_estop_file_watch(const char *directory) {
    int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (fd < 0) return -errno;
    if (inotify_add_watch(fd, directory, IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF) < 0) {
        int rc = errno;
        close(fd);
        return -rc;
    }
    return fd;
}

int sinew_estop_file_poll(int fd, const char *name, int timeout_ms) {
    struct pollfd waiting = {.fd = fd, .events = POLLIN};
    int ready = poll(&waiting, 1, timeout_ms);
    if (ready < 0) return errno == EINTR ? 0 : -errno;
    if (ready == 0) return 0;
    char buffer[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    int found = 0;
    for (;;) {
        ssize_t n = read(fd, buffer, sizeof buffer);
        if (n <= 0) break;
        for (char *p = buffer; p < buffer + n;) {
            const struct inotify_event *event = (const struct inotify_event *)p;
            if (event->len > 0 && strcmp(event->name, name) == 0) found = 1;
            if ((event->mask & (IN_DELETE_SELF | IN_IGNORED)) && found == 0) found = -ENOENT;
            p += sizeof *event + event->len;
        }
    }
    return found;
}

int sinew_estop_socket_send(const char *path, const char *message) {
    struct sockaddr_un address;
    int rc = fill_address(path, &address);
    if (rc != 0) return rc;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno;
    if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
        rc = errno;
        close(fd);
        return rc;
    }
    size_t length = strlen(message);
    rc = write(fd, message, length) == (ssize_t)length ? 0 : errno;
    char reply[8];
    struct pollfd reading = {.fd = fd, .events = POLLIN};
    if (rc == 0 && poll(&reading, 1, 500) > 0) (void)!read(fd, reply, sizeof reply);
    close(fd);
    return rc;
}

/* ---- futexes ---- */

#include <linux/futex.h>
#include <sys/syscall.h>

int sinew_rt_futex_wait(uint32_t *word, uint32_t expected, int64_t deadline_ns) {
    struct timespec deadline;
    struct timespec *timeout = NULL;
    if (deadline_ns > 0) {
        deadline.tv_sec = (time_t)(deadline_ns / 1000000000LL);
        deadline.tv_nsec = (long)(deadline_ns % 1000000000LL);
        timeout = &deadline;
    }
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline (plain FUTEX_WAIT a relative one). */
    long r = syscall(SYS_futex, word, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, expected, timeout, NULL,
                     FUTEX_BITSET_MATCH_ANY);
    if (r == 0) return 0;
    int e = errno;
    return (e == EAGAIN || e == EINTR) ? 0 : e;
}

int sinew_rt_futex_wake(uint32_t *word, int count) {
    long r = syscall(SYS_futex, word, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, count, NULL, NULL, 0);
    return r < 0 ? errno : 0;
}
