#include "publisher.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "em_error.h"
#include "log.h"
#include "outbox.h"
#include "wire.h"

#define IDLE_WAIT_NS (200ull * 1000 * 1000)
#define SAVE_EVERY_NS (500ull * 1000 * 1000)
#define RETURNED_WAIT_S 5.0

struct publisher {
    uv_async_t async;
    uv_thread_t thread;
    bool thread_started;
    publisher_cb cb;
    void *ctx;
    struct publisher_options opt;
    /* shared, under `lock` */
    uv_mutex_t lock;
    uv_cond_t cond;
    uint64_t written;     /* the loop's last notified seq */
    bool stop;            /* asked to end */
    uint64_t deadline_ns; /* with stop: when to give up draining */
    struct publisher_stats stats;
    /* the thread's own */
    struct outbox_reader rd;
    amqp_connection_state_t conn;
    uint64_t *ring;               /* seq of each unconfirmed delivery tag, at tag % window */
    bool *acked;                  /* whether that tag is confirmed */
    uint64_t next_tag, first_tag; /* tags first_tag .. next_tag-1 are in flight */
    uint64_t returned;            /* lowest seq the broker returned unrouted, or 0 */
    bool waiting_queue;           /* the last attempt ended with a returned message */
    char last_reason[512];
};

static void report(struct publisher *p)
{
    uv_async_send(&p->async);
}

static void on_async(uv_async_t *h)
{
    struct publisher *p = h->data;
    if (p->cb)
        p->cb(p, p->ctx);
}

/* Waits up to `ns`, never past the drain deadline once stopping. With `wake_on_news`
 * the loop's next notification ends the wait early (idle waiting for events); without,
 * only a stop does (back-off between connection attempts). */
static void wait_for(struct publisher *p, uint64_t ns, bool wake_on_news)
{
    uint64_t until = uv_hrtime() + ns;
    uv_mutex_lock(&p->lock);
    for (;;) {
        uint64_t now = uv_hrtime(), end = until;
        if (p->stop && p->deadline_ns < end)
            end = p->deadline_ns;
        if (now >= end)
            break;
        bool was_stopped = p->stop;
        (void)uv_cond_timedwait(&p->cond, &p->lock, end - now);
        if (wake_on_news || p->stop != was_stopped)
            break;
    }
    uv_mutex_unlock(&p->lock);
}

static void drop_connection(struct publisher *p, bool polite)
{
    bus_close(p->conn, polite);
    p->conn = NULL;
    p->first_tag = p->next_tag = 1;
    memset(p->acked, 0, p->opt.window * sizeof(*p->acked));
    p->returned = 0;
    uv_mutex_lock(&p->lock);
    bool was = p->stats.connected;
    p->stats.connected = false;
    uv_mutex_unlock(&p->lock);
    if (was)
        report(p);
}

static bool try_connect(struct publisher *p)
{
    char reason[512];
    p->conn = bus_connect(p->opt.target, p->opt.heartbeat_s, 10.0, reason, sizeof(reason));
    if (p->conn && bus_declare_events(p->conn, reason, sizeof(reason))) {
        amqp_confirm_select(p->conn, 1);
        if (bus_ok(amqp_get_rpc_reply(p->conn), "cannot enable publisher confirms", reason,
                   sizeof(reason))) {
            /* Reconnecting after a returned message is routine: keep it out of the log. */
            em_log(p->waiting_queue ? EM_LOG_DEBUG : EM_LOG_INFO,
                   "bus: connected to %s; publishing from seq %" PRIu64, p->opt.target->redacted,
                   p->rd.confirmed + 1);
            p->last_reason[0] = '\0';
            p->first_tag = p->next_tag = 1;
            p->returned = 0;
            outbox_reader_rewind(&p->rd);
            uv_mutex_lock(&p->lock);
            p->stats.connected = true;
            p->stats.connects++;
            uv_mutex_unlock(&p->lock);
            report(p);
            return true;
        }
    }
    if (p->conn)
        drop_connection(p, false);
    /* Say it once per distinct reason; repeats go to the debug level. */
    if (strcmp(reason, p->last_reason) != 0) {
        em_log(EM_LOG_WARN, "bus: %s; events wait in the outbox and are sent once it is back",
               reason);
        snprintf(p->last_reason, sizeof(p->last_reason), "%s", reason);
    } else {
        em_log(EM_LOG_DEBUG, "bus: %s", reason);
    }
    return false;
}

