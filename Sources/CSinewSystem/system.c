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

static const struct {
    int baud;
    speed_t code;
} speeds[] = {
    {9600, B9600},       {19200, B19200},     {38400, B38400},     {57600, B57600},     {115200, B115200},
    {230400, B230400},   {460800, B460800},   {500000, B500000},   {576000, B576000},   {921600, B921600},
    {1000000, B1000000}, {1152000, B1152000}, {1500000, B1500000}, {2000000, B2000000}, {2500000, B2500000},
    {3000000, B3000000}, {3500000, B3500000}, {4000000, B4000000},
};

int sinew_termios_set_speed(int fd, int baud) {
    for (size_t i = 0; i < sizeof speeds / sizeof speeds[0]; i++) {
        if (speeds[i].baud != baud) continue;
        struct termios t;
        if (tcgetattr(fd, &t) != 0) return -errno;
        cfsetispeed(&t, speeds[i].code);
        cfsetospeed(&t, speeds[i].code);
        if (tcsetattr(fd, TCSANOW, &t) != 0) return -errno;
        return 0;
    }
    return -EINVAL;
}

int sinew_termios_get_speed(int fd) {
    struct termios t;
    if (tcgetattr(fd, &t) != 0) return -errno;
    speed_t code = cfgetospeed(&t);
    for (size_t i = 0; i < sizeof speeds / sizeof speeds[0]; i++) {
        if (speeds[i].code == code) return speeds[i].baud;
    }
    return -EINVAL;
}
