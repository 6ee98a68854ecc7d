/* The consumer loop (consume.h). */
#include "consume.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "bus.h"
#include "em_error.h"
#include "ev.h"
#include "log.h"
#include "store.h"

static volatile sig_atomic_t stop_requested;

void consume_request_stop(void)
{
    stop_requested = 1;
}

/* A message as it came, kept until its batch is acknowledged so that it can go to the
 * dead letters unchanged: body, routing key, message id, content type and headers. */
struct original {
    amqp_bytes_t body, routing_key, message_id, content_type;
    amqp_table_t headers; /* cloned into pool */
    amqp_pool_t pool;
    bool pooled;
};

struct poison {
    struct original m;
    char reason[256];
};

struct consumer {
    struct bus_target target;
    const char *store_url;
    unsigned prefetch, batch_max, batch_ms;
    double idle_exit_s;
    struct store *store;
    amqp_connection_state_t conn;
    struct ev *batch;
    struct original *orig; /* batch[i] came as orig[i] */
    size_t n;
    struct poison *poison;
    size_t npoison;
    uint64_t last_tag;
    uint64_t first_ns, last_msg_ns;
    char last_reason[512];
    double backoff; /* seconds before the next attempt after a failure */
    bool failing;   /* the last attempt failed: say so when it works again */
    bool connected_before;
    uint64_t fail_since_ns;
    /* totals */
    uint64_t received, stored, unchanged, dead, batches, redelivered;
    uint64_t report_ns, report_received;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Sleeps `s` seconds unless a stop is requested. */
static void pause_s(double s)
{
    uint64_t end = now_ns() + (uint64_t)(s * 1e9);
    while (!stop_requested && now_ns() < end) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* Logs a failure once per distinct reason (repeats at debug level). */
static void warn_once(struct consumer *c, const char *reason)
{
    if (strcmp(reason, c->last_reason) != 0) {
        em_log(EM_LOG_WARN, "%s; retrying with back-off", reason);
        snprintf(c->last_reason, sizeof(c->last_reason), "%s", reason);
    } else {
        em_log(EM_LOG_DEBUG, "%s", reason);
    }
}

static void original_keep(struct original *m, const amqp_envelope_t *env)
{
    const amqp_basic_properties_t *pr = &env->message.properties;
    memset(m, 0, sizeof(*m));
    m->body = amqp_bytes_malloc_dup(env->message.body);
    m->routing_key = amqp_bytes_malloc_dup(env->routing_key);
    if (pr->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)
        m->message_id = amqp_bytes_malloc_dup(pr->message_id);
    if (pr->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG)
        m->content_type = amqp_bytes_malloc_dup(pr->content_type);
    if ((pr->_flags & AMQP_BASIC_HEADERS_FLAG) && pr->headers.num_entries > 0) {
        init_amqp_pool(&m->pool, 4096);
        m->pooled = true;
        if (amqp_table_clone(&pr->headers, &m->headers, &m->pool) != AMQP_STATUS_OK)
            m->headers = amqp_empty_table;
    }
}

static void original_free(struct original *m)
{
    amqp_bytes_free(m->body);
    amqp_bytes_free(m->routing_key);
    amqp_bytes_free(m->message_id);
    amqp_bytes_free(m->content_type);
    if (m->pooled)
        empty_amqp_pool(&m->pool);
    memset(m, 0, sizeof(*m));
}

static void drop_batch(struct consumer *c)
{
    for (size_t i = 0; i < c->n; i++) {
        ev_free(&c->batch[i]);
        original_free(&c->orig[i]);
    }
    c->n = 0;
    for (size_t i = 0; i < c->npoison; i++)
        original_free(&c->poison[i].m);
    c->npoison = 0;
    c->last_tag = 0;
}

static void drop_connection(struct consumer *c, bool polite)
{
    /* Unacknowledged messages go back to the queue when the channel closes. */
    bus_close(c->conn, polite);
    c->conn = NULL;
    drop_batch(c);
}

static bool declare(struct consumer *c, char *reason, size_t cap)
{
    amqp_connection_state_t k = c->conn;
    if (!bus_declare_events(k, reason, cap))
        return false;
    amqp_exchange_declare(k, 1, amqp_cstring_bytes(BUS_DEAD_EXCHANGE), amqp_cstring_bytes("fanout"),
                          0, 1, 0, 0, amqp_empty_table);
    if (!bus_ok(amqp_get_rpc_reply(k), "cannot declare the exchange " BUS_DEAD_EXCHANGE, reason,
                cap))
        return false;
    amqp_queue_declare(k, 1, amqp_cstring_bytes(BUS_DEAD_QUEUE), 0, 1, 0, 0, amqp_empty_table);
    if (!bus_ok(amqp_get_rpc_reply(k), "cannot declare the queue " BUS_DEAD_QUEUE, reason, cap))
        return false;
    amqp_queue_bind(k, 1, amqp_cstring_bytes(BUS_DEAD_QUEUE), amqp_cstring_bytes(BUS_DEAD_EXCHANGE),
                    amqp_cstring_bytes(""), amqp_empty_table);
    if (!bus_ok(amqp_get_rpc_reply(k), "cannot bind " BUS_DEAD_QUEUE, reason, cap))
        return false;
    amqp_table_entry_t arg;
    arg.key = amqp_cstring_bytes("x-dead-letter-exchange");
    arg.value.kind = AMQP_FIELD_KIND_UTF8;
    arg.value.value.bytes = amqp_cstring_bytes(BUS_DEAD_EXCHANGE);
    amqp_table_t args = {1, &arg};
    amqp_queue_declare(k, 1, amqp_cstring_bytes(BUS_QUEUE), 0, 1, 0, 0, args);
    if (!bus_ok(amqp_get_rpc_reply(k),
                "cannot declare the queue " BUS_QUEUE
                " (if it exists with other arguments, delete it or ask the broker's admin)",
                reason, cap))
        return false;
    amqp_queue_bind(k, 1, amqp_cstring_bytes(BUS_QUEUE), amqp_cstring_bytes(BUS_EXCHANGE),
                    amqp_cstring_bytes("#"), amqp_empty_table);
    if (!bus_ok(amqp_get_rpc_reply(k), "cannot bind " BUS_QUEUE, reason, cap))
        return false;
    amqp_tx_select(k, 1);
    if (!bus_ok(amqp_get_rpc_reply(k), "cannot start AMQP transactions", reason, cap))
        return false;
    amqp_basic_qos(k, 1, 0, (uint16_t)c->prefetch, 0);
    if (!bus_ok(amqp_get_rpc_reply(k), "cannot set the prefetch window", reason, cap))
        return false;
    amqp_basic_consume(k, 1, amqp_cstring_bytes(BUS_QUEUE), amqp_empty_bytes, 0, 0, 0,
                       amqp_empty_table);
    return bus_ok(amqp_get_rpc_reply(k), "cannot consume from " BUS_QUEUE, reason, cap);
}

static bool connect_bus(struct consumer *c)
{
    char reason[512];
    c->conn = bus_connect(&c->target, 30, 10.0, reason, sizeof(reason));
    if (c->conn && declare(c, reason, sizeof(reason))) {
        /* Said once; a reconnection after a failure is told by the recovery line. */
        em_log(c->connected_before ? EM_LOG_DEBUG : EM_LOG_INFO, "consuming %s from %s into %s",
               BUS_QUEUE, c->target.redacted, c->store->redacted);
        c->connected_before = true;
        return true;
    }
    if (c->conn)
        drop_connection(c, false);
    warn_once(c, reason);
    return false;
}

static bool open_store(struct consumer *c)
{
    char reason[512];
    int rc = store_open(c->store_url, true, &c->store, reason, sizeof(reason));
    if (rc == 0)
        return true;
    if (rc == -EM_EUSAGE || rc == -EM_ESTATE) {
        em_log(EM_LOG_ERROR, "%s", reason);
        stop_requested = 1;
        return false;
    }
    warn_once(c, reason);
    return false;
}

static void add_poison(struct consumer *c, const amqp_envelope_t *env, const char *reason)
{
    struct poison *p = &c->poison[c->npoison++];
    original_keep(&p->m, env);
    snprintf(p->reason, sizeof(p->reason), "%s", reason);
}

/* Publishes a dead letter: the original body and properties, its headers plus
 * x-em-reason (why) and x-em-routing-key (where it was going, for `dead replay`). */
static bool publish_dead(struct consumer *c, const struct poison *p)
{
    const struct original *m = &p->m;
    amqp_table_entry_t h[64];
    int nh = 0;
    for (int i = 0; i < m->headers.num_entries && nh < 62; i++) {
        const amqp_table_entry_t *e = &m->headers.entries[i];
        if (e->key.len >= 5 && memcmp(e->key.bytes, "x-em-", 5) == 0)
            continue; /* replaced below (a message dead-lettered before and replayed) */
        h[nh++] = *e;
    }
    h[nh].key = amqp_cstring_bytes("x-em-reason");
    h[nh].value.kind = AMQP_FIELD_KIND_UTF8;
    h[nh++].value.value.bytes = amqp_cstring_bytes(p->reason);
    h[nh].key = amqp_cstring_bytes("x-em-routing-key");
    h[nh].value.kind = AMQP_FIELD_KIND_UTF8;
    h[nh++].value.value.bytes = m->routing_key;
    amqp_basic_properties_t props;
    memset(&props, 0, sizeof(props));
    props._flags = AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.headers = (amqp_table_t){nh, h};
    props.delivery_mode = 2;
    if (m->message_id.len) {
        props._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
        props.message_id = m->message_id;
    }
    if (m->content_type.len) {
        props._flags |= AMQP_BASIC_CONTENT_TYPE_FLAG;
        props.content_type = m->content_type;
    }
    return amqp_basic_publish(c->conn, 1, amqp_cstring_bytes(BUS_DEAD_EXCHANGE), m->routing_key, 0,
                              0, &props, m->body) == AMQP_STATUS_OK;
}

/* After a failure: the connection (and with it every unacknowledged message) goes back,
 * the store is closed, and the next attempt waits, twice as long each time up to 30 s. */
static void give_back(struct consumer *c, const char *reason, bool store_too)
{
    warn_once(c, reason);
    if (!c->failing)
        c->fail_since_ns = now_ns();
    c->failing = true;
    if (store_too) {
        store_close(c->store);
        c->store = NULL;
    }
    drop_connection(c, false);
    pause_s(c->backoff);
    c->backoff = c->backoff * 2 > 30 ? 30 : c->backoff * 2;
}

/* A batch with an event the store refused: store the events one at a time, so that only
 * an event refused for its own values goes to the dead letters. Returns 0, or EM_EIO as
 * soon as the store fails for any other reason (full, I/O, connection lost): then the
 * whole batch is given back to the broker, and nothing is dead-lettered. */
static int apply_one_by_one(struct consumer *c, size_t *changed, char *reason, size_t cap)
{
    size_t k = 0;
    *changed = 0;
    for (size_t i = 0; i < c->n; i++) {
        size_t ch = 0;
        int rc = store_apply(c->store, &c->batch[i], 1, &ch, reason, cap);
        if (rc == -EM_EVALUE) {
            struct poison *p = &c->poison[c->npoison++];
            p->m = c->orig[i];
            memset(&c->orig[i], 0, sizeof(c->orig[i]));
            snprintf(p->reason, sizeof(p->reason), "the store refused it: %.200s", reason);
            ev_free(&c->batch[i]);
            continue;
        }
        if (rc < 0) {
            /* Keep the batch whole (the events already stored are stored again, harmlessly,
             * when the broker delivers them again). */
            for (size_t j = i; j < c->n; j++) {
                c->batch[k] = c->batch[j];
                c->orig[k++] = c->orig[j];
            }
            c->n = k;
            return rc;
        }
        *changed += ch;
        c->batch[k] = c->batch[i];
        c->orig[k++] = c->orig[i];
    }
    c->n = k;
    return 0;
}

/* Store, then acknowledge. On failure nothing is acknowledged and the connection is
 * dropped, so the broker delivers the batch again. */
static void flush(struct consumer *c)
{
    if (c->n == 0 && c->npoison == 0)
        return;
    char reason[512];
    size_t changed = 0;
    int rc = store_apply(c->store, c->batch, c->n, &changed, reason, sizeof(reason));
    if (rc == -EM_EVALUE) {
        em_log(EM_LOG_DEBUG, "%s; storing the batch's events one at a time", reason);
        rc = apply_one_by_one(c, &changed, reason, sizeof(reason));
    }
    if (rc < 0) {
        give_back(c, reason, true);
        return;
    }
    bool ok = true;
    for (size_t i = 0; i < c->npoison && ok; i++)
        ok = publish_dead(c, &c->poison[i]);
    if (ok)
        ok = amqp_basic_ack(c->conn, 1, c->last_tag, 1) == AMQP_STATUS_OK;
    if (ok) {
        amqp_tx_commit(c->conn, 1);
        ok = bus_ok(amqp_get_rpc_reply(c->conn), "cannot acknowledge", reason, sizeof(reason));
    } else {
        snprintf(reason, sizeof(reason), "cannot acknowledge: the connection failed");
    }
    if (!ok) {
        /* Stored but not acknowledged: the repeat will change nothing. */
        give_back(c, reason, false);
        return;
    }
    /* Only now, with the dead letters committed, are they said to be sent. */
    for (size_t i = 0; i < c->npoison; i++) {
        const struct original *m = &c->poison[i].m;
        em_log(EM_LOG_WARN, "message %.*s (routing key %.*s): %s; sent to " BUS_DEAD_EXCHANGE,
               (int)m->message_id.len, m->message_id.len ? (const char *)m->message_id.bytes : "-",
               (int)m->routing_key.len, (const char *)m->routing_key.bytes, c->poison[i].reason);
    }
    if (c->failing) {
        em_log(EM_LOG_INFO, "storing again after %.0f s of failures",
               (double)(now_ns() - c->fail_since_ns) / 1e9);
        c->failing = false;
        c->last_reason[0] = '\0';
    }
    c->backoff = 0.25;
    c->stored += changed;
    c->unchanged += c->n - changed;
    c->dead += c->npoison;
    c->batches++;
    drop_batch(c);
}

static void progress(struct consumer *c, bool final)
{
    uint64_t now = now_ns();
    double secs = (double)(now - c->report_ns) / 1e9;
    em_log(EM_LOG_INFO,
           "%sreceived %" PRIu64 " (%.0f/s), stored %" PRIu64 ", unchanged %" PRIu64
           ", dead-lettered %" PRIu64 ", %" PRIu64 " batches, %" PRIu64 " redelivered",
           final ? "stopped: " : "", c->received,
           secs > 0 ? (double)(c->received - c->report_received) / secs : 0.0, c->stored,
           c->unchanged, c->dead, c->batches, c->redelivered);
    c->report_ns = now;
    c->report_received = c->received;
}

static void on_message(struct consumer *c, amqp_envelope_t *env)
{
    /* serve's stall alerts travel the same exchange (routing key em.alerts) for whoever
     * listens; they are not entity events: taken off the queue, not stored. */
    const amqp_bytes_t *rk = &env->routing_key;
    if (rk->len == strlen(BUS_ALERTS_KEY) && memcmp(rk->bytes, BUS_ALERTS_KEY, rk->len) == 0) {
        amqp_basic_ack(c->conn, 1, env->delivery_tag, 0);
        return;
    }
    c->received++;
    if (env->redelivered)
        c->redelivered++;
    if (c->n == 0 && c->npoison == 0)
        c->first_ns = now_ns();
    c->last_tag = env->delivery_tag;
    char reason[256];
    int rc = ev_decode(env->message.body.bytes, env->message.body.len, &c->batch[c->n], reason,
                       sizeof(reason));
    if (rc == 0) {
        original_keep(&c->orig[c->n], env);
        c->n++;
    } else {
        ev_free(&c->batch[c->n]);
        add_poison(c, env, rc == -EM_ENOMEM ? "out of memory" : reason);
    }
}

/* A frame other than a delivery: the broker closing things, or nothing that matters. */
static bool other_frame(struct consumer *c)
{
    amqp_frame_t f;
    struct timeval tv = {0, 0};
    if (amqp_simple_wait_frame_noblock(c->conn, &f, &tv) != AMQP_STATUS_OK)
        return true;
    if (f.frame_type != AMQP_FRAME_METHOD)
        return true;
    char reason[300];
    switch (f.payload.method.id) {
    case AMQP_CHANNEL_CLOSE_METHOD: {
        const amqp_channel_close_t *m = f.payload.method.decoded;
        snprintf(reason, sizeof(reason), "the broker closed the channel: %u %.*s", m->reply_code,
                 (int)m->reply_text.len, (const char *)m->reply_text.bytes);
        break;
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
        const amqp_connection_close_t *m = f.payload.method.decoded;
        snprintf(reason, sizeof(reason), "the broker closed the connection: %u %.*s", m->reply_code,
                 (int)m->reply_text.len, (const char *)m->reply_text.bytes);
        break;
    }
    case AMQP_BASIC_CANCEL_METHOD:
        snprintf(reason, sizeof(reason), "the broker cancelled the consumer (queue deleted?)");
        break;
    default:
        return true;
    }
    warn_once(c, reason);
    return false;
}

static int run(struct consumer *c)
{
    c->backoff = 0.25;
    c->report_ns = c->last_msg_ns = now_ns();
    uint64_t next_report = c->report_ns + 10ull * 1000000000ull;
    while (!stop_requested) {
        if (!c->store && !open_store(c)) {
            pause_s(c->backoff);
            c->backoff = c->backoff * 2 > 30 ? 30 : c->backoff * 2;
            continue;
        }
        if (!c->conn && !connect_bus(c)) {
            pause_s(c->backoff);
            c->backoff = c->backoff * 2 > 30 ? 30 : c->backoff * 2;
            continue;
        }
        uint64_t now = now_ns();
        if (now >= next_report) {
            progress(c, false);
            next_report = now + 10ull * 1000000000ull;
        }
        bool pending = c->n || c->npoison;
        uint64_t wait_ns = 1000000000ull;
        if (pending) {
            uint64_t due = c->first_ns + (uint64_t)c->batch_ms * 1000000ull;
            wait_ns = due > now ? due - now : 0;
        }
        struct timeval tv = {(time_t)(wait_ns / 1000000000ull),
                             (suseconds_t)((wait_ns % 1000000000ull) / 1000)};
        amqp_envelope_t env;
        amqp_maybe_release_buffers(c->conn);
        amqp_rpc_reply_t r = amqp_consume_message(c->conn, &env, &tv, 0);
        if (r.reply_type == AMQP_RESPONSE_NORMAL) {
            c->last_msg_ns = now_ns();
            on_message(c, &env);
            amqp_destroy_envelope(&env);
            if (c->n + c->npoison >= c->batch_max)
                flush(c);
            continue;
        }
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_TIMEOUT) {
            if (pending && now_ns() >= c->first_ns + (uint64_t)c->batch_ms * 1000000ull)
                flush(c);
            if (c->idle_exit_s > 0 && !c->n && !c->npoison &&
                (double)(now_ns() - c->last_msg_ns) / 1e9 >= c->idle_exit_s) {
                em_log(EM_LOG_INFO, "no message for %.1f s: exiting", c->idle_exit_s);
                break;
            }
            continue;
        }
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
            if (!other_frame(c))
                drop_connection(c, false);
            continue;
        }
        char text[256], reason[800];
        snprintf(reason, sizeof(reason), "%s: connection lost: %s", c->target.redacted,
                 bus_reply_text(r, text, sizeof(text)));
        give_back(c, reason, false);
    }
    if (c->conn && c->store)
        flush(c);
    if (c->conn)
        drop_connection(c, true);
    progress(c, true);
    return BE_OK;
}

int consume_run(const struct consume_settings *s)
{
    struct consumer c;
    memset(&c, 0, sizeof(c));
    c.target = s->target;
    c.store_url = s->store_url;
    c.prefetch = s->prefetch;
    c.batch_max = s->batch_max;
    c.batch_ms = s->batch_ms;
    c.idle_exit_s = s->idle_exit_s;
    c.batch = calloc(c.batch_max, sizeof(*c.batch));
    c.orig = calloc(c.batch_max, sizeof(*c.orig));
    c.poison = calloc(c.batch_max * 2, sizeof(*c.poison));
    int status = BE_USAGE;
    /* A bad store URL or a store from a newer em-backend is a setting to fix, not to retry. */
    if (c.batch && c.orig && c.poison)
        status = !open_store(&c) && stop_requested ? BE_FAILED : run(&c);
    store_close(c.store);
    free(c.batch);
    free(c.orig);
    free(c.poison);
    return status;
}
