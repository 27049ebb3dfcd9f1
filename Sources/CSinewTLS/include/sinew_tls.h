#ifndef SINEW_TLS_H
#define SINEW_TLS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// A TLS client session over a connected socket (OpenSSL, the system's certificate store or a CA file given).
typedef struct sinew_tls sinew_tls;

/// Performs the TLS handshake on `fd` (a connected TCP socket, non-blocking), checking the server's certificate
/// chain and that it names `host` (a DNS name or an IP address); `ca_file` (PEM) replaces the system's store when
/// not NULL. Returns NULL and writes the reason to `error` on failure.
sinew_tls *sinew_tls_connect(int fd, const char *host, const char *ca_file, int timeout_ms, char *error,
                             size_t error_size);

/// Reads up to `size` bytes: > 0 bytes read, 0 the peer closed, -1 an error (reason in `error`), -2 the timeout.
long sinew_tls_read(sinew_tls *tls, void *buffer, size_t size, int timeout_ms, char *error, size_t error_size);

/// Writes all `size` bytes: 0 done, -1 an error (reason in `error`), -2 the timeout.
long sinew_tls_write(sinew_tls *tls, const void *buffer, size_t size, int timeout_ms, char *error, size_t error_size);

/// Sends TLS's close notification (best effort) and frees the session; the socket stays open.
void sinew_tls_free(sinew_tls *tls);

#ifdef __cplusplus
}
#endif

#endif
