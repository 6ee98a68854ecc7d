/* The recorder's diff, without a file system: each change of a file's bytes gives the
 * operation the format describes, and applying that operation to the old bytes gives the
 * new bytes exactly (checked on hand-made cases and on 2,000 random edits). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rec_diff.h"

struct version {
    unsigned char *bytes;
    size_t n;
    uint64_t *hash;
    size_t count;
};

static struct version make(const unsigned char *p, size_t n)
{
    struct version v = {malloc(n ? n : 1), n, NULL, 0};
    assert_non_null(v.bytes);
    if (n)
        memcpy(v.bytes, p, n);
    assert_true(rec_blocks_of(v.bytes, n, &v.hash, &v.count));
    return v;
}

static void drop(struct version *v)
{
    free(v->bytes);
    free(v->hash);
}

/* The change from a to b, checked by applying it to a's bytes. */
static struct rec_change diff_checked(const struct version *a, const struct version *b)
{
    struct rec_blocks old = {a->n, a->hash, a->count};
    struct rec_change c = rec_diff(&old, false, b->bytes, b->n, b->hash, b->count);
    size_t cap = a->n > b->n ? a->n : b->n;
    unsigned char *out = malloc(cap + 1);
    assert_non_null(out);
    size_t len = a->n;
    memcpy(out, a->bytes, a->n);
    switch (c.type) {
    case REC_REWRITE:
        if (c.same) {
            assert_null(c.data);
        } else {
            assert_int_equal(c.len, b->n);
            memcpy(out, c.data, c.len);
            len = c.len;
        }
        break;
    case REC_APPEND:
        assert_int_equal(c.offset, a->n);
        memcpy(out + c.offset, c.data, c.len);
        len = (size_t)c.offset + c.len;
        break;
    case REC_TRUNCATE:
        len = b->n;
        break;
    case REC_WRITE:
        assert_true(c.offset + c.len <= a->n);
        assert_int_equal(c.offset % REC_BLOCK, 0);
        memcpy(out + c.offset, c.data, c.len);
        break;
    default:
        fail_msg("unexpected operation %d", (int)c.type);
    }
    assert_int_equal(len, b->n);
    if (len)
        assert_memory_equal(out, b->bytes, len);
    free(out);
    return c;
}

static unsigned char *pattern(size_t n, unsigned seed)
{
    unsigned char *p = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)((i * 131u + seed * 7u + (i >> 12)) & 0xff);
    return p;
}

static void test_rec_diff__new_file_is_a_create_and_after_a_placeholder_a_rewrite(void **state)
{
    (void)state;
    unsigned char *p = pattern(5000, 1);
    struct version v = make(p, 5000);
    struct rec_change c = rec_diff(NULL, false, v.bytes, v.n, v.hash, v.count);
    assert_int_equal(c.type, REC_CREATE);
    assert_ptr_equal(c.data, v.bytes);
    assert_int_equal(c.len, 5000);
    c = rec_diff(NULL, true, v.bytes, v.n, v.hash, v.count);
    assert_int_equal(c.type, REC_REWRITE);
    assert_false(c.same);
    assert_int_equal(c.len, 5000);
    drop(&v);
    free(p);
}

static void test_rec_diff__same_bytes_are_a_same_content_rewrite(void **state)
{
    (void)state;
    unsigned char *p = pattern(9000, 2);
    struct version a = make(p, 9000), b = make(p, 9000);
    struct rec_change c = diff_checked(&a, &b);
    assert_int_equal(c.type, REC_REWRITE);
    assert_true(c.same);
    assert_int_equal(c.len, 0);
    struct version e1 = make(NULL, 0), e2 = make(NULL, 0);
    c = diff_checked(&e1, &e2);
    assert_true(c.same);
    drop(&a), drop(&b), drop(&e1), drop(&e2);
    free(p);
}

static void test_rec_diff__growth_behind_the_old_bytes_is_an_append(void **state)
{
    (void)state;
    unsigned char *p = pattern(20000, 3);
    /* From a partial last block (EPU writes an XML in pieces), and from an empty file. */
    size_t from[] = {0, 1, 4095, 4096, 4097, 12000};
    for (size_t i = 0; i < sizeof(from) / sizeof(from[0]); i++) {
        struct version a = make(p, from[i]), b = make(p, 20000);
        struct rec_change c = diff_checked(&a, &b);
        assert_int_equal(c.type, REC_APPEND);
        assert_int_equal(c.offset, from[i]);
        assert_int_equal(c.len, 20000 - from[i]);
        drop(&a), drop(&b);
    }
    free(p);
}

