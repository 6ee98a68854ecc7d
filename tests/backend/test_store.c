/* Tests of the backend's event decoding and the SQLite store: what is poison and why,
 * the upsert's idempotence and its stale-event guard, deletes, batches, and a store
 * written by a newer em-backend. (PostgreSQL runs the same SQL in tests/e2e/bus.sh.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "em_error.h"
#include "ev.h"
#include "store.h"
#include "testutil.h"

static const char good[] =
    "{\"v\":1,\"seq\":7,\"agent\":\"krios1\",\"type\":\"micrograph\",\"op\":\"upsert\","
    "\"key\":{\"session_id\":9015527,\"micrograph_uuid\":\"b6b9aeef\"},"
    "\"data\":{\"micrograph_uuid\":\"b6b9aeef\",\"foilhole_id\":9015889,\"gridsquare_id\":"
    "8999138,\"acquired_at\":\"2025-01-08T15:47:12.0000000Z\",\"defocus_m\":-2.5e-06},"
    "\"source\":{\"path\":\"a/b.xml\",\"size\":10,\"mtime\":\"2025-01-08T15:47:13Z\"},"
    "\"emitted_at\":\"2025-01-08T15:47:14Z\"}";

static void test_store__decodes_an_event_and_its_columns(void **state)
{
    (void)state;
    struct ev e;
    char reason[256], num[32];
    assert_int_equal(ev_decode(good, strlen(good), &e, reason, sizeof(reason)), 0);
    assert_int_equal(e.type, WIRE_MICROGRAPH);
    assert_int_equal(e.seq, 7);
    assert_string_equal(e.agent, "krios1");
    assert_string_equal(ev_value(&e, "session_id", num, sizeof(num)), "9015527");
    assert_string_equal(ev_value(&e, "micrograph_uuid", num, sizeof(num)), "b6b9aeef");
    assert_string_equal(ev_value(&e, "foilhole_id", num, sizeof(num)), "9015889");
    assert_string_equal(ev_value(&e, "gridsquare_id", num, sizeof(num)), "8999138");
    assert_string_equal(ev_value(&e, "acquired_at", num, sizeof(num)),
                        "2025-01-08T15:47:12.0000000Z");
    assert_string_equal(ev_value(&e, "seq", num, sizeof(num)), "7");
    assert_string_equal(ev_value(&e, "deleted", num, sizeof(num)), "0");
    assert_string_equal(ev_value(&e, "source_path", num, sizeof(num)), "a/b.xml");
    assert_null(ev_value(&e, "atlas_id", num, sizeof(num)));
    assert_non_null(strstr(ev_value(&e, "data", num, sizeof(num)), "\"defocus_m\":-2.5e-06"));
    ev_free(&e);
}

/* Each poison message with the reason it must give. */
static void test_store__refuses_poison_with_a_reason(void **state)
{
    (void)state;
    static const struct {
        const char *body, *reason;
    } cases[] = {
        {"not json", "not a JSON object"},
        {"[1,2]", "not a JSON object"},
        {"{\"v\":2,\"seq\":1}", "unsupported event version"},
        {"{\"v\":1,\"seq\":0,\"agent\":\"a\"}", "\"seq\" must be a positive integer"},
        {"{\"v\":1,\"seq\":1.5,\"agent\":\"a\"}", "\"seq\" must be a positive integer"},
        {"{\"v\":1,\"seq\":1,\"agent\":\"\"}", "\"agent\" must be a name"},
        {"{\"v\":1,\"seq\":1,\"agent\":\"a\\nb\"}", "\"agent\" must be a name"},
        {"{\"v\":1,\"seq\":1,\"agent\":\"a\",\"type\":\"bogus\"}", "unknown type"},
        {"{\"v\":1,\"seq\":1,\"agent\":\"a\",\"type\":\"session\",\"op\":\"merge\"}",
         "\"op\" must be"},
        {"{\"v\":1,\"seq\":1,\"agent\":\"a\",\"type\":\"session\",\"op\":\"upsert\"}",
         "no \"key\""},
        {"{\"v\":1,\"seq\":1,\"agent\":\"a\",\"type\":\"session\",\"op\":\"upsert\","
         "\"key\":{\"session_id\":-1}}",
         "key.session_id"},
        {"{\"v\":1,\"seq\":1,\"agent\":\"a\",\"type\":\"foilhole\",\"op\":\"upsert\","
         "\"key\":{\"session_id\":1}}",
         "foilhole_id"},
        {"{\"v\":1,\"seq\":1,\"agent\":\"a\",\"type\":\"session\",\"op\":\"upsert\","
         "\"key\":{\"session_id\":1}}",
         "needs a \"data\" object"},
        {"{\"v\":1,\"seq\":1,\"agent\":\"a\xff\"}", "not valid UTF-8"},
        {"{\"v\":1,\"seq\":1,\"agent\":\"a\xed\xa0\x80\"}", "not valid UTF-8"}, /* surrogate */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ev e;
        char reason[256];
        int rc = ev_decode(cases[i].body, strlen(cases[i].body), &e, reason, sizeof(reason));
        ev_free(&e);
        if (rc == 0 || !strstr(reason, cases[i].reason))
            fail_msg("case %zu: rc %d, reason '%s', want '%s'", i, rc, reason, cases[i].reason);
    }
    /* Too large. */
    size_t big = WIRE_MAX_BYTES + 1;
    char *b = malloc(big);
    assert_non_null(b);
    memset(b, ' ', big);
    struct ev e;
    char reason[256];
    assert_int_equal(ev_decode(b, big, &e, reason, sizeof(reason)), -EM_ELIMIT);
    ev_free(&e);
    free(b);
}

