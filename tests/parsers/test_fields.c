/* Tests of the value rules shared by every parser: timestamps, integers, and the ids and
 * kinds EPU puts in file names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "em_error.h"
#include "epu_internal.h"

static void test_fields__time_normalised_to_utc(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } ok[] = {
        {"2024-04-05T11:36:47.2285448Z", "2024-04-05T11:36:47.2285448Z"},
        {"2024-04-05T12:36:47.2616332+01:00", "2024-04-05T11:36:47.2616332Z"},
        {"2024-04-05T10:17:53.98788+01:00", "2024-04-05T09:17:53.9878800Z"},
        {"2025-01-08T15:49:18.1158288+00:00", "2025-01-08T15:49:18.1158288Z"},
        {"2025-01-01T01:30:00.5+02:00", "2024-12-31T23:30:00.5000000Z"},
        {"2024-02-28T23:30:00-01:00", "2024-02-29T00:30:00.0000000Z"},
        {"2023-12-31T23:59:59.123456789Z", "2023-12-31T23:59:59.1234567Z"},
        {"2025-06-01T12:00:00", "2025-06-01T12:00:00.0000000Z"},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct epu_time t = {0};
        assert_int_equal(epu_time_parse(ok[i].in, strlen(ok[i].in), &t), 0);
        assert_string_equal(t.s, ok[i].out);
    }
    static const char *const bad[] = {"",
                                      "2024-04-05",
                                      "2024-13-01T00:00:00Z",
                                      "2023-02-29T00:00:00Z",
                                      "2024-04-05T24:00:00Z",
                                      "2024-04-05T11:36:47.Z",
                                      "2024-04-05T11:36:47+0100",
                                      "2024-04-05T11:36:47Zjunk",
                                      "0001-01-01T00:30:00+01:00"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct epu_time t = {0};
        if (epu_time_parse(bad[i], strlen(bad[i]), &t) != -EM_EVALUE)
            fail_msg("'%s' accepted as %s", bad[i], t.s);
    }
}

static void test_fields__unix_time_format(void **state)
{
    (void)state;
    struct epu_time t;
    epu_time_from_unix(0, 0, &t);
    assert_string_equal(t.s, "1970-01-01T00:00:00.0000000Z");
    epu_time_from_unix(1736351358, 115828800, &t);
    assert_string_equal(t.s, "2025-01-08T15:49:18.1158288Z");
    epu_time_from_unix(-1, 999999999, &t);
    assert_string_equal(t.s, "1969-12-31T23:59:59.9999999Z");
    epu_time_from_unix(253402300799, 0, &t); /* the last second of year 9999 */
    assert_string_equal(t.s, "9999-12-31T23:59:59.0000000Z");
    /* Against the calendar of the C library, over 0001 to 9999. */
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
#ifdef _WIN32 /* its C library's calendar starts in 1970 and ends in 3000 */
        int64_t sec = (int64_t)(x % 32503680000ull);
#else
        int64_t sec = (int64_t)(x % 315537897600ull) - 62135596800ll;
#endif
        int32_t nsec = (int32_t)((x >> 20) % 1000000000u);
        epu_time_from_unix(sec, nsec, &t);
        time_t tt = (time_t)sec;
        struct tm tm;
        assert_non_null(gmtime_r(&tt, &tm));
        char want[64];
        snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02d.%07dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(nsec / 100));
        assert_string_equal(t.s, want);
    }
}

static void test_fields__integers(void **state)
{
    (void)state;
    int64_t v;
    assert_int_equal(epu_int_parse("4590776", 7, &v), 0);
    assert_int_equal(v, 4590776);
    assert_int_equal(epu_int_parse("-12", 3, &v), 0);
    assert_int_equal(v, -12);
    assert_int_equal(epu_int_parse("", 0, &v), -EM_EVALUE);
    assert_int_equal(epu_int_parse("1.5", 3, &v), -EM_EVALUE);
    assert_int_equal(epu_int_parse("1234567890123456789", 19, &v), -EM_EVALUE);
    assert_int_equal(epu_int_parse("+", 1, &v), -EM_EVALUE);
}

