/* Tests of what em-backend serve stands on: the token comparison, the heartbeat's
 * decoding, the change log (one row per event that changed an entity, none for a
 * redelivery or a stale event, in commit order), the wait for another connection's
 * commit on SQLite, and which image files --image-root lets out. (PostgreSQL's
 * LISTEN/NOTIFY, and the images through HTTP and the page, run in tests/e2e/serve.sh.) */
/* symlink(2) */
#define _XOPEN_SOURCE 700
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

static void write_file(const char *dir, const char *name, const void *data, size_t n)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* The status serve_image_open() gives `rel`, closing what it opened; the size in *size. */
static int open_status(char **roots, size_t n, const char *rel, uint64_t *size, char *why,
                       size_t cap)
{
    int fd = -1;
    *size = 0;
    int st = serve_image_open(roots, n, rel, &fd, size, why, cap);
    if (st == 0) {
        assert_true(fd >= 0);
        close(fd);
    } else {
        assert_int_equal(fd, -1);
    }
    return st;
}

static void test_serve__image_roots_let_out_only_jpegs_inside_them(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("serve-img");
    char a[512], b[512], out[512], sub[512], link_out[1024], link_in[1024];
    snprintf(a, sizeof(a), "%s/a", dir);
    snprintf(b, sizeof(b), "%s/b", dir);
    snprintf(out, sizeof(out), "%s/outside", dir);
    snprintf(sub, sizeof(sub), "%s/a/Images-Disc1", dir);
    assert_int_equal(mkdir(a, 0755), 0);
    assert_int_equal(mkdir(b, 0755), 0);
    assert_int_equal(mkdir(out, 0755), 0);
    assert_int_equal(mkdir(sub, 0755), 0);
    static const unsigned char jpeg[] = {0xff, 0xd8, 0xff, 0xe0, 0,    16,
                                         'J',  'F',  'I',  'F',  0xff, 0xd9};
    write_file(sub, "GridSquare_1.jpg", jpeg, sizeof(jpeg));
    write_file(b, "only_in_b.jpg", jpeg, sizeof(jpeg) - 1);
    write_file(sub, "text.jpg", "hello", 5);
    write_file(out, "secret.jpg", jpeg, sizeof(jpeg));
    snprintf(link_out, sizeof(link_out), "%s/out.jpg", sub);
    assert_int_equal(symlink("../../outside/secret.jpg", link_out), 0);
    snprintf(link_in, sizeof(link_in), "%s/in.jpg", sub);
    assert_int_equal(symlink("GridSquare_1.jpg", link_in), 0);

    char list[2200], why[512];
    snprintf(list, sizeof(list), "%s::%s", a, b); /* an empty element is passed over */
    char **roots;
    size_t n;
    assert_int_equal(serve_image_roots(list, &roots, &n, why, sizeof(why)), 0);
    assert_int_equal(n, 2);
    uint64_t size;
    /* found in the first root, then in the second */
    assert_int_equal(
        open_status(roots, n, "Images-Disc1/GridSquare_1.jpg", &size, why, sizeof(why)), 0);
    assert_int_equal(size, sizeof(jpeg));
    assert_int_equal(open_status(roots, n, "only_in_b.jpg", &size, why, sizeof(why)), 0);
    assert_int_equal(size, sizeof(jpeg) - 1);
    /* a link that stays inside is followed; one that leads out is not */
    assert_int_equal(open_status(roots, n, "Images-Disc1/in.jpg", &size, why, sizeof(why)), 0);
    assert_int_equal(open_status(roots, n, "Images-Disc1/out.jpg", &size, why, sizeof(why)), 404);
    assert_non_null(strstr(why, "leads out"));
    /* not a JPEG; not there; a directory */
    assert_int_equal(open_status(roots, n, "Images-Disc1/text.jpg", &size, why, sizeof(why)), 404);
    assert_non_null(strstr(why, "not a JPEG"));
    assert_int_equal(open_status(roots, n, "Images-Disc1/none.jpg", &size, why, sizeof(why)), 404);
    assert_non_null(strstr(why, "no such file under the image roots"));
    assert_int_equal(open_status(roots, n, "Images-Disc1", &size, why, sizeof(why)), 404);
    /* paths that could climb out are refused before any file is looked at */
    static const char *const hostile[] = {"../outside/secret.jpg",
                                          "Images-Disc1/../../outside/secret.jpg",
                                          "/etc/passwd",
                                          "Images-Disc1\\..\\x.jpg",
                                          "",
                                          "Images-Disc1//GridSquare_1.jpg",
                                          "..",
                                          "Images-Disc1/\nx.jpg"};
    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        assert_int_equal(open_status(roots, n, hostile[i], &size, why, sizeof(why)), 400);
        assert_non_null(strstr(why, "not a path below"));
    }
    /* no roots: said so, naming the option */
    assert_int_equal(open_status(NULL, 0, "x.jpg", &size, why, sizeof(why)), 404);
    assert_non_null(strstr(why, "--image-root"));
    serve_image_roots_free(roots, n);
    /* a root that is missing, or a file, is refused at start */
    snprintf(list, sizeof(list), "%s:%s/missing", a, dir);
    assert_int_equal(serve_image_roots(list, &roots, &n, why, sizeof(why)), -EM_EUSAGE);
    assert_non_null(strstr(why, "missing"));
    snprintf(list, sizeof(list), "%s/Images-Disc1/text.jpg", a);
    assert_int_equal(serve_image_roots(list, &roots, &n, why, sizeof(why)), -EM_EUSAGE);
    assert_non_null(strstr(why, "not a directory"));
    assert_int_equal(serve_image_roots(":", &roots, &n, why, sizeof(why)), -EM_EUSAGE);
    tu_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_serve__token_compare_takes_only_the_token),
        cmocka_unit_test(test_serve__heartbeat_names_its_sender),
        cmocka_unit_test(test_serve__change_log_has_each_change_once_in_order),
        cmocka_unit_test(test_serve__image_roots_let_out_only_jpegs_inside_them),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