static void test_store__upsert_sql_guards_against_stale_events(void **state)
{
    (void)state;
    struct dynbuf sql;
    dynbuf_init(&sql, 1u << 16);
    assert_int_equal(schema_upsert_sql(schema_table_of(WIRE_FOILHOLE), SQL_POSTGRES, &sql), 0);
    assert_non_null(strstr(sql.p, "ON CONFLICT (session_id, foilhole_id) DO UPDATE SET "
                                  "gridsquare_id = excluded.gridsquare_id"));
    assert_non_null(strstr(sql.p, "WHERE foilhole.agent <> excluded.agent OR foilhole.seq < "
                                  "excluded.seq"));
    assert_non_null(strstr(sql.p, "$10)"));
    assert_null(strstr(sql.p, "$11"));
    dynbuf_free(&sql);
}

/* A micrograph event with the given agent, seq and defocus. */
static void make(struct ev *e, const char *agent, unsigned seq, const char *uuid, double defocus,
                 bool del)
{
    char body[1024];
    snprintf(body, sizeof(body),
             "{\"v\":1,\"seq\":%u,\"agent\":\"%s\",\"type\":\"micrograph\",\"op\":\"%s\","
             "\"key\":{\"session_id\":1,\"micrograph_uuid\":\"%s\"},"
             "\"data\":{\"gridsquare_id\":2,\"foilhole_id\":3,\"acquired_at\":\"t%u\","
             "\"defocus_m\":%g}}",
             seq, agent, del ? "delete" : "upsert", uuid, seq, defocus);
    char reason[256];
    if (ev_decode(body, strlen(body), e, reason, sizeof(reason)) != 0)
        fail_msg("decode: %s", reason);
}

struct one {
    int rows;
    char data[512], seq[32];
};

static int grab(void *ctx, int ncols, const char *const *names, const char *const *vals)
{
    (void)names;
    struct one *o = ctx;
    o->rows++;
    assert_int_equal(ncols, 2);
    snprintf(o->data, sizeof(o->data), "%s", vals[0] ? vals[0] : "NULL");
    snprintf(o->seq, sizeof(o->seq), "%s", vals[1] ? vals[1] : "NULL");
    return 0;
}

static struct one row_of(struct store *s, const char *uuid)
{
    struct one o = {0};
    char reason[256];
    const char *p[] = {uuid};
    assert_int_equal(store_query(s,
                                 "SELECT data, seq FROM micrograph WHERE session_id = 1 AND "
                                 "micrograph_uuid = ? AND deleted = 0",
                                 1, p, grab, &o, reason, sizeof(reason)),
                     0);
    return o;
}

static size_t apply1(struct store *s, struct ev *e)
{
    size_t changed;
    char reason[256];
    if (store_apply(s, e, 1, &changed, reason, sizeof(reason)) != 0)
        fail_msg("apply: %s", reason);
    ev_free(e);
    return changed;
}

