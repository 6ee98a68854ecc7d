/* em-backend: dead: look at the dead letters (em.dead) and send them back to em.events.
 *
 * consume dead-letters a message unchanged, adding the headers x-em-reason and
 * x-em-routing-key. `list` reads the queue without taking anything from it (the messages
 * are left unacknowledged, and return to the queue when the connection closes). `replay`
 * publishes each message to em.events with its original routing key, body and
 * properties (the x-em-* headers removed), and acknowledges it in the same AMQP
 * transaction, so a message is never both replayed and kept, nor lost.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "backend.h"
#include "bus.h"
#include "em_utf8.h"
#include "log.h"

static const char dead_usage[] =
    "Usage: em-backend dead list [--json] [--amqp URL]\n"
    "       em-backend dead replay [--limit N] [--amqp URL]\n"
    "\n"
    "The dead letters: messages consume could not store because they are not valid events\n"
    "(or the store refused their values). Each is kept unchanged, with the reason in the\n"
    "header x-em-reason.\n"
    "\n"
    "  list              print each dead letter: message id, routing key, reason and the\n"
    "                    start of its body; the queue is left as it is\n"
    "  --json            one JSON object per message, with the whole body\n"
    "  replay            send dead letters back to em.events with their original routing\n"
    "                    key (after fixing what refused them: an upgraded em-backend);\n"
    "                    consume stores them, or dead-letters them again with the reason\n"
    "  --limit N         replay at most N messages (default: all)\n"
    "  --amqp URL        amqp[s]://user:password@host[:port]/vhost [EM_BACKEND_AMQP]\n"
    "  --amqp-ca FILE, --amqp-cert FILE, --amqp-key FILE   for amqps://\n"
    "\n"
    "Exit status: 0 done; 1 the broker cannot be reached or fails; 2 bad usage or settings.\n";

static const amqp_table_entry_t *header(const amqp_basic_properties_t *p, const char *key)
{
    if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG))
        return NULL;
    for (int i = 0; i < p->headers.num_entries; i++) {
        const amqp_table_entry_t *e = &p->headers.entries[i];
        if (e->key.len == strlen(key) && memcmp(e->key.bytes, key, e->key.len) == 0)
            return e;
    }
    return NULL;
}

static amqp_bytes_t header_text(const amqp_basic_properties_t *p, const char *key)
{
    const amqp_table_entry_t *e = header(p, key);
    if (e && (e->value.kind == AMQP_FIELD_KIND_UTF8 || e->value.kind == AMQP_FIELD_KIND_BYTES))
        return e->value.value.bytes;
    return amqp_empty_bytes;
}

/* Reads the next message of em.dead without acknowledging it. Returns 1 with *msg (free
 * with amqp_destroy_message) and *tag, 0 when the queue is empty, -1 on failure. */
static int get_one(amqp_connection_state_t k, amqp_message_t *msg, uint64_t *tag, char *reason,
                   size_t cap)
{
    amqp_rpc_reply_t r = amqp_basic_get(k, 1, amqp_cstring_bytes(BUS_DEAD_QUEUE), 0);
    if (!bus_ok(r, "cannot read " BUS_DEAD_QUEUE, reason, cap))
        return -1;
    if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD)
        return 0;
    const amqp_basic_get_ok_t *ok = r.reply.decoded;
    *tag = ok->delivery_tag;
    r = amqp_read_message(k, 1, msg, 0);
    return bus_ok(r, "cannot read a message", reason, cap) ? 1 : -1;
}

static void print_text(const amqp_message_t *m)
{
    const amqp_basic_properties_t *p = &m->properties;
    amqp_bytes_t why = header_text(p, "x-em-reason"), rk = header_text(p, "x-em-routing-key");
    int id_len = (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) ? (int)p->message_id.len : 1;
    const char *id = (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) ? p->message_id.bytes : "-";
    size_t show = m->body.len < 120 ? m->body.len : 120;
    printf("%.*s  %.*s  %.*s\n    body (%zu bytes): ", id_len, id, (int)rk.len,
           rk.len ? (const char *)rk.bytes : "-", (int)why.len,
           why.len ? (const char *)why.bytes : "(no reason)", m->body.len);
    /* Bodies are whatever came: show printable ASCII, escape the rest. */
    for (size_t i = 0; i < show; i++) {
        unsigned char ch = ((const unsigned char *)m->body.bytes)[i];
        if (ch >= 0x20 && ch < 0x7f)
            putchar(ch);
        else
            printf("\\x%02x", ch);
    }
    printf("%s\n", show < m->body.len ? "…" : "");
}