/* Copies the JSON string value after `field` (e.g. ,"type":") in the line's head. */
static bool head_string(const char *line, size_t len, const char *field, char *out, size_t cap)
{
    size_t flen = strlen(field), lim = len < 1024 ? len : 1024;
    for (size_t i = 0; i + flen < lim; i++) {
        if (memcmp(line + i, field, flen) != 0)
            continue;
        size_t k = i + flen, n = 0;
        while (k < len && line[k] != '"' && line[k] != '\\' && n + 1 < cap)
            out[n++] = line[k++];
        out[n] = '\0';
        return k < len && line[k] == '"' && n > 0;
    }
    return false;
}

static int publish_one(struct publisher *p, char *line, size_t len, uint64_t seq)
{
    char type[32], op[32], key[512], id[320];
    if (!head_string(line, len, ",\"type\":\"", type, sizeof(type)) ||
        !head_string(line, len, ",\"op\":\"", op, sizeof(op))) {
        em_log(EM_LOG_WARN, "bus: outbox event %" PRIu64 " has no type or op; sent as unknown",
               seq);
        snprintf(type, sizeof(type), "unknown");
        snprintf(op, sizeof(op), "unknown");
    }
    wire_routing_key(key, sizeof(key), p->opt.agent, type, op);
    wire_message_id(id, sizeof(id), p->opt.agent, seq);
    amqp_basic_properties_t props;
    memset(&props, 0, sizeof(props));
    props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                   AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_APP_ID_FLAG;
    props.content_type = amqp_cstring_bytes("application/json");
    props.delivery_mode = 2; /* persistent */
    props.message_id = amqp_cstring_bytes(id);
    props.app_id = amqp_cstring_bytes("em-agent");
    amqp_bytes_t body = {len, line};
    int rc = amqp_basic_publish(p->conn, 1, amqp_cstring_bytes(BUS_EXCHANGE),
                                amqp_cstring_bytes(key), 1 /* mandatory */, 0, &props, body);
    if (rc != AMQP_STATUS_OK) {
        em_log(EM_LOG_WARN, "bus: publishing failed: %s", amqp_error_string2(rc));
        return -EM_EIO;
    }
    p->ring[p->next_tag % p->opt.window] = seq;
    p->next_tag++;
    uv_mutex_lock(&p->lock);
    p->stats.published++;
    uv_mutex_unlock(&p->lock);
    return 0;
}

/* The broker confirmed `tag` (and every earlier one when `multiple`). Confirms usually
 * come in order but need not, so the first unconfirmed tag advances over a run of
 * confirmed ones. Returns false when a returned message means the rest must wait (the
 * connection is then dropped and everything after it is sent again). */
static bool on_ack(struct publisher *p, uint64_t tag, bool multiple)
{
    if (tag < p->first_tag || tag >= p->next_tag)
        return true;
    for (uint64_t t = multiple ? p->first_tag : tag; t <= tag; t++)
        p->acked[t % p->opt.window] = true;
    uint64_t n = 0, seq = 0;
    while (p->first_tag < p->next_tag && p->acked[p->first_tag % p->opt.window]) {
        p->acked[p->first_tag % p->opt.window] = false;
        seq = p->ring[p->first_tag % p->opt.window];
        p->first_tag++;
        n++;
    }
    if (n == 0)
        return true;
    bool blocked = p->returned && p->returned <= seq;
    if (!blocked && p->waiting_queue) {
        p->waiting_queue = false;
        em_log(EM_LOG_INFO, "bus: events are routed again; publishing the outbox");
    }
    if (blocked)
        seq = p->returned - 1;
    if (seq > p->rd.confirmed)
        outbox_reader_confirm(&p->rd, seq);
    uv_mutex_lock(&p->lock);
    p->stats.acked += n;
    p->stats.confirmed = p->rd.confirmed;
    uv_mutex_unlock(&p->lock);
    report(p);
    return !blocked;
}

