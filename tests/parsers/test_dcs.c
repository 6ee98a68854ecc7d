/* Tests of the DataContractSerializer reader: paths, nil, z:Ref, keys, limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dcs.h"
#include "em_error.h"
#include "epu.h"

struct seen {
    struct dcs_path path;
    char texts[8][64];
    int n;
    int nulls;
};

static int on_end(void *ud, struct dcs_reader *r, const char *text, size_t len)
{
    struct seen *s = ud;
    if (!dcs_top(r)->has_children && dcs_match(r, 0, &s->path) && s->n < 8) {
        if (text)
            snprintf(s->texts[s->n++], 64, "%.*s", (int)len, text);
        else
            s->nulls++;
    }
    return 0;
}

static const struct dcs_handler handler = {NULL, on_end};

static int run(const char *doc, const char *pattern, struct seen *s)
{
    memset(s, 0, sizeof(*s));
    assert_int_equal(dcs_path_compile(&s->path, pattern), 0);
    struct dcs_reader *r = dcs_reader_new(&handler, s, NULL);
    int rc = dcs_reader_feed(r, doc, strlen(doc));
    if (rc == 0)
        rc = dcs_reader_finish(r);
    dcs_reader_free(r);
    return rc;
}

#define Z                                                                                          \
    "xmlns:z=\"http://schemas.microsoft.com/2003/10/Serialization/\" "                             \
    "xmlns:i=\"http://www.w3.org/2001/XMLSchema-instance\""

static void test_dcs__ref_resolves_to_earlier_leaf(void **state)
{
    (void)state;
    struct seen s;
    const char *doc = "<R " Z "><A z:Id=\"5\">  hello\r\n </A><B><C z:Ref=\"5\" i:nil=\"true\"/>"
                      "<C z:Ref=\"99\" i:nil=\"true\"/><C i:nil=\"true\"/><C></C></B></R>";
    assert_int_equal(run(doc, "B/C", &s), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.texts[0], "hello"); /* trimmed, CRLF removed */
    assert_string_equal(s.texts[1], "");      /* an empty element is empty, not null */
    assert_int_equal(s.nulls, 2);             /* unknown ref and nil */
}

static void test_dcs__patterns(void **state)
{
    (void)state;
    struct seen s;
    const char *doc =
        "<R><KeyValuePairOfintNodeXml30oatNZW><key>1</key></KeyValuePairOfintNodeXml30oatNZW>"
        "<KeyValuePairOfintOther><key>2</key></KeyValuePairOfintOther>"
        "<E><Key>Dose</Key><Value>3</Value></E><E><Key>DoseRate</Key><Value>4</Value></E>"
        "</R>";
    assert_int_equal(run(doc, "KeyValuePairOfintNodeXml*/key", &s), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.texts[0], "1");
    assert_int_equal(run(doc, "E=DoseRate/Value", &s), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.texts[0], "4");
    assert_int_equal(run(doc, "key", &s), 0);
    assert_int_equal(s.n, 0); /* paths are anchored below the root */
    struct dcs_path p;
    assert_int_equal(dcs_path_compile(&p, ""), -EM_EINVAL);
    assert_int_equal(dcs_path_compile(&p, "a//b"), -EM_EINVAL);
    assert_int_equal(dcs_path_compile(&p, "a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q"), -EM_EINVAL);
}

