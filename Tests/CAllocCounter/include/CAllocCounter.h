/*
 * Per-thread heap-allocation counting for tests. This target defines malloc & co. itself and forwards
 * them to glibc's __libc_* functions, so every allocation of the process goes through it (including the
 * Swift runtime's); the counters are thread-local, so tests running in parallel do not disturb each other.
 * Link it into test targets only.
 */
#ifndef SINEW_CALLOCCOUNTER_H
#define SINEW_CALLOCCOUNTER_H

#include <stdint.h>

/** Number of allocations (malloc, calloc, realloc, aligned variants) made by the calling thread so far. */
uint64_t sinew_thread_allocations(void);

#endif