static void test_rec_diff__shrink_on_a_block_boundary_is_a_truncate(void **state)
{
    (void)state;
    unsigned char *p = pattern(3 * REC_BLOCK + 100, 4);
    struct version a = make(p, 3 * REC_BLOCK + 100), b = make(p, 2 * REC_BLOCK);
    struct rec_change c = diff_checked(&a, &b);
    assert_int_equal(c.type, REC_TRUNCATE);
    assert_null(c.data);
    drop(&b);
    /* Not on a boundary: the shorter file is stored whole. */
    b = make(p, 2 * REC_BLOCK + 7);
    c = diff_checked(&a, &b);
    assert_int_equal(c.type, REC_REWRITE);
    assert_false(c.same);
    drop(&a), drop(&b);
    free(p);
}

static void test_rec_diff__a_change_inside_is_a_write_of_the_changed_blocks(void **state)
{
    (void)state;
    size_t n = 6 * REC_BLOCK + 10;
    unsigned char *p = pattern(n, 5), *q = pattern(n, 5);
    q[2 * REC_BLOCK + 5] ^= 0xff;
    q[3 * REC_BLOCK + 1] ^= 0xff;
    struct version a = make(p, n), b = make(q, n);
    struct rec_change c = diff_checked(&a, &b);
    assert_int_equal(c.type, REC_WRITE);
    assert_int_equal(c.offset, 2 * REC_BLOCK);
    assert_int_equal(c.len, 2 * REC_BLOCK);
    drop(&b);
    /* A change in the first block rewrites the file; one in the short last block writes it. */
    memcpy(q, p, n);
    q[0] ^= 1;
    b = make(q, n);
    c = diff_checked(&a, &b);
    assert_int_equal(c.type, REC_REWRITE);
    drop(&b);
    memcpy(q, p, n);
    q[n - 1] ^= 1;
    b = make(q, n);
    c = diff_checked(&a, &b);
    assert_int_equal(c.type, REC_WRITE);
    assert_int_equal(c.offset, 6 * REC_BLOCK);
    assert_int_equal(c.len, 10);
    drop(&a), drop(&b);
    free(p), free(q);
}

static void test_rec_diff__random_edits_round_trip(void **state)
{
    (void)state;
    srand(13);
    size_t counts[REC_UNKNOWN + 1] = {0};
    unsigned char *cur = pattern(3 * REC_BLOCK, 6);
    size_t n = 3 * REC_BLOCK;
    for (int i = 0; i < 2000; i++) {
        size_t m = n;
        unsigned char *next = malloc(5 * REC_BLOCK);
        memcpy(next, cur, n);
        switch (rand() % 5) {
        case 0: /* append */
            m = n + (size_t)(rand() % 3000) + 1;
            if (m > 5 * REC_BLOCK)
                m = 5 * REC_BLOCK;
            for (size_t k = n; k < m; k++)
                next[k] = (unsigned char)rand();
            break;
        case 1: /* flip a byte */
            if (n)
                next[(size_t)rand() % n] ^= 0x5a;
            break;
        case 2: /* shrink */
            m = n ? (size_t)rand() % n : 0;
            if (rand() % 2)
                m -= m % REC_BLOCK;
            break;
        case 3: /* unchanged */
            break;
        default: /* a new file of another size */
            m = (size_t)rand() % (5 * REC_BLOCK);
            for (size_t k = 0; k < m; k++)
                next[k] = (unsigned char)rand();
        }
        struct version a = make(cur, n), b = make(next, m);
        struct rec_change c = diff_checked(&a, &b);
        counts[c.type]++;
        drop(&a), drop(&b);
        free(cur);
        cur = next;
        n = m;
    }
    free(cur);
    /* Every operation came up (the test would prove little otherwise). */
    assert_true(counts[REC_APPEND] > 100);
    assert_true(counts[REC_WRITE] > 100);
    assert_true(counts[REC_TRUNCATE] > 20);
    assert_true(counts[REC_REWRITE] > 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rec_diff__new_file_is_a_create_and_after_a_placeholder_a_rewrite),
        cmocka_unit_test(test_rec_diff__same_bytes_are_a_same_content_rewrite),
        cmocka_unit_test(test_rec_diff__growth_behind_the_old_bytes_is_an_append),
        cmocka_unit_test(test_rec_diff__shrink_on_a_block_boundary_is_a_truncate),
        cmocka_unit_test(test_rec_diff__a_change_inside_is_a_write_of_the_changed_blocks),
        cmocka_unit_test(test_rec_diff__random_edits_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