static void test_dcs__limits(void **state)
{
    (void)state;
    struct dcs_limits lim = DCS_LIMITS_DEFAULT;
    lim.max_depth = 3;
    struct seen s = {0};
    dcs_path_compile(&s.path, "a");
    struct dcs_reader *r = dcs_reader_new(&handler, &s, &lim);
    const char *ok = "<R><a><b/></a></R>", *deep = "<R><a><b><c/></b></a></R>";
    assert_int_equal(dcs_reader_feed(r, ok, strlen(ok)), 0);
    assert_int_equal(dcs_reader_finish(r), 0);
    dcs_reader_reset(r, &s);
    assert_int_equal(dcs_reader_feed(r, deep, strlen(deep)), -EM_ELIMIT);
    assert_non_null(strstr(dcs_reader_diag(r)->reason, "deeper"));
    /* Sticky until reset. */
    assert_int_equal(dcs_reader_finish(r), -EM_ELIMIT);
    dcs_reader_free(r);

    lim = (struct dcs_limits)DCS_LIMITS_DEFAULT;
    lim.max_refs_bytes = 8;
    r = dcs_reader_new(&handler, &s, &lim);
    const char *refs = "<R " Z "><a z:Id=\"1\">12345</a><a z:Id=\"2\">67890</a></R>";
    assert_int_equal(dcs_reader_feed(r, refs, strlen(refs)), -EM_ELIMIT);
    dcs_reader_free(r);
}

static int count_leaves(void *ud, struct dcs_reader *r, const char *text, size_t len)
{
    (void)len;
    if (text && !dcs_top(r)->has_children)
        (*(size_t *)ud)++;
    return 0;
}

/* One line of 12 MB (a native square .dm with about 3,000 holes) parses whole, fed at once
 * and in pieces: libxml2's own 10 MB lookahead limit ("Huge input lookup") is lifted. */
static void test_dcs__single_line_over_10mb(void **state)
{
    (void)state;
    static const struct dcs_handler counting = {NULL, count_leaves};
    const char *leaf = "<TargetLocation><X>0.000123456789</X><Y>1</Y></TargetLocation>";
    size_t n = (12u << 20) / strlen(leaf) + 1, len = 0;
    char *doc = malloc(n * strlen(leaf) + 16);
    assert_non_null(doc);
    len += (size_t)snprintf(doc, 8, "<R>");
    for (size_t i = 0; i < n; i++, len += strlen(leaf))
        memcpy(doc + len, leaf, strlen(leaf));
    memcpy(doc + len, "</R>", 4);
    len += 4;
    assert_true(len > (12u << 20));
    for (size_t piece = len; piece >= 65536; piece = piece == len ? 65536 : 0) {
        size_t leaves = 0;
        struct dcs_reader *r = dcs_reader_new(&counting, &leaves, NULL);
        int rc = 0;
        for (size_t off = 0; off < len && rc == 0; off += piece)
            rc = dcs_reader_feed(r, doc + off, len - off < piece ? len - off : piece);
        if (rc == 0)
            rc = dcs_reader_finish(r);
        assert_int_equal(rc, 0);
        assert_int_equal(leaves, 2 * n);
        dcs_reader_free(r);
    }
    free(doc);
}

/* libxml2 compares each attribute with every earlier one: an element with 160,000 of them
 * took seconds. More than max_attrs on one element is refused before libxml2 sees it,
 * however the bytes are split; '=' in values, text and comments is not counted. */
static void test_dcs__attribute_flood_refused(void **state)
{
    (void)state;
    struct seen s;
    char doc[4096];
    size_t len =
        (size_t)snprintf(doc, sizeof(doc), "<R><!-- a=1 b=2 --><a x=\"p=q\" y='=='>k=v</a>");
    assert_true(len < sizeof(doc));
    assert_int_equal(run(doc, "a", &s), -EM_ETRUNCATED); /* unclosed R, nothing counted */
    for (int total = 64; total <= 65; total++) {
        len = (size_t)snprintf(doc, sizeof(doc), "<R><a");
        for (int i = 0; i < total; i++)
            len += (size_t)snprintf(doc + len, sizeof(doc) - len, " a%d=\"=\"", i);
        len += (size_t)snprintf(doc + len, sizeof(doc) - len, ">1</a></R>");
        int want = total <= 64 ? 0 : -EM_ELIMIT;
        assert_int_equal(run(doc, "a", &s), want);
        struct dcs_reader *r = dcs_reader_new(&handler, &s, NULL);
        int rc = 0;
        for (size_t i = 0; i < len && rc == 0; i++) /* one byte at a time */
            rc = dcs_reader_feed(r, doc + i, 1);
        if (rc == 0)
            rc = dcs_reader_finish(r);
        assert_int_equal(rc, want);
        if (want)
            assert_non_null(strstr(dcs_reader_diag(r)->reason, "more than 64 attributes"));
        dcs_reader_free(r);
    }
}

