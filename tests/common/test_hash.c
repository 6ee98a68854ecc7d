/* hash64: the value does not depend on how the bytes are split into updates, is the same
 * in every build (it is stored in journals: golden values), and every byte and the length
 * count; the content hash (hash64c) too. pathkey: a path's parts and key are the same
 * however it was keyed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hash.h"
#include "pathkey.h"

#define N 1000

static unsigned char data[N];

static void fill(void)
{
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        data[i] = (unsigned char)x;
    }
}

static void test_hash__splits_do_not_matter(void **state)
{
    (void)state;
    fill();
    uint64_t x = 1;
    for (size_t len = 0; len <= 200; len++) {
        uint64_t whole = hash64_bytes(data, len);
        for (int trial = 0; trial < 20; trial++) {
            struct hash64 h;
            hash64_init(&h);
            for (size_t off = 0; off < len;) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                size_t n = (size_t)(x % 41);
                if (n > len - off)
                    n = len - off;
                hash64_update(&h, data + off, n);
                off += n;
            }
            assert_true(hash64_final(&h) == whole);
        }
    }
}

static void test_hash__every_byte_and_the_length_count(void **state)
{
    (void)state;
    fill();
    uint64_t base = hash64_bytes(data, N);
    for (size_t i = 0; i < N; i += 7) { /* each lane and the tail */
        data[i] ^= 1;
        assert_true(hash64_bytes(data, N) != base);
        data[i] ^= 1;
    }
    assert_true(hash64_bytes(data, N) == base);
    unsigned char zeros[64] = {0};
    assert_true(hash64_bytes(zeros, 32) != hash64_bytes(zeros, 33));
    assert_true(hash64_bytes(zeros, 0) != hash64_bytes(zeros, 1));
    assert_true(hash64_bytes(zeros, 0) != 0);
}

/* The values journals hold: a change here makes every agent forget what it emitted. */
static void test_hash__golden_values(void **state)
{
    (void)state;
    const char *s = "FoilHole_31035566_Data_31020000_31020002_20250301_080000.xml";
    assert_true(hash64_str("") == 0x9ca066f1a4ab2eeaull);
    assert_true(hash64_str(s) == 0x864fa33e551631baull);
    fill();
    unsigned char big[N]; /* the word loop, on unaligned input */
    memcpy(big, data, N);
    assert_true(hash64_bytes(big + 1, N - 1) == 0xa05bde488fa315d2ull);
}

/* The content hash (four lanes): the same properties; its blocks are 32 bytes, so splits
 * and single-byte changes are tried across several blocks, the carry and the tail. */
static void test_hash64c__splits_do_not_matter_and_every_byte_counts(void **state)
{
    (void)state;
    fill();
    uint64_t x = 7;
    for (size_t len = 0; len <= 300; len++) {
        uint64_t whole = hash64c_bytes(data, len);
        for (int trial = 0; trial < 20; trial++) {
            struct hash64c h;
            hash64c_init(&h);
            for (size_t off = 0; off < len;) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                size_t n = (size_t)(x % 71);
                if (n > len - off)
                    n = len - off;
                hash64c_update(&h, data + off, n);
                off += n;
            }
            assert_true(hash64c_final(&h) == whole);
        }
    }
    uint64_t base = hash64c_bytes(data, N);
    for (size_t i = 0; i < N; i++) {
        data[i] ^= 0x80;
        assert_true(hash64c_bytes(data, N) != base);
        data[i] ^= 0x80;
    }
    /* Two lanes' words swapped is another content. */
    unsigned char a[64] = {1}, b[64] = {0};
    b[8] = 1;
    assert_true(hash64c_bytes(a, 64) != hash64c_bytes(b, 64));
    unsigned char zeros[96] = {0};
    for (size_t n = 0; n < 95; n++)
        assert_true(hash64c_bytes(zeros, n) != hash64c_bytes(zeros, n + 1));
    assert_true(hash64c_bytes(zeros, 0) != 0);
}

/* The values journals hold for files' contents. */
static void test_hash64c__golden_values(void **state)
{
    (void)state;
    fill();
    unsigned char big[N];
    memcpy(big, data, N);
    assert_true(hash64c_bytes("", 0) == 0x20323cde9d51aa3eull);
    assert_true(hash64c_bytes(big + 1, N - 1) == 0x0296b16a86b576c2ull);
}

/* A path keyed whole and one keyed in its already-hashed directory (as a walk does) are
 * the same key; the parts are the hashes of the directory with its '/' and of the name. */
static void test_pathkey__parts_and_both_ways_agree(void **state)
{
    (void)state;
    const char *p = "/data/S1/Images-Disc1/GridSquare_1/Data/FoilHole_2_Data_3_4_5_6.xml";
    struct pathkey a, b;
    pathkey_init(&a, p);
    const char *name = strrchr(p, '/') + 1;
    assert_string_equal(pathkey_name(&a), name);
    assert_int_equal(a.dir_len, (size_t)(name - p));
    assert_true(a.dir_hash == hash64_bytes(p, a.dir_len));
    assert_true(a.name_hash == hash64_str(name));
    pathkey_init_in(&b, p, a.dir_len, hash64_bytes(p, a.dir_len));
    assert_true(a.hash == b.hash && a.name_hash == b.name_hash && a.dir_hash == b.dir_hash);
    /* A name and a directory that trade a byte are different keys. */
    struct pathkey c, d;
    pathkey_init(&c, "/d/ab/c");
    pathkey_init(&d, "/d/a/bc");
    assert_true(c.hash != d.hash);
    /* No directory; a directory and no name. */
    pathkey_init(&c, "top.xml");
    assert_int_equal(c.dir_len, 0);
    assert_string_equal(pathkey_name(&c), "top.xml");
    pathkey_init(&d, "/data/");
    assert_int_equal(d.dir_len, 6);
    assert_string_equal(pathkey_name(&d), "");
    assert_true(c.hash != 0 && d.hash != 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash__splits_do_not_matter),
        cmocka_unit_test(test_hash__every_byte_and_the_length_count),
        cmocka_unit_test(test_hash__golden_values),
        cmocka_unit_test(test_hash64c__splits_do_not_matter_and_every_byte_counts),
        cmocka_unit_test(test_hash64c__golden_values),
        cmocka_unit_test(test_pathkey__parts_and_both_ways_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
