/* Tests of what em-backend serve stands on: the token comparison, the heartbeat's
 * decoding, the change log (one row per event that changed an entity, none for a
 * redelivery or a stale event, in commit order) and the wait for another connection's
 * commit on SQLite. (PostgreSQL's LISTEN/NOTIFY runs in tests/e2e/serve.sh.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "em_error.h"
#include "ev.h"
#include "serve.h"
#include "store.h"
#include "testutil.h"

static void test_serve__token_compare_takes_only_the_token(void **state)
{
    (void)state;
    struct serve sv;
    memset(&sv, 0, sizeof(sv));
    assert_true(serve_token_ok(&sv, NULL)); /* no token set: open */
    snprintf(sv.token, sizeof(sv.token), "abcdefghijklmnop0123");
    sv.token_len = strlen(sv.token);
    assert_true(serve_token_ok(&sv, "abcdefghijklmnop0123"));
    assert_false(serve_token_ok(&sv, NULL));
    assert_false(serve_token_ok(&sv, ""));
    assert_false(serve_token_ok(&sv, "abcdefghijklmnop012"));   /* a prefix */
    assert_false(serve_token_ok(&sv, "abcdefghijklmnop01234")); /* one more */
    assert_false(serve_token_ok(&sv, "Abcdefghijklmnop0123"));  /* first byte */
    assert_false(serve_token_ok(&sv, "abcdefghijklmnop0124"));  /* last byte */
    char nul[] = "abcdefghijklmnop0123";
    nul[5] = '\0'; /* a NUL inside: shorter */
    assert_false(serve_token_ok(&sv, nul));
}

static int decode(const char *text, struct ev *e, char *reason, size_t cap)
{
    return ev_decode(text, strlen(text), e, reason, cap);
}

static void test_serve__heartbeat_names_its_sender(void **state)
{
    (void)state;
    struct ev e;
    char reason[256];
    const char *hb = "{\"v\":1,\"seq\":3,\"agent\":\"krios1\",\"type\":\"agent\",\"op\":\"upsert\","
                     "\"key\":{\"agent\":\"krios1\"},\"data\":{\"state\":\"watching\"},"
                     "\"source\":null,\"emitted_at\":\"2026-12-02T10:00:00Z\"}";
    assert_int_equal(decode(hb, &e, reason, sizeof(reason)), 0);
    assert_int_equal(e.type, WIRE_AGENT);
    char *k = ev_key_json(&e);
    assert_string_equal(k, "{\"agent\":\"krios1\"}");
    free(k);
    ev_free(&e);
    const char *other =
        "{\"v\":1,\"seq\":3,\"agent\":\"krios1\",\"type\":\"agent\",\"op\":\"upsert\","
        "\"key\":{\"agent\":\"krios2\"},\"data\":{}}";
    assert_int_equal(decode(other, &e, reason, sizeof(reason)), -EM_EVALUE);
    assert_non_null(strstr(reason, "key.agent must be the event's agent"));
    ev_free(&e);
}

static int count_cb(void *ctx, int ncols, const char *const *names, const char *const *vals)
{
    (void)names;
    char *out = ctx;
    size_t n = strlen(out);
    snprintf(out + n, 1024 - n, "%s%s|%s|%s", n ? ";" : "", ncols > 0 && vals[0] ? vals[0] : "-",
             ncols > 1 && vals[1] ? vals[1] : "-", ncols > 2 && vals[2] ? vals[2] : "-");
    return 0;
}

static void micrograph(struct ev *e, uint64_t seq, const char *uuid, double defocus, char *reason)
{
    char text[512];
    snprintf(text, sizeof(text),
             "{\"v\":1,\"seq\":%llu,\"agent\":\"a\",\"type\":\"micrograph\",\"op\":\"upsert\","
             "\"key\":{\"session_id\":1,\"micrograph_uuid\":\"%s\"},\"data\":{\"defocus_m\":%g}}",
             (unsigned long long)seq, uuid, defocus);
    assert_int_equal(decode(text, e, reason, 256), 0);
}

static void test_serve__change_log_has_each_change_once_in_order(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("serve");
    char url[256];
    snprintf(url, sizeof(url), "sqlite:%s/s.db", dir);
    struct store *s, *r;
    char reason[256];
    assert_int_equal(store_open(url, false, &s, reason, sizeof(reason)), 0);
    assert_int_equal(store_open_readonly(url, &r, reason, sizeof(reason)), 0);
    /* nothing committed: the wait times out */
    assert_int_equal(store_wait_change(r, 100, reason, sizeof(reason)), 0);
    struct ev e;
    size_t changed;
    micrograph(&e, 5, "u1", 1.0, reason);
    assert_int_equal(store_apply(s, &e, 1, &changed, reason, sizeof(reason)), 0);
    ev_free(&e);
    /* another connection's commit ends the wait */
    assert_int_equal(store_wait_change(r, 2000, reason, sizeof(reason)), 1);
    micrograph(&e, 5, "u1", 1.0, reason); /* redelivered */
    assert_int_equal(store_apply(s, &e, 1, &changed, reason, sizeof(reason)), 0);
    ev_free(&e);
    micrograph(&e, 4, "u1", 9.0, reason); /* stale */
    assert_int_equal(store_apply(s, &e, 1, &changed, reason, sizeof(reason)), 0);
    ev_free(&e);
    micrograph(&e, 7, "u2", 2.0, reason);
    assert_int_equal(store_apply(s, &e, 1, &changed, reason, sizeof(reason)), 0);
    ev_free(&e);
    char out[1024] = "";
    assert_int_equal(store_query(r, "SELECT id, seq, key FROM change_log ORDER BY id", 0, NULL,
                                 count_cb, out, reason, sizeof(reason)),
                     0);
    assert_string_equal(out, "1|5|{\"session_id\":1,\"micrograph_uuid\":\"u1\"};"
                             "2|7|{\"session_id\":1,\"micrograph_uuid\":\"u2\"}");
    store_close(r);
    store_close(s);
    tu_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_serve__token_compare_takes_only_the_token),
        cmocka_unit_test(test_serve__heartbeat_names_its_sender),
        cmocka_unit_test(test_serve__change_log_has_each_change_once_in_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