/* Each z:Ref hands its target's text out again; the total is bounded, so 16,000 refs to a
 * long value fail fast instead of costing 16,000 copies. */
static void test_dcs__ref_expansion_bounded(void **state)
{
    (void)state;
    struct dcs_limits lim = DCS_LIMITS_DEFAULT;
    lim.max_ref_text = 100;
    struct seen s = {0};
    dcs_path_compile(&s.path, "b");
    for (int refs = 10; refs <= 11; refs++) {
        char doc[2048];
        size_t len = (size_t)snprintf(doc, sizeof(doc), "<R " Z "><a z:Id=\"1\">0123456789</a>");
        for (int i = 0; i < refs; i++)
            len +=
                (size_t)snprintf(doc + len, sizeof(doc) - len, "<b z:Ref=\"1\" i:nil=\"true\"/>");
        len += (size_t)snprintf(doc + len, sizeof(doc) - len, "</R>");
        s.n = 0;
        struct dcs_reader *r = dcs_reader_new(&handler, &s, &lim);
        int rc = dcs_reader_feed(r, doc, len);
        if (rc == 0)
            rc = dcs_reader_finish(r);
        assert_int_equal(rc, refs == 10 ? 0 : -EM_ELIMIT);
        if (refs == 10)
            assert_string_equal(s.texts[7], "0123456789");
        dcs_reader_free(r);
    }
}

/* A repeated z:Id keeps its first value (and costs no probe chain). */
static void test_dcs__repeated_id_keeps_first(void **state)
{
    (void)state;
    struct seen s;
    const char *doc = "<R " Z "><a z:Id=\"1\">first</a><a z:Id=\"1\">second</a>"
                      "<b z:Ref=\"1\" i:nil=\"true\"/></R>";
    assert_int_equal(run(doc, "b", &s), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.texts[0], "first");
}

static void test_dcs__truncation_is_told_apart(void **state)
{
    (void)state;
    struct seen s;
    assert_int_equal(run("<R><a>1</a>", "a", &s), -EM_ETRUNCATED);
    assert_int_equal(run("<R><a>1</a", "a", &s), -EM_ETRUNCATED);
    assert_int_equal(run("", "a", &s), -EM_ETRUNCATED);
    assert_int_equal(run("<R><a>1</b></R>", "a", &s), -EM_EMALFORMED);
    assert_int_equal(run("<R/><R/>", "a", &s), -EM_EMALFORMED);
}

static void test_dcs__wellformed_check(void **state)
{
    (void)state;
    struct epu_diag d;
    assert_int_equal(epu_check_wellformed("<a><b/></a>", 11, &d), 0);
    assert_int_equal(epu_check_wellformed("<a><b></a>", 10, &d), -EM_EMALFORMED);
    assert_true(d.line == 1);
}

int main(void)
{
    epu_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dcs__ref_resolves_to_earlier_leaf),
        cmocka_unit_test(test_dcs__patterns),
        cmocka_unit_test(test_dcs__limits),
        cmocka_unit_test(test_dcs__single_line_over_10mb),
        cmocka_unit_test(test_dcs__attribute_flood_refused),
        cmocka_unit_test(test_dcs__ref_expansion_bounded),
        cmocka_unit_test(test_dcs__repeated_id_keeps_first),
        cmocka_unit_test(test_dcs__truncation_is_told_apart),
        cmocka_unit_test(test_dcs__wellformed_check),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    epu_cleanup();
    return failed;
}
