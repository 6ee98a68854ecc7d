#include "bus.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef EM_NO_TLS
#include <amqp_ssl_socket.h>
#ifdef _WIN32
/* wincrypt.h first: OpenSSL's headers undo the names it defines (X509_NAME, …). */
#include <windows.h>
#include <wincrypt.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#endif
#endif
#include <amqp_tcp_socket.h>

#include "em_error.h"

#define DEFAULT_CA_BUNDLE "/etc/ssl/certs/ca-certificates.crt"

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

int bus_target_parse(struct bus_target *t, const char *url, const char *ca_file,
                     const char *cert_file, const char *key_file, char *reason, size_t cap)
{
    memset(t, 0, sizeof(*t));
    if (strncmp(url, "amqp://", 7) != 0 && strncmp(url, "amqps://", 8) != 0) {
        snprintf(reason, cap, "the bus URL must start with amqp:// or amqps://");
        return -EM_EUSAGE;
    }
    char *copy = strdup(url);
    if (!copy)
        return -EM_ENOMEM;
    struct amqp_connection_info info;
    amqp_default_connection_info(&info);
    if (amqp_parse_url(copy, &info) != AMQP_STATUS_OK || !info.host || !*info.host) {
        free(copy);
        snprintf(reason, cap,
                 "cannot read the bus URL: expected amqp[s]://user:password@host[:port]/vhost");
        return -EM_EUSAGE;
    }
    t->host = strdup(info.host);
    t->user = strdup(info.user);
    t->password = strdup(info.password);
    /* "amqp://host/" names the empty vhost, which no broker has; the user meant "/". */
    t->vhost = strdup(info.vhost && *info.vhost ? info.vhost : "/");
    t->port = info.port;
    t->tls = info.ssl != 0;
    free(copy);
#ifdef EM_NO_TLS
    if (t->tls) {
        snprintf(reason, cap,
                 "this em-agent was built without TLS, so it cannot use amqps:// (use amqp:// on a "
                 "trusted network)");
        bus_target_free(t);
        return -EM_EUSAGE;
    }
#endif
#ifndef _WIN32
    if (t->tls && !ca_file)
        ca_file = DEFAULT_CA_BUNDLE; /* Windows: the system's ROOT store (load_windows_roots) */
#endif
    t->ca_file = dup_or_null(ca_file);
    t->cert_file = dup_or_null(cert_file);
    t->key_file = dup_or_null(key_file);
    if (!t->host || !t->user || !t->password || !t->vhost || (ca_file && !t->ca_file) ||
        (cert_file && !t->cert_file) || (key_file && !t->key_file)) {
        bus_target_free(t);
        return -EM_ENOMEM;
    }
    if ((cert_file != NULL) != (key_file != NULL)) {
        bus_target_free(t);
        snprintf(reason, cap, "a client certificate needs both the certificate and its key");
        return -EM_EUSAGE;
    }
    const char *host_open = strchr(t->host, ':') ? "[" : "";
    const char *host_close = *host_open ? "]" : "";
    snprintf(t->redacted, sizeof(t->redacted), "%s://%s:***@%s%s%s:%d/%s",
             t->tls ? "amqps" : "amqp", t->user, host_open, t->host, host_close, t->port,
             strcmp(t->vhost, "/") == 0 ? "%2f" : t->vhost);
    return 0;
}

void bus_target_free(struct bus_target *t)
{
    if (t->password) /* do not leave it lying around in freed memory */
        memset(t->password, 0, strlen(t->password));
    free(t->host);
    free(t->user);
    free(t->password);
    free(t->vhost);
    free(t->ca_file);
    free(t->cert_file);
    free(t->key_file);
    memset(t, 0, sizeof(*t));
}

const char *bus_reply_text(amqp_rpc_reply_t r, char *buf, size_t cap)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        snprintf(buf, cap, "ok");
        break;
    case AMQP_RESPONSE_NONE:
        snprintf(buf, cap, "no reply from the broker");
        break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        snprintf(buf, cap, "%s", amqp_error_string2(r.library_error));
        break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            const amqp_connection_close_t *m = r.reply.decoded;
            snprintf(buf, cap, "broker closed the connection: %u %.*s", m->reply_code,
                     (int)m->reply_text.len, (const char *)m->reply_text.bytes);
        } else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            const amqp_channel_close_t *m = r.reply.decoded;
            snprintf(buf, cap, "broker closed the channel: %u %.*s", m->reply_code,
                     (int)m->reply_text.len, (const char *)m->reply_text.bytes);
        } else {
            snprintf(buf, cap, "unexpected broker method 0x%08x", (unsigned)r.reply.id);
        }
        break;
    }
    return buf;
}

bool bus_ok(amqp_rpc_reply_t r, const char *what, char *reason, size_t cap)
{
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return true;
    char text[256];
    snprintf(reason, cap, "%s: %s", what, bus_reply_text(r, text, sizeof(text)));
    return false;
}

#if defined(_WIN32) && !defined(EM_NO_TLS)
/* Trusts what Windows trusts: every certificate of the machine's ROOT store goes into the
 * TLS context's store (OpenSSL does not read the Windows stores itself). Returns the
 * number added, or a negative EM_E* code with the reason. */
