#define _GNU_SOURCE
#include "CSinewSystem.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/serial.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

uint64_t sinew_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int wait_for(int fd, short events, uint64_t deadline_ns) {
    for (;;) {
        uint64_t now = sinew_monotonic_ns();
        uint64_t left = deadline_ns > now ? deadline_ns - now : 0;
        struct timespec timeout = {(time_t)(left / 1000000000ull), (long)(left % 1000000000ull)};
        struct pollfd pfd = {fd, events, 0};
        int r = ppoll(&pfd, 1, &timeout, NULL);
        if (r > 0) return (pfd.revents & events) ? 1 : 2;
        if (r == 0) return 0;
        if (errno != EINTR) return -errno;
    }
}

int sinew_wait_readable(int fd, uint64_t deadline_ns) { return wait_for(fd, POLLIN, deadline_ns); }

int sinew_wait_writable(int fd, uint64_t deadline_ns) { return wait_for(fd, POLLOUT, deadline_ns); }

int sinew_wait_any_readable(const int *fds, short *events, int count, uint64_t deadline_ns) {
    struct pollfd pfds[64];
    if (count < 0 || count > 64) return -EINVAL;
    for (int i = 0; i < count; i++) {
        pfds[i].fd = fds[i];
        pfds[i].events = POLLIN;
        pfds[i].revents = 0;
        events[i] = 0;
    }
    for (;;) {
        uint64_t now = sinew_monotonic_ns();
        uint64_t left = deadline_ns > now ? deadline_ns - now : 0;
        struct timespec timeout = {(time_t)(left / 1000000000ull), (long)(left % 1000000000ull)};
        int r = ppoll(pfds, (nfds_t)count, &timeout, NULL);
        if (r >= 0) {
            for (int i = 0; i < count; i++) events[i] = pfds[i].revents;
            return r;
        }
        if (errno != EINTR) return -errno;
    }
}

int sinew_termios_make_raw(int fd) {
    struct termios t;
    if (tcgetattr(fd, &t) != 0) return -errno;
    cfmakeraw(&t);
    t.c_cflag |= CLOCAL | CREAD;
    t.c_cflag &= ~(CSTOPB | PARENB | CRTSCTS);
    t.c_iflag &= ~(IXON | IXOFF | IXANY);
    /* With O_NONBLOCK, VMIN=1 makes an empty read fail with EAGAIN instead of returning 0 (which would
       look like end of file). */
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    if (tcsetattr(fd, TCSANOW, &t) != 0) return -errno;
    return 0;
}

int sinew_termios_flush_input(int fd) { return tcflush(fd, TCIFLUSH) == 0 ? 0 : -errno; }

int sinew_pty_open_primary(char *path, size_t path_capacity) {
    int fd = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return -errno;
    if (grantpt(fd) != 0 || unlockpt(fd) != 0 || ptsname_r(fd, path, path_capacity) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int sinew_serial_set_low_latency(int fd) {
    struct serial_struct s;
    memset(&s, 0, sizeof s);
    if (ioctl(fd, TIOCGSERIAL, &s) != 0) return -errno;
    s.flags |= ASYNC_LOW_LATENCY;
    if (ioctl(fd, TIOCSSERIAL, &s) != 0) return -errno;
    return 0;
}

int sinew_eventfd_create(void) {
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int sinew_eventfd_signal(int fd) {
    uint64_t one = 1;
    return write(fd, &one, sizeof one) == sizeof one ? 0 : -errno;
}

void sinew_eventfd_drain(int fd) {
    uint64_t value;
    (void)read(fd, &value, sizeof value);
}

/* Line rates through termios2 (TCGETS2/TCSETS2 with BOTHER): any rate in bit/s, not only the B-constants.
   pyserial sets 14400, 128000, 250000 and every other rate without a B-constant this way, and a pty keeps
   the number (c_ospeed) for its other side to read back. <asm/termbits.h> defines struct termios2 but
   clashes with <termios.h>, so the layout and ioctl numbers are declared here (they are the same on every
   architecture this builds for: x86_64, aarch64). */
struct sinew_termios2 {
    unsigned int c_iflag, c_oflag, c_cflag, c_lflag;
    unsigned char c_line;
    unsigned char c_cc[19];
    unsigned int c_ispeed, c_ospeed;
};
#define SINEW_TCGETS2 _IOR('T', 0x2A, struct sinew_termios2)
#define SINEW_TCSETS2 _IOW('T', 0x2B, struct sinew_termios2)
#ifndef BOTHER
#define BOTHER 0010000
#endif
#ifndef CBAUD
#define CBAUD 0010017
#endif
#ifndef IBSHIFT
#define IBSHIFT 16
#endif

int sinew_termios_set_speed(int fd, int baud) {
    if (baud < SINEW_MIN_BAUD || baud > SINEW_MAX_BAUD) return -EINVAL;
    struct sinew_termios2 t;
    if (ioctl(fd, SINEW_TCGETS2, &t) != 0) return -errno;
    t.c_cflag &= ~(CBAUD | (CBAUD << IBSHIFT));
    t.c_cflag |= BOTHER | (BOTHER << IBSHIFT);
    t.c_ispeed = (unsigned int)baud;
    t.c_ospeed = (unsigned int)baud;
    if (ioctl(fd, SINEW_TCSETS2, &t) != 0) return -errno;
    /* A driver may round the rate to one its clock can make; what it kept is what the other side sees. */
    if (ioctl(fd, SINEW_TCGETS2, &t) != 0) return -errno;
    return t.c_ospeed == (unsigned int)baud ? 0 : -EINVAL;
}

int sinew_termios_get_speed(int fd) {
    struct sinew_termios2 t;
    if (ioctl(fd, SINEW_TCGETS2, &t) != 0) return -errno;
    /* The kernel fills c_ospeed with the rate in bit/s for a B-constant as well as for BOTHER. */
    return t.c_ospeed > 0 && t.c_ospeed <= (unsigned int)SINEW_MAX_BAUD ? (int)t.c_ospeed : -EINVAL;
}
