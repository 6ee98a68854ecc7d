/* jsonw must write exactly what cJSON_PrintUnformatted() writes, for every kind of value
 * the agent emits: the event goldens and every journal hash depend on it. */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dynbuf.h"
#include "em_error.h"
#include "jsonw.h"

#ifdef _WIN32
/* cJSON reads its 15-digit text back with sscanf to choose 15 or 17 digits, and mingw's
 * sscanf is not correctly rounded: for a few numbers it takes 17 digits where glibc's
 * cJSON (and jsonw, through strtod, which is) takes 15. There, what jsonw writes must be
 * the number's 15 digits, and read back within cJSON's tolerance. */
static bool glibc_would_agree(const char *want, const char *got)
{
    while (*want && *got) {
        size_t w = strcspn(want, ",]"), g = strcspn(got, ",]");
        if (w != g || strncmp(want, got, w) != 0) {
            double a = strtod(want, NULL), b = strtod(got, NULL);
            double most = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
            char fifteen[32];
            snprintf(fifteen, sizeof(fifteen), "%1.15g", a);
            if (strncmp(fifteen, got, g) != 0 || strlen(fifteen) != g ||
                !(fabs(a - b) <= most * DBL_EPSILON))
                return false;
        }
        want += w + (want[w] != 0);
        got += g + (got[g] != 0);
    }
    return !*want && !*got;
}
#endif

static void assert_same(const cJSON *item)
{
    char *want = cJSON_PrintUnformatted(item);
    char *got = jsonw_print(item);
    assert_non_null(want);
    assert_non_null(got);
#ifdef _WIN32
    if (strcmp(got, want) != 0 && want[0] == '[')
        assert_true(glibc_would_agree(want + 1, got + 1));
    else
#endif
        assert_string_equal(got, want);
    cJSON_free(want);
    cJSON_free(got);
}

static void test_jsonw__numbers_as_cjson(void **state)
{
    (void)state;
    static const double fixed[] = {0.0,
                                   -0.0,
                                   1.0,
                                   -1.0,
                                   0.1,
                                   1e-6,
                                   -1.5e-06,
                                   2.0 / 3.0,
                                   1e21,
                                   123456789012345678.0,
                                   (double)INT_MAX,
                                   (double)INT_MAX + 1.0,
                                   (double)INT_MIN,
                                   (double)INT_MIN - 1.0,
                                   5100000000.0,
                                   DBL_MAX,
                                   DBL_MIN,
                                   4.9e-324,
                                   NAN,
                                   INFINITY,
                                   -INFINITY,
                                   3.14159265358979,
                                   0.30000000000000004};
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        cJSON_AddItemToArray(arr, cJSON_CreateNumber(fixed[i]));
    /* Doubles from random bits over the whole range, and pixel-like and metre-like values. */
    uint64_t x = 0x9E3779B97F4A7C15u;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double d;
        memcpy(&d, &x, sizeof(d));
        cJSON_AddItemToArray(arr, cJSON_CreateNumber(d));
        cJSON_AddItemToArray(arr, cJSON_CreateNumber((double)(x % 100000) / 7.0));
        cJSON_AddItemToArray(arr, cJSON_CreateNumber((double)(int64_t)(x % 2000000) * -1e-12));
    }
    assert_same(arr);
    cJSON_Delete(arr);
}

static void test_jsonw__strings_as_cjson(void **state)
{
    (void)state;
    cJSON *o = cJSON_CreateObject();
    char all[256];
    for (int i = 1; i < 256; i++)
        all[i - 1] = (char)i;
    all[255] = '\0';
    cJSON_AddStringToObject(o, "all bytes", all);
    cJSON_AddStringToObject(o, "quote\"and\\back", "tab\there\nnew\rline\b\f");
    cJSON_AddStringToObject(o, "", "");
    cJSON_AddStringToObject(o, "utf8 \xc3\xa9", "Z:\\visit\\Images-Disc1");
    cJSON_AddNullToObject(o, "null");
    cJSON_AddTrueToObject(o, "t");
    cJSON_AddFalseToObject(o, "f");
    cJSON_AddRawToObject(o, "raw", "1796140584410960");
    cJSON *nested = cJSON_AddObjectToObject(o, "nested");
    cJSON *a = cJSON_AddArrayToObject(nested, "list");
    cJSON_AddItemToArray(a, cJSON_CreateObject());
    cJSON_AddItemToArray(a, cJSON_CreateArray());
    cJSON_AddItemToArray(a, cJSON_CreateString("x"));
    assert_same(o);
    cJSON_Delete(o);
}

static void test_jsonw__limits_and_errors(void **state)
{
    (void)state;
    cJSON *s = cJSON_CreateString("0123456789");
    struct dynbuf b;
    dynbuf_init(&b, 8);
    assert_int_equal(jsonw_append(&b, s), -EM_ELIMIT);
    dynbuf_free(&b);
    cJSON_Delete(s);
    cJSON *raw = cJSON_CreateRaw(NULL);
    assert_null(jsonw_print(raw));
    cJSON_Delete(raw);
    assert_null(jsonw_print(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jsonw__numbers_as_cjson),
        cmocka_unit_test(test_jsonw__strings_as_cjson),
        cmocka_unit_test(test_jsonw__limits_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
