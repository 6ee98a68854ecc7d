/* em_uuid: every string set comes back exactly (canonical UUIDs in either case packed,
 * anything else copied), equality, and none. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "em_uuid.h"

static void round_trip(const char *s, int form)
{
    struct em_uuid k = {0};
    char buf[EM_UUID_TEXT];
    assert_int_equal(em_uuid_set(&k, s), 0);
    assert_int_equal(k.form, form);
    if (s) {
        assert_string_equal(em_uuid_get(&k, buf), s);
        assert_true(em_uuid_eq(&k, s));
    } else {
        assert_null(em_uuid_get(&k, buf));
        assert_true(em_uuid_eq(&k, NULL));
    }
    em_uuid_clear(&k);
}

static void test_uuid__every_string_comes_back_exactly(void **state)
{
    (void)state;
    round_trip("9a7b2c1d-0e3f-4a5b-8c6d-7e8f90a1b2c3", EM_UUID_LOWER);
    round_trip("9A7B2C1D-0E3F-4A5B-8C6D-7E8F90A1B2C3", EM_UUID_UPPER);
    round_trip("00000000-0000-4000-8000-000000003002", EM_UUID_LOWER); /* digits only */
    round_trip("fedcba98-7654-3210-0123-456789abcdef", EM_UUID_LOWER); /* every digit */
    round_trip("FEDCBA98-7654-3210-0123-456789ABCDEF", EM_UUID_UPPER);
    round_trip("9a7b2c1d-0e3f-4a5b-8c6d-7e8f90a1b2-3", EM_UUID_STRING); /* a dash for a digit */
    round_trip("9a7b2c1d-0E3F-4a5b-8c6d-7e8f90a1b2c3", EM_UUID_STRING); /* mixed case */
    round_trip("9a7b2c1d0e3f4a5b8c6d7e8f90a1b2c3", EM_UUID_STRING);     /* no dashes */
    round_trip("9a7b2c1d-0e3f-4a5b-8c6d-7e8f90a1b2cg", EM_UUID_STRING); /* not hex */
    round_trip("9a7b2c1d-0e3f-4a5b-8c6d-7e8f90a1b2c3x", EM_UUID_STRING);
    round_trip("9a7b2c1d+0e3f-4a5b-8c6d-7e8f90a1b2c3", EM_UUID_STRING);
    round_trip("", EM_UUID_STRING);
    round_trip(NULL, EM_UUID_NONE);
}

static void test_uuid__equality_and_replacement(void **state)
{
    (void)state;
    struct em_uuid k = {0};
    assert_int_equal(em_uuid_set(&k, "9a7b2c1d-0e3f-4a5b-8c6d-7e8f90a1b2c3"), 0);
    assert_false(em_uuid_eq(&k, "9A7B2C1D-0E3F-4A5B-8C6D-7E8F90A1B2C3")); /* exact, not case */
    assert_false(em_uuid_eq(&k, "9a7b2c1d-0e3f-4a5b-8c6d-7e8f90a1b2c4"));
    assert_false(em_uuid_eq(&k, NULL));
    assert_int_equal(em_uuid_set(&k, "not a uuid"), 0); /* the old value goes */
    assert_true(em_uuid_eq(&k, "not a uuid"));
    assert_int_equal(em_uuid_set(&k, NULL), 0);
    assert_true(em_uuid_eq(&k, NULL));
    assert_int_equal(em_uuid_set(&k, "x"), 0);
    em_uuid_clear(&k);
    assert_int_equal(k.form, EM_UUID_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uuid__every_string_comes_back_exactly),
        cmocka_unit_test(test_uuid__equality_and_replacement),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
