/* hash64: the value does not depend on how the bytes are split into updates, is the same
 * in every build (it is stored in journals: golden values), and every byte and the length
 * count. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hash.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash__splits_do_not_matter),
        cmocka_unit_test(test_hash__every_byte_and_the_length_count),
        cmocka_unit_test(test_hash__golden_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
