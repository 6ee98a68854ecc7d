/* bus.h — connecting to the message bus (RabbitMQ over AMQP 0-9-1, DESIGN §7).
 *
 * Shared by the agent's publisher thread and em-backend's consumer. A URL is parsed
 * once into a struct bus_target; bus_connect() opens a connection (TCP or TLS), logs in
 * and opens channel 1. Nothing here ever puts the password into a message: reasons and
 * bus_target.redacted show the URL with the password replaced by "***".
 *
 * librabbitmq-c connections are not thread-safe: a connection belongs to the thread that
 * made it. Parsing and freeing targets is safe from any thread.
 */
#ifndef EM_BUS_H
#define EM_BUS_H

#include <stdbool.h>
#include <stddef.h>

#include <sys/time.h> /* amqp.h only forward-declares struct timeval */

#include <amqp.h>

struct bus_target {
    char *host, *user, *password, *vhost;
    int port;
    bool tls;
    char *ca_file;   /* TLS: CA bundle that signs the broker's certificate */
    char *cert_file; /* TLS: optional client certificate and key */
    char *key_file;
    bool no_verify;     /* TLS: do not check the broker's certificate (testing only) */
    char redacted[512]; /* the URL for logs: amqp://user:***@host:port/vhost */
};

/* Parses `url` (amqp://[user[:password]@]host[:port][/vhost], or amqps://). Missing
 * parts take RabbitMQ's defaults (guest, guest, port 5672 or 5671, vhost "/"). `ca_file`,
 * `cert_file` and `key_file` may be NULL; for amqps:// without a CA file the system
 * bundle is used. Returns 0, or EM_EUSAGE with a reason that does not contain the
 * password. Free with bus_target_free(). */
int bus_target_parse(struct bus_target *t, const char *url, const char *ca_file,
                     const char *cert_file, const char *key_file, char *reason, size_t cap);

void bus_target_free(struct bus_target *t);

/* Connects within `timeout_s`, logs in (heartbeat `heartbeat_s`, 0 for none) and opens
 * channel 1. Returns the connection (you own it: bus_close()) or NULL with a reason. */
amqp_connection_state_t bus_connect(const struct bus_target *t, int heartbeat_s, double timeout_s,
                                    char *reason, size_t cap);

/* Closes channel 1 and the connection politely when `polite`, then frees it. */
void bus_close(amqp_connection_state_t c, bool polite);

/* A description of an RPC reply that was not normal ("server: 404 NOT_FOUND - no
 * exchange ..." or the library's error). Returns `buf`. */
const char *bus_reply_text(amqp_rpc_reply_t r, char *buf, size_t cap);

/* Whether the reply is normal; otherwise fills `reason` with `what` and the reply. */
bool bus_ok(amqp_rpc_reply_t r, const char *what, char *reason, size_t cap);

/* Declares what both sides rely on: the durable topic exchange `em.events`. */
bool bus_declare_events(amqp_connection_state_t c, char *reason, size_t cap);

#define BUS_EXCHANGE "em.events"
#define BUS_DEAD_EXCHANGE "em.dead"
#define BUS_QUEUE "em.backend"
#define BUS_DEAD_QUEUE "em.dead"
/* The routing key of em-backend serve's stall alerts on BUS_EXCHANGE. */
#define BUS_ALERTS_KEY "em.alerts"

#endif