static void test_fields__classify_by_path(void **state)
{
    (void)state;
    static const struct {
        const char *path;
        enum epu_kind kind;
    } cases[] = {
        {"S/EpuSession.dm", EPU_KIND_SESSION},
        {"EpuSession.dm", EPU_KIND_SESSION},
        {"S/xEpuSession.dm", EPU_KIND_NONE},
        {"atlas/A/Sample4/Atlas/Atlas.dm", EPU_KIND_ATLAS},
        {"atlas\\A\\Sample4\\Atlas\\Atlas.dm", EPU_KIND_ATLAS},
        {"atlas/A/Sample4/Atlas.dm", EPU_KIND_NONE},
        {"atlas/A/Sample4/Sample.dm", EPU_KIND_NONE},
        {"atlas/A/Sample4/Atlas/Atlas_1.xml", EPU_KIND_NONE},
        {"S/Metadata/GridSquare_4590776.dm", EPU_KIND_GRIDSQUARE_METADATA},
        {"S/Metadata/GridSquare_.dm", EPU_KIND_NONE},
        {"S/Images-Disc1/GridSquare_1/GridSquare_20240406_102420.xml", EPU_KIND_GRIDSQUARE_IMAGE},
        {"S/Images-Disc1/GridSquare_1/GridSquare_20240406_102420.jpg", EPU_KIND_NONE},
        {"S/Images-Disc1/GridSquare_1/GridSquare_2024040_102420.xml", EPU_KIND_NONE},
        {"G/FoilHoles/FoilHole_9015889_20250108_154725.xml", EPU_KIND_FOILHOLE_IMAGE},
        {"G/FoilHoles/FoilHole_9015889_20250108_154725.jpg", EPU_KIND_NONE},
        {"G/Data/FoilHole_9015883_Data_9017347_6_20250108_154915.xml", EPU_KIND_MICROGRAPH},
        {"G/Data/FoilHole_9015883_Data_9017347_6_20250108_154915.mrc", EPU_KIND_NONE},
        {"G/Data/FoilHole_9015883_Data_9017347_6_20250108_154915_Fractions.tiff", EPU_KIND_NONE},
        /* EPU 1.x's four-digit times; every other count of digits is not a stamp. */
        {"G/Data/FoilHole_9015883_Data_9017347_6_20171201_1435.xml", EPU_KIND_MICROGRAPH},
        {"G/FoilHoles/FoilHole_9015889_20171201_1435.xml", EPU_KIND_FOILHOLE_IMAGE},
        {"G/FoilHoles/FoilHole_9015889_20171201_14355.xml", EPU_KIND_NONE},
        {"G/FoilHoles/FoilHole_9015889_2017120_154725.xml", EPU_KIND_NONE},
        {"G/FoilHoles/FoilHole_9015889_201712011_154725.xml", EPU_KIND_NONE},
        {"G/FoilHoles/FoilHole_9015889_20171201-154725.xml", EPU_KIND_NONE},
        {"G/FoilHoles/FoilHole_9015889_20171201_154725.xm", EPU_KIND_NONE},
        {"G/FoilHoles/FoilHole_9015889_2017x201_154725.xml", EPU_KIND_NONE},
        /* Ids of up to 18 digits (an int64); 19 is not an EPU name. */
        {"G/FoilHoles/FoilHole_123456789012345678_20250108_154725.xml", EPU_KIND_FOILHOLE_IMAGE},
        {"G/FoilHoles/FoilHole_1234567890123456789_20250108_154725.xml", EPU_KIND_NONE},
        {"G/FoilHoles/FoilHole__20250108_154725.xml", EPU_KIND_NONE},
        {"G/Data/FoilHole_1_Data_2__20250108_154915.xml", EPU_KIND_NONE},
        /* The first letter chooses; a name cut short is nothing. */
        {"", EPU_KIND_NONE},
        {"G/", EPU_KIND_NONE},
        {"G/F", EPU_KIND_NONE},
        {"G/FoilHole_", EPU_KIND_NONE},
        {"S/Metadata/GridSquare_4590776.dmx", EPU_KIND_NONE},
        {"S/Atlas.dm", EPU_KIND_NONE},
        {"Atlas.dm", EPU_KIND_NONE},
        {"S/EpuSession.dm.tmp", EPU_KIND_NONE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (epu_classify_path(cases[i].path) != cases[i].kind)
            fail_msg("%s: got kind %d, want %d", cases[i].path, epu_classify_path(cases[i].path),
                     cases[i].kind);
}

static void test_fields__ids_from_names(void **state)
{
    (void)state;
    int64_t gs = 0, fh = 0, area = 0;
    assert_true(epu_name_gridsquare_dir("a/Images-Disc1/GridSquare_8999138/Data/x.xml", &gs));
    assert_int_equal(gs, 8999138);
    assert_true(epu_name_gridsquare_dir("Z:\\v\\GridSquare_12\\FoilHoles\\f.xml", &gs));
    assert_int_equal(gs, 12);
    assert_false(epu_name_gridsquare_dir("a/GridSquare_12x/Data/x.xml", &gs));
    assert_false(epu_name_gridsquare_dir("GridSquare_12", &gs)); /* a file, not a directory */
    /* The nearest one above the file; a name that is not one (19 digits) is passed over. */
    assert_true(epu_name_gridsquare_dir("/GridSquare_1/GridSquare_2/Data/x.xml", &gs));
    assert_int_equal(gs, 2);
    assert_true(epu_name_gridsquare_dir("GridSquare_3/GridSquare_1234567890123456789/x.xml", &gs));
    assert_int_equal(gs, 3);
    assert_true(epu_name_gridsquare_dir("v\\GridSquare_4/Data\\x.xml", &gs));
    assert_int_equal(gs, 4);
    assert_false(epu_name_gridsquare_dir("v/GridSquare_/Data/x.xml", &gs));
    assert_false(epu_name_gridsquare_dir("v/Data/GridSquare_5", &gs));
    assert_false(epu_name_gridsquare_dir("", &gs));
    assert_true(
        epu_name_micrograph("D/FoilHole_9015883_Data_9017347_6_20250108_154915.xml", &fh, &area));
    assert_int_equal(fh, 9015883);
    assert_int_equal(area, 9017347);
    assert_false(epu_name_foilhole("D/FoilHole_9015883_Data_9017347_6_20250108_154915.xml", &fh));
    assert_true(epu_name_foilhole("F/FoilHole_9015889_20250108_154725.xml", &fh));
    assert_int_equal(fh, 9015889);
    assert_true(
        epu_name_micrograph("FoilHole_123456789012345678_Data_42_6_20171201_1435.xml", &fh, &area));
    assert_int_equal(fh, 123456789012345678);
    assert_int_equal(area, 42);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields__time_normalised_to_utc),
        cmocka_unit_test(test_fields__unix_time_format),
        cmocka_unit_test(test_fields__integers),
        cmocka_unit_test(test_fields__classify_by_path),
        cmocka_unit_test(test_fields__ids_from_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
