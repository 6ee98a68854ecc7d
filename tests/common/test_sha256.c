/* SHA-256 (common/emcore/sha256.c; with the CPU's SHA instructions where it has them, the
 * portable code with SHA256_PORTABLE=1: ctest runs both) against FIPS 180-4's examples (and NIST's
 * long-message vector), fed whole and byte by byte, and against the published digests of
 * ../shared/testdata/formats files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sha256.h"
#include "testutil.h"

static void digest_of(const void *data, size_t n, size_t step, char hex[65])
{
    struct sha256 s;
    sha256_init(&s);
    for (size_t off = 0; off < n; off += step)
        sha256_update(&s, (const char *)data + off, n - off < step ? n - off : step);
    sha256_hex(&s, hex);
}

static void test_sha256__vectors(void **state)
{
    (void)state;
    char hex[65];
    static const struct {
        const char *msg, *want;
    } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        for (size_t step = 1; step <= 64; step *= 4) {
            digest_of(v[i].msg, strlen(v[i].msg), step, hex);
            assert_string_equal(hex, v[i].want);
        }
    }
    /* One million 'a' (FIPS 180-2 appendix B.3). */
    char *a = malloc(1000000);
    assert_non_null(a);
    memset(a, 'a', 1000000);
    digest_of(a, 1000000, 1000000, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(a);
}

static void test_sha256__shared_files(void **state)
{
    (void)state;
    size_t n;
    char hex[65];
    char *data = tu_read(EM_SHARED_TESTDATA "/formats/mrc/EMD-3197.map", &n);
    assert_non_null(data);
    digest_of(data, n, 4093, hex);
    assert_string_equal(hex, "351d5090d4c56eb5fc41796842ad64abecc238b8da6181f8857be5844dbbc262");
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256__vectors),
        cmocka_unit_test(test_sha256__shared_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