static int load_windows_roots(amqp_socket_t *s, char *reason, size_t cap)
{
    SSL_CTX *ctx = amqp_ssl_socket_get_context(s);
    X509_STORE *store = ctx ? SSL_CTX_get_cert_store(ctx) : NULL;
    HCERTSTORE h = store ? CertOpenSystemStoreW(0, L"ROOT") : NULL;
    if (!h) {
        snprintf(reason, cap, "cannot open the Windows certificate store (ROOT): give --amqp-ca");
        return -EM_EIO;
    }
    int n = 0;
    for (PCCERT_CONTEXT c = NULL; (c = CertEnumCertificatesInStore(h, c)) != NULL;) {
        const unsigned char *p = c->pbCertEncoded;
        X509 *x = d2i_X509(NULL, &p, (long)c->cbCertEncoded);
        if (x && X509_STORE_add_cert(store, x) == 1)
            n++;
        X509_free(x);
    }
    CertCloseStore(h, 0);
    if (n == 0) {
        snprintf(reason, cap,
                 "the Windows certificate store (ROOT) has no certificate: give "
                 "--amqp-ca");
        return -EM_EIO;
    }
    return n;
}
#endif

amqp_connection_state_t bus_connect(const struct bus_target *t, int heartbeat_s, double timeout_s,
                                    char *reason, size_t cap)
{
    amqp_connection_state_t c = amqp_new_connection();
    if (!c) {
        snprintf(reason, cap, "out of memory");
        return NULL;
    }
#ifdef EM_NO_TLS
    amqp_socket_t *s = amqp_tcp_socket_new(c); /* bus_target_parse refused amqps:// */
#else
    amqp_socket_t *s = t->tls ? amqp_ssl_socket_new(c) : amqp_tcp_socket_new(c);
#endif
    if (!s) {
        snprintf(reason, cap, "cannot create a %s socket", t->tls ? "TLS" : "TCP");
        amqp_destroy_connection(c);
        return NULL;
    }
#ifndef EM_NO_TLS
    if (t->tls) {
        amqp_ssl_socket_set_verify_peer(s, t->no_verify ? 0 : 1);
        amqp_ssl_socket_set_verify_hostname(s, t->no_verify ? 0 : 1);
        if (t->ca_file && amqp_ssl_socket_set_cacert(s, t->ca_file) != AMQP_STATUS_OK) {
            snprintf(reason, cap, "%s: cannot load the CA file", t->ca_file);
            amqp_destroy_connection(c);
            return NULL;
        }
#ifdef _WIN32
        if (!t->ca_file && !t->no_verify && load_windows_roots(s, reason, cap) < 0) {
            amqp_destroy_connection(c);
            return NULL;
        }
#endif
        if (t->cert_file &&
            amqp_ssl_socket_set_key(s, t->cert_file, t->key_file) != AMQP_STATUS_OK) {
            snprintf(reason, cap, "%s / %s: cannot load the client certificate and key",
                     t->cert_file, t->key_file);
            amqp_destroy_connection(c);
            return NULL;
        }
    }
#endif
    struct timeval tv = {(time_t)timeout_s, (long)((timeout_s - (double)(time_t)timeout_s) * 1e6)};
    amqp_set_handshake_timeout(c, &tv);
    amqp_set_rpc_timeout(c, &tv);
    int rc = amqp_socket_open_noblock(s, t->host, t->port, &tv);
    if (rc != AMQP_STATUS_OK) {
        snprintf(reason, cap, "%s: cannot connect: %s", t->redacted, amqp_error_string2(rc));
        amqp_destroy_connection(c);
        return NULL;
    }
    amqp_rpc_reply_t r = amqp_login(c, t->vhost, 0, 131072, heartbeat_s, AMQP_SASL_METHOD_PLAIN,
                                    t->user, t->password);
    char text[256];
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        snprintf(reason, cap, "%s: login failed: %s", t->redacted,
                 bus_reply_text(r, text, sizeof(text)));
        amqp_destroy_connection(c);
        return NULL;
    }
    amqp_channel_open(c, 1);
    r = amqp_get_rpc_reply(c);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        snprintf(reason, cap, "%s: cannot open a channel: %s", t->redacted,
                 bus_reply_text(r, text, sizeof(text)));
        bus_close(c, false);
        return NULL;
    }
    return c;
}

void bus_close(amqp_connection_state_t c, bool polite)
{
    if (!c)
        return;
    if (polite) {
        amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
        amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    }
    amqp_destroy_connection(c);
}

bool bus_declare_events(amqp_connection_state_t c, char *reason, size_t cap)
{
    amqp_exchange_declare(c, 1, amqp_cstring_bytes(BUS_EXCHANGE), amqp_cstring_bytes("topic"), 0,
                          1 /* durable */, 0, 0, amqp_empty_table);
    return bus_ok(amqp_get_rpc_reply(c), "cannot declare the exchange " BUS_EXCHANGE, reason, cap);
}