static void print_json(const amqp_message_t *m)
{
    const amqp_basic_properties_t *p = &m->properties;
    cJSON *o = cJSON_CreateObject();
    amqp_bytes_t why = header_text(p, "x-em-reason"), rk = header_text(p, "x-em-routing-key");
    char *s;
#define ADD_BYTES(name, b)                                                                         \
    do {                                                                                           \
        s = strndup((b).len ? (const char *)(b).bytes : "", (b).len);                              \
        cJSON_AddStringToObject(o, name, s ? s : "");                                              \
        free(s);                                                                                   \
    } while (0)
    if (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)
        ADD_BYTES("message_id", p->message_id);
    else
        cJSON_AddNullToObject(o, "message_id");
    ADD_BYTES("routing_key", rk);
    ADD_BYTES("reason", why);
#undef ADD_BYTES
    /* The body as text (bytes that are not UTF-8 as \xHH, so the line stays valid JSON)
     * and in hex, for an exact copy. */
    char *text = malloc(m->body.len * 4 + 1);
    if (text) {
        em_utf8_escape(m->body.bytes, m->body.len, text, false);
        cJSON_AddStringToObject(o, "body", text);
        free(text);
    }
    char *hex = malloc(m->body.len * 2 + 1);
    if (hex) {
        for (size_t i = 0; i < m->body.len; i++)
            snprintf(hex + 2 * i, 3, "%02x", ((const unsigned char *)m->body.bytes)[i]);
        hex[m->body.len * 2] = '\0';
        cJSON_AddStringToObject(o, "body_hex", hex);
        free(hex);
    }
    char *line = cJSON_PrintUnformatted(o);
    if (line)
        puts(line);
    cJSON_free(line);
    cJSON_Delete(o);
}

static int list(amqp_connection_state_t k, bool json)
{
    char reason[512];
    size_t n = 0;
    for (;;) {
        amqp_message_t m;
        uint64_t tag;
        int got = get_one(k, &m, &tag, reason, sizeof(reason));
        if (got < 0) {
            fprintf(stderr, "em-backend: dead: %s\n", reason);
            return BE_FAILED;
        }
        if (got == 0)
            break;
        if (json)
            print_json(&m);
        else
            print_text(&m);
        amqp_destroy_message(&m);
        n++;
    }
    fprintf(stderr, "em-backend: dead: %zu dead letter%s in %s\n", n, n == 1 ? "" : "s",
            BUS_DEAD_QUEUE);
    return BE_OK;
}

static int replay(amqp_connection_state_t k, long limit)
{
    char reason[512];
    amqp_tx_select(k, 1);
    if (!bus_ok(amqp_get_rpc_reply(k), "cannot start AMQP transactions", reason, sizeof(reason))) {
        fprintf(stderr, "em-backend: dead: %s\n", reason);
        return BE_FAILED;
    }
    long n = 0;
    while (limit < 0 || n < limit) {
        amqp_message_t m;
        uint64_t tag;
        int got = get_one(k, &m, &tag, reason, sizeof(reason));
        if (got < 0) {
            fprintf(stderr, "em-backend: dead: %s (%ld replayed)\n", reason, n);
            return BE_FAILED;
        }
        if (got == 0)
            break;
        amqp_basic_properties_t props = m.properties;
        amqp_bytes_t rk = header_text(&m.properties, "x-em-routing-key");
        amqp_table_entry_t h[64];
        int nh = 0;
        for (int i = 0;
             (props._flags & AMQP_BASIC_HEADERS_FLAG) && i < props.headers.num_entries && nh < 64;
             i++) {
            const amqp_table_entry_t *e = &props.headers.entries[i];
            if (!(e->key.len >= 5 && memcmp(e->key.bytes, "x-em-", 5) == 0))
                h[nh++] = *e;
        }
        props.headers = (amqp_table_t){nh, h};
        if (nh == 0)
            props._flags &= ~AMQP_BASIC_HEADERS_FLAG;
        bool ok = amqp_basic_publish(k, 1, amqp_cstring_bytes(BUS_EXCHANGE), rk, 0, 0, &props,
                                     m.body) == AMQP_STATUS_OK &&
                  amqp_basic_ack(k, 1, tag, 0) == AMQP_STATUS_OK;
        amqp_destroy_message(&m);
        if (ok) {
            amqp_tx_commit(k, 1);
            ok = bus_ok(amqp_get_rpc_reply(k), "cannot commit", reason, sizeof(reason));
        } else {
            snprintf(reason, sizeof(reason), "the connection failed");
        }
        if (!ok) {
            fprintf(stderr, "em-backend: dead: %s (%ld replayed)\n", reason, n);
            return BE_FAILED;
        }
        n++;
    }
    fprintf(stderr, "em-backend: dead: %ld dead letter%s sent back to %s\n", n, n == 1 ? "" : "s",
            BUS_EXCHANGE);
    return BE_OK;
}

