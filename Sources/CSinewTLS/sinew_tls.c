// A thin TLS client over OpenSSL for the remote-policy websocket (wss://): the handshake with certificate and
// host-name verification, then reads and writes with deadlines on a non-blocking socket.
#include "sinew_tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sinew_tls {
    SSL_CTX *context;
    SSL *ssl;
    int fd;
};

static void describe(char *error, size_t size, const char *what) {
    unsigned long code = ERR_get_error();
    if (code != 0) {
        char detail[256];
        ERR_error_string_n(code, detail, sizeof detail);
        snprintf(error, size, "%s: %s", what, detail);
    } else {
        snprintf(error, size, "%s", what);
    }
    ERR_clear_error();
}

/// Waits for what OpenSSL asked (reading or writing) until the timeout; 1 ready, 0 timed out.
static int wait_for(int fd, int ssl_error, int timeout_ms) {
    struct pollfd p = {fd, (short)(ssl_error == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN), 0};
    int r;
    do { r = poll(&p, 1, timeout_ms); } while (r < 0 && errno == EINTR);
    return r > 0;
}

sinew_tls *sinew_tls_connect(int fd, const char *host, const char *ca_file, int timeout_ms, char *error,
                             size_t error_size) {
    SSL_CTX *context = SSL_CTX_new(TLS_client_method());
    if (!context) { describe(error, error_size, "cannot create a TLS context"); return NULL; }
    SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION);
    SSL_CTX_set_verify(context, SSL_VERIFY_PEER, NULL);
    int loaded = ca_file ? SSL_CTX_load_verify_locations(context, ca_file, NULL) : SSL_CTX_set_default_verify_paths(context);
    if (loaded != 1) {
        describe(error, error_size, ca_file ? "cannot read the CA file" : "cannot load the system's certificates");
        SSL_CTX_free(context);
        return NULL;
    }
    SSL *ssl = SSL_new(context);
    if (!ssl || SSL_set_fd(ssl, fd) != 1) {
        describe(error, error_size, "cannot create a TLS session");
        if (ssl) SSL_free(ssl);
        SSL_CTX_free(context);
        return NULL;
    }
    // The certificate must name the host: an IP address by its address, a name by its DNS name (and SNI).
    X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
    if (X509_VERIFY_PARAM_set1_ip_asc(param, host) != 1) {
        SSL_set_tlsext_host_name(ssl, host);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        X509_VERIFY_PARAM_set1_host(param, host, 0);
    }
    for (;;) {
        int r = SSL_connect(ssl);
        if (r == 1) break;
        int e = SSL_get_error(ssl, r);
        if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) && wait_for(fd, e, timeout_ms)) continue;
        long verify = SSL_get_verify_result(ssl);
        if (verify != X509_V_OK) {
            snprintf(error, error_size, "the server's certificate is not trusted: %s",
                     X509_verify_cert_error_string(verify));
            ERR_clear_error();
        } else if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            snprintf(error, error_size, "the TLS handshake timed out");
        } else {
            describe(error, error_size, "the TLS handshake failed");
        }
        SSL_free(ssl);
        SSL_CTX_free(context);
        return NULL;
    }
    sinew_tls *tls = malloc(sizeof *tls);
    if (!tls) { SSL_free(ssl); SSL_CTX_free(context); snprintf(error, error_size, "out of memory"); return NULL; }
    tls->context = context;
    tls->ssl = ssl;
    tls->fd = fd;
    return tls;
}

long sinew_tls_read(sinew_tls *tls, void *buffer, size_t size, int timeout_ms, char *error, size_t error_size) {
    for (;;) {
        int r = SSL_read(tls->ssl, buffer, (int)(size > 1 << 30 ? 1 << 30 : size));
        if (r > 0) return r;
        int e = SSL_get_error(tls->ssl, r);
        if (e == SSL_ERROR_ZERO_RETURN) return 0;
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            if (!wait_for(tls->fd, e, timeout_ms)) return -2;
            continue;
        }
        if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) return 0;  // the peer went away without TLS's goodbye
        describe(error, error_size, "TLS read failed");
        return -1;
    }
}

long sinew_tls_write(sinew_tls *tls, const void *buffer, size_t size, int timeout_ms, char *error, size_t error_size) {
    size_t done = 0;
    while (done < size) {
        size_t left = size - done;
        int r = SSL_write(tls->ssl, (const char *)buffer + done, (int)(left > 1 << 30 ? 1 << 30 : left));
        if (r > 0) { done += (size_t)r; continue; }
        int e = SSL_get_error(tls->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            if (!wait_for(tls->fd, e, timeout_ms)) return -2;
            continue;
        }
        describe(error, error_size, "TLS write failed");
        return -1;
    }
    return 0;
}

void sinew_tls_free(sinew_tls *tls) {
    if (!tls) return;
    SSL_shutdown(tls->ssl);
    SSL_free(tls->ssl);
    SSL_CTX_free(tls->context);
    free(tls);
}