static void test_store__sqlite_upserts_are_idempotent_and_never_stale(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("store");
    char url[128];
    snprintf(url, sizeof(url), "sqlite:%s/s.db", dir);
    struct store *s;
    char reason[256];
    assert_int_equal(store_open(url, true, &s, reason, sizeof(reason)), 0);
    struct ev e;
    make(&e, "a", 5, "u1", 1.0, false);
    assert_int_equal(apply1(s, &e), 1);
    make(&e, "a", 5, "u1", 1.0, false); /* redelivered */
    assert_int_equal(apply1(s, &e), 0);
    make(&e, "a", 4, "u1", 9.0, false); /* stale: lower seq, other data */
    assert_int_equal(apply1(s, &e), 0);
    struct one o = row_of(s, "u1");
    assert_int_equal(o.rows, 1);
    assert_string_equal(o.seq, "5");
    assert_non_null(strstr(o.data, "\"defocus_m\":1"));
    make(&e, "a", 6, "u1", 2.0, false); /* newer */
    assert_int_equal(apply1(s, &e), 1);
    o = row_of(s, "u1");
    assert_string_equal(o.seq, "6");
    assert_non_null(strstr(o.data, "\"defocus_m\":2"));
    make(&e, "b", 1, "u1", 3.0, false); /* another agent's numbering: it wins */
    assert_int_equal(apply1(s, &e), 1);
    assert_non_null(strstr(row_of(s, "u1").data, "\"defocus_m\":3"));
    make(&e, "b", 2, "u1", 0, true); /* a delete hides the row ... */
    assert_int_equal(apply1(s, &e), 1);
    assert_int_equal(row_of(s, "u1").rows, 0);
    make(&e, "b", 1, "u1", 3.0, false); /* ... and an older upsert does not bring it back */
    assert_int_equal(apply1(s, &e), 0);
    assert_int_equal(row_of(s, "u1").rows, 0);

    /* A batch with the same key twice, out of order: the higher seq wins. */
    struct ev batch[3];
    make(&batch[0], "a", 20, "u2", 7.0, false);
    make(&batch[1], "a", 10, "u2", 8.0, false);
    make(&batch[2], "a", 11, "u3", 1.0, false);
    size_t changed;
    assert_int_equal(store_apply(s, batch, 3, &changed, reason, sizeof(reason)), 0);
    for (int i = 0; i < 3; i++)
        ev_free(&batch[i]);
    assert_int_equal(changed, 3); /* applied in seq order: 10 inserts, 20 updates */
    assert_string_equal(row_of(s, "u2").seq, "20");
    store_close(s);

    /* Reopening applies no migration again; a store from a newer em-backend is refused. */
    assert_int_equal(store_open(url, false, &s, reason, sizeof(reason)), 0);
    char sql[] = "INSERT INTO em_schema (version, what) VALUES (99, 'from the future')";
    assert_int_equal(s->ops->exec(s, sql, reason, sizeof(reason)), 0);
    store_close(s);
    assert_int_equal(store_open(url, false, &s, reason, sizeof(reason)), -EM_ESTATE);
    assert_non_null(strstr(reason, "newer than this em-backend knows"));
    tu_rmtree(dir);
}

static void test_store__bad_urls_are_usage_errors(void **state)
{
    (void)state;
    struct store *s;
    char reason[256];
    assert_int_equal(store_open("mysql://x", false, &s, reason, sizeof(reason)), -EM_EUSAGE);
    assert_non_null(strstr(reason, "sqlite:PATH or postgresql://"));
    assert_int_equal(store_open("sqlite:", false, &s, reason, sizeof(reason)), -EM_EUSAGE);
    assert_int_equal(store_open("sqlite:/nonexistent/dir/x.db", false, &s, reason, sizeof(reason)),
                     -EM_EIO);
    assert_int_equal(store_open("postgresql://u:secret@/db?host=/nonexistent", false, &s, reason,
                                sizeof(reason)),
                     -EM_EIO);
    assert_null(strstr(reason, "secret"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store__decodes_an_event_and_its_columns),
        cmocka_unit_test(test_store__refuses_poison_with_a_reason),
        cmocka_unit_test(test_store__upsert_sql_guards_against_stale_events),
        cmocka_unit_test(test_store__sqlite_upserts_are_idempotent_and_never_stale),
        cmocka_unit_test(test_store__bad_urls_are_usage_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
