/*
 * Thin helpers over Linux system calls that Swift's Glibc module hides (GNU extensions, ioctl structs):
 * nanosecond-resolution waits, raw termios, pseudo-terminal creation and the serial low-latency flag.
 * Every function returns 0 (or a count) on success and -errno on failure, so Swift never reads errno.
 */
#ifndef SINEW_CSINEWSYSTEM_H
#define SINEW_CSINEWSYSTEM_H

#include <stddef.h>
#include <stdint.h>

/** CLOCK_MONOTONIC in nanoseconds. */
uint64_t sinew_monotonic_ns(void);

/**
 * Waits until `fd` is readable or the absolute CLOCK_MONOTONIC deadline passes.
 * Returns 1 when readable, 2 on hang-up or error without data, 0 at the deadline, -errno on failure
 * (EINTR is retried internally).
 */
int sinew_wait_readable(int fd, uint64_t deadline_ns);

/** Same as sinew_wait_readable for writability. */
int sinew_wait_writable(int fd, uint64_t deadline_ns);

/**
 * Waits until one of `count` descriptors (at most 64; negative ones are ignored) is readable, hung up or in
 * error, or the absolute CLOCK_MONOTONIC deadline passes. `events` receives each descriptor's poll(2) revents
 * (0: nothing happened on it). Returns how many descriptors have events, 0 at the deadline, -errno on
 * failure (EINTR is retried internally; -EINVAL for more than 64 descriptors).
 */
int sinew_wait_any_readable(const int *fds, short *events, int count, uint64_t deadline_ns);

/** Puts a terminal into raw 8N1 mode (cfmakeraw, CLOCAL|CREAD, VMIN=1, VTIME=0; use with O_NONBLOCK). */
int sinew_termios_make_raw(int fd);

/** The slowest and fastest line rates Sinew sets on a terminal, bit/s. */
#define SINEW_MIN_BAUD 50
#define SINEW_MAX_BAUD 12000000

/**
 * Sets the terminal's line rate to any rate in SINEW_MIN_BAUD…SINEW_MAX_BAUD bit/s through termios2
 * (BOTHER), as pyserial does for rates without a B-constant (14400, 128000, 250000…). Returns 0, or -EINVAL
 * for a rate out of range or one the driver does not keep exactly, or -errno. On a pty nothing physical
 * changes, but the other side reads the rate back, so a virtual bus knows the rate its client chose.
 */
int sinew_termios_set_speed(int fd, int baud);

/** The terminal's output rate in bit/s (termios2 c_ospeed: any rate, standard or not), or -errno / -EINVAL. */
int sinew_termios_get_speed(int fd);

/** Discards unread input (tcflush TCIFLUSH). */
int sinew_termios_flush_input(int fd);

/**
 * Creates a pseudo-terminal pair: opens the primary (master) side non-blocking, grants and unlocks it
 * and writes the secondary's path into `path` (capacity `path_capacity`). Returns the primary fd or -errno.
 */
int sinew_pty_open_primary(char *path, size_t path_capacity);

/** Sets ASYNC_LOW_LATENCY through TIOCSSERIAL. Returns 0, or -errno when the driver refuses. */
int sinew_serial_set_low_latency(int fd);

/** Creates an eventfd (non-blocking, close-on-exec). Returns the fd or -errno. */
int sinew_eventfd_create(void);

/** Adds 1 to an eventfd counter. */
int sinew_eventfd_signal(int fd);

/** Resets an eventfd counter to 0 (non-blocking read). */
void sinew_eventfd_drain(int fd);

#endif