enum { D_AMQP, D_CA, D_CERT, D_KEY, D_LIMIT, D_JSON, D_COUNT };
static const struct emopt_spec dead_opts[D_COUNT] = {
    [D_AMQP] = {"amqp", 0, EMOPT_VALUE, true, false, NULL},
    [D_CA] = {"amqp-ca", 0, EMOPT_VALUE, false, false, NULL},
    [D_CERT] = {"amqp-cert", 0, EMOPT_VALUE, false, false, NULL},
    [D_KEY] = {"amqp-key", 0, EMOPT_VALUE, false, false, NULL},
    [D_LIMIT] = {"limit", 0, EMOPT_VALUE, false, false, NULL},
    [D_JSON] = {"json", 0, EMOPT_FLAG, false, false, NULL},
};

static int dead_main(const struct emopt *o)
{
    const char *amqp = emopt_get(o, D_AMQP), *action = NULL;
    bool json = emopt_yes(o, D_JSON);
    size_t nargs;
    char *const *args = emopt_args(o, &nargs);
    for (size_t i = 0; i < nargs; i++) {
        if (!action && (strcmp(args[i], "list") == 0 || strcmp(args[i], "replay") == 0))
            action = args[i];
        else
            return emopt_usage_error(o, "%s: unknown argument (see 'em-backend help dead')",
                                     args[i]);
    }
    long limit = -1;
    if (!emopt_long(o, D_LIMIT, 0, 1000000000L, &limit))
        return BE_USAGE;
    if (!action) {
        fprintf(stderr, "em-backend: dead: say `list` or `replay` (see --help)\n");
        return BE_USAGE;
    }
    if (!amqp) {
        fprintf(stderr, "em-backend: dead: which broker? give --amqp amqp://… (or set "
                        "EM_BACKEND_AMQP)\n");
        return BE_USAGE;
    }
    struct bus_target target;
    char reason[512];
    if (bus_target_parse(&target, amqp, emopt_get(o, D_CA), emopt_get(o, D_CERT),
                         emopt_get(o, D_KEY), reason, sizeof(reason)) < 0) {
        fprintf(stderr, "em-backend: dead: --amqp: %s\n", reason);
        return BE_USAGE;
    }
    amqp_connection_state_t k = bus_connect(&target, 30, 10.0, reason, sizeof(reason));
    int status = BE_FAILED;
    if (!k) {
        fprintf(stderr, "em-backend: dead: %s\n", reason);
    } else {
        /* The queue may not exist yet: declaring it (as consume does) is harmless. */
        amqp_queue_declare(k, 1, amqp_cstring_bytes(BUS_DEAD_QUEUE), 0, 1, 0, 0, amqp_empty_table);
        if (!bus_ok(amqp_get_rpc_reply(k), "cannot declare " BUS_DEAD_QUEUE, reason,
                    sizeof(reason)))
            fprintf(stderr, "em-backend: dead: %s\n", reason);
        else
            status = strcmp(action, "list") == 0 ? list(k, json) : replay(k, limit);
        bus_close(k, true);
    }
    bus_target_free(&target);
    return status;
}

int cmd_dead(int argc, char **argv)
{
    static const struct emopt_command c = {"em-backend", "dead",  dead_usage, "EM_BACKEND_",
                                           dead_opts,    D_COUNT, dead_main};
    return emopt_run(&c, argc, argv);
}