static void on_return(struct publisher *p, amqp_channel_t ch)
{
    amqp_message_t msg;
    amqp_rpc_reply_t r = amqp_read_message(p->conn, ch, &msg, 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        return;
    if (msg.properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG) {
        const char *id = msg.properties.message_id.bytes;
        size_t n = msg.properties.message_id.len;
        const char *colon = NULL;
        for (size_t i = n; i > 0; i--)
            if (id[i - 1] == ':') {
                colon = id + i - 1;
                break;
            }
        uint64_t seq = 0;
        for (const char *c = colon ? colon + 1 : id + n; c < id + n && *c >= '0' && *c <= '9'; c++)
            seq = seq * 10 + (uint64_t)(*c - '0');
        if (seq && (!p->returned || seq < p->returned))
            p->returned = seq;
    }
    amqp_destroy_message(&msg);
}

/* Reads what the broker sent. Returns false when the connection must be dropped. */
static bool read_frames(struct publisher *p, uint64_t wait_ns)
{
    struct timeval tv = {(time_t)(wait_ns / 1000000000ull),
                         (long)((wait_ns % 1000000000ull) / 1000)};
    for (;;) {
        amqp_frame_t f;
        int rc = amqp_simple_wait_frame_noblock(p->conn, &f, &tv);
        if (rc == AMQP_STATUS_TIMEOUT)
            return true;
        if (rc != AMQP_STATUS_OK) {
            em_log(EM_LOG_WARN, "bus: connection lost: %s", amqp_error_string2(rc));
            return false;
        }
        tv.tv_sec = 0; /* drain what is already there, then return */
        tv.tv_usec = 0;
        if (f.frame_type != AMQP_FRAME_METHOD)
            continue;
        switch (f.payload.method.id) {
        case AMQP_BASIC_ACK_METHOD: {
            const amqp_basic_ack_t *a = f.payload.method.decoded;
            if (!on_ack(p, a->delivery_tag, a->multiple)) {
                if (p->waiting_queue)
                    return false;
                p->waiting_queue = true;
                em_log(EM_LOG_WARN,
                       "bus: the broker has no queue bound to " BUS_EXCHANGE " for event %" PRIu64
                       " (is em-backend's queue declared?); events wait "
                       "in the outbox, retrying in %.0f s",
                       p->returned, RETURNED_WAIT_S);
                return false;
            }
            break;
        }
        case AMQP_BASIC_NACK_METHOD:
            em_log(EM_LOG_WARN, "bus: the broker refused a message; sending again");
            return false;
        case AMQP_BASIC_RETURN_METHOD:
            on_return(p, f.channel);
            break;
        case AMQP_CHANNEL_CLOSE_METHOD: {
            const amqp_channel_close_t *m = f.payload.method.decoded;
            em_log(EM_LOG_WARN, "bus: the broker closed the channel: %u %.*s", m->reply_code,
                   (int)m->reply_text.len, (const char *)m->reply_text.bytes);
            return false;
        }
        case AMQP_CONNECTION_CLOSE_METHOD: {
            const amqp_connection_close_t *m = f.payload.method.decoded;
            em_log(EM_LOG_WARN, "bus: the broker closed the connection: %u %.*s", m->reply_code,
                   (int)m->reply_text.len, (const char *)m->reply_text.bytes);
            return false;
        }
        default:
            break;
        }
        amqp_maybe_release_buffers(p->conn);
    }
}

static void run(void *arg)
{
    struct publisher *p = arg;
    double backoff = 0.25;
    uint64_t seen_written = 0, last_save = uv_hrtime();
    bool failed = false;
    for (;;) {
        uv_mutex_lock(&p->lock);
        bool stop = p->stop;
        uint64_t written = p->written, deadline = p->deadline_ns;
        uv_mutex_unlock(&p->lock);
        uint64_t now = uv_hrtime();
        bool inflight = p->conn && p->next_tag > p->first_tag;
        if (stop && (now >= deadline || (p->rd.confirmed >= written && !inflight)))
            break;
        if (!p->conn) {
            if (!try_connect(p)) {
                double wait = backoff;
                backoff = backoff * 2 > p->opt.retry_max_s ? p->opt.retry_max_s : backoff * 2;
                wait_for(p, (uint64_t)(wait * 1e9), false);
                continue;
            }
            backoff = 0.25;
        }
        /* Fill the window. */
        bool lost = false;
        while (p->next_tag - p->first_tag < p->opt.window) {
            char *line;
            size_t len;
            uint64_t seq;
            int rc = outbox_reader_next(&p->rd, &line, &len, &seq);
            if (rc < 0) {
                em_log(EM_LOG_ERROR, "bus: cannot read the outbox: %s", em_strerror(rc));
                failed = true;
                break;
            }
            if (rc == 0)
                break;
            if (publish_one(p, line, len, seq) < 0) {
                lost = true;
                break;
            }
        }
        if (failed)
            break;
        inflight = p->next_tag > p->first_tag;
        if (!lost) {
            if (inflight) {
                lost = !read_frames(p, 50ull * 1000 * 1000);
            } else {
                /* Idle: serve heartbeats, then wait for the loop's next events. */
                lost = !read_frames(p, 0);
                if (!lost && written == seen_written)
                    wait_for(p, IDLE_WAIT_NS, true);
                seen_written = written;
            }
        }
        if (lost) {
            bool returned = p->returned != 0;
            drop_connection(p, returned);
            if (returned)
                wait_for(p, (uint64_t)(RETURNED_WAIT_S * 1e9), false);
        }
        if (uv_hrtime() - last_save >= SAVE_EVERY_NS) {
            if (outbox_reader_save(&p->rd) < 0)
                em_log(EM_LOG_WARN, "bus: cannot record the confirmed seq in %s", p->rd.dir);
            last_save = uv_hrtime();
        }
    }
    if (outbox_reader_save(&p->rd) < 0)
        em_log(EM_LOG_WARN, "bus: cannot record the confirmed seq in %s", p->rd.dir);
    if (p->conn)
        drop_connection(p, true);
    uv_mutex_lock(&p->lock);
    p->stats.finished = true;
    p->stats.failed = failed;
    p->stats.confirmed = p->rd.confirmed;
    uv_mutex_unlock(&p->lock);
    report(p);
}

int publisher_start(uv_loop_t *loop, const struct publisher_options *o, publisher_cb cb, void *ctx,
                    struct publisher **out)
{
    struct publisher *p = calloc(1, sizeof(*p));
    if (!p)
        return -EM_ENOMEM;
    p->opt = *o;
    if (!p->opt.window)
        p->opt.window = 1000;
    if (p->opt.retry_max_s <= 0)
        p->opt.retry_max_s = 30;
    if (!p->opt.heartbeat_s)
        p->opt.heartbeat_s = 30;
    p->cb = cb;
    p->ctx = ctx;
    p->first_tag = p->next_tag = 1;
    p->ring = calloc(p->opt.window, sizeof(*p->ring));
    p->acked = calloc(p->opt.window, sizeof(*p->acked));
    int rc = p->ring && p->acked ? outbox_reader_open(&p->rd, o->state_dir) : -EM_ENOMEM;
    if (rc < 0) {
        outbox_reader_close(&p->rd);
        free(p->ring);
        free(p->acked);
        free(p);
        return rc;
    }
    p->stats.confirmed = p->rd.confirmed;
    uv_mutex_init(&p->lock);
    uv_cond_init(&p->cond);
    uv_async_init(loop, &p->async, on_async);
    p->async.data = p;
    if (uv_thread_create(&p->thread, run, p) != 0) {
        p->cb = NULL;
        publisher_free(p);
        return -EM_ENOMEM;
    }
    p->thread_started = true;
    *out = p;
    return 0;
}

void publisher_notify(struct publisher *p, uint64_t seq)
{
    uv_mutex_lock(&p->lock);
    if (seq > p->written) {
        p->written = seq;
        uv_cond_signal(&p->cond);
    }
    uv_mutex_unlock(&p->lock);
}

void publisher_stop(struct publisher *p, double drain_s)
{
    uv_mutex_lock(&p->lock);
    if (!p->stop) {
        p->stop = true;
        p->deadline_ns = uv_hrtime() + (uint64_t)(drain_s * 1e9);
    }
    uv_cond_signal(&p->cond);
    uv_mutex_unlock(&p->lock);
}

void publisher_stats(struct publisher *p, struct publisher_stats *s)
{
    uv_mutex_lock(&p->lock);
    *s = p->stats;
    uv_mutex_unlock(&p->lock);
}

static void on_close(uv_handle_t *h)
{
    struct publisher *p = h->data;
    uv_mutex_destroy(&p->lock);
    uv_cond_destroy(&p->cond);
    outbox_reader_close(&p->rd);
    free(p->ring);
    free(p->acked);
    free(p);
}

void publisher_free(struct publisher *p)
{
    if (p->thread_started) {
        publisher_stop(p, 0);
        uv_thread_join(&p->thread);
    }
    uv_close((uv_handle_t *)&p->async, on_close);
}
