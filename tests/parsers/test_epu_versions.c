/* Every EPU version we have real files of, field for field.
 *
 * ../shared/testdata/epu-more/ holds 311 real files from six public sources (EPU 1.0 to
 * 3.13; Falcon 2/3/3EC/4i, K2/K3, EER, phase plate; its MANIFEST.md names each one's kind).
 * - golden values: for one file per EPU version and detector, fields read by hand from the
 *   XML (the element or key each comes from is named next to it);
 * - every file the manifest lists parses as the kind the manifest gives it, except the two
 *   the manifest says must be rejected;
 * - EPU 1.x names (4-digit time) are recognised from the path like the 6-digit ones.
 * Skips when the directory is absent.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "em_error.h"
#include "epu.h"
#include "testutil.h"

#define MORE EM_SHARED_TESTDATA "/epu-more"
#define TR "transphire/transphire/external_modules/tests/"

static bool have_more(void)
{
    struct stat st;
    if (stat(MORE "/MANIFEST.md", &st) != 0) {
        printf("# skipped: %s is absent\n", MORE);
        return false;
    }
    return true;
}

/* One expected value: `field` of the document's JSON printed unformatted. */
struct want {
    const char *field, *json;
};

struct version_case {
    const char *path;
    enum epu_kind kind;
    struct want w[8];
};

/* Read from the XML by hand:
 * detector_name: <a:Key>DetectorCommercialName</a:Key>, else
 *   microscopeData/acquisition/camera/Name (EPU before 3.x has no commercial name);
 * fractions: FractionationSettings' NumberOffractions (Equidistant), else the number of
 *   DoseFractionDefinition items (Varidistant, Falcon 2/3/3EC); none for EER;
 * dose_rate: <a:Key>DoseRate</a:Key>, or Detectors[EF-Falcon].DoseRate (Falcon 4i). */
static const struct version_case cases[] = {
    /* EPU 1.0.2.24, Falcon 2 (BM-Falcon), 30 DoseFractionDefinition items */
    {TR "xml_epu_1_8_falcon_2.xml",
     EPU_KIND_MICROGRAPH,
     {{"micrograph_uuid", "\"06c16a83-e01e-402a-ba38-8cfa53b2312e\""},
      {"epu_version", "\"1.0.2.24\""},
      {"detector_name", "\"BM-Falcon\""},
      {"fractions", "30"},
      {"dose_rate", "null"},
      {"magnification", "47000"},
      {"foilhole_id", "null"}}},
    /* EPU 1.0.2.24, K2 behind the energy filter (EF-CCD), NumberOffractions 40 */
    {TR "xml_epu_1_8_k2.xml",
     EPU_KIND_MICROGRAPH,
     {{"epu_version", "\"1.0.2.24\""},
      {"detector_name", "\"EF-CCD\""},
      {"fractions", "40"},
      {"energy_filter", "true"},
      {"image_width_px", "3710"}}},
    /* EPU 1.2.0.16, K2, NumberOffractions 50, phase plate */
    {TR "xml_epu_1_9_k2.xml",
     EPU_KIND_MICROGRAPH,
     {{"epu_version", "\"1.2.0.16\""},
      {"detector_name", "\"EF-CCD\""},
      {"fractions", "50"},
      {"phase_plate", "true"},
      {"accelerating_voltage_v", "300000"}}},
    /* EPU 1.5.1.50, Falcon 3 (BM-Falcon) with a phase plate, 40 fractions listed */
    {TR "xml_epu_1_11_falcon_vpp.xml",
     EPU_KIND_MICROGRAPH,
     {{"epu_version", "\"1.5.1.50\""},
      {"detector_name", "\"BM-Falcon\""},
      {"fractions", "40"},
      {"phase_plate", "true"},
      {"accelerating_voltage_v", "200000"}}},
    /* EPU 1.5.1.50 under an EPU 1.x name with a 4-digit time: ids from the name */
    {"transphire/test_files/epu_1_8_falcon_mrc/"
     "FoilHole_983503_Data_984274_984275_20171201_1435.xml",
     EPU_KIND_MICROGRAPH,
     {{"foilhole_id", "983503"},
      {"acquisition_area_id", "984274"},
      {"detector_name", "\"BM-Falcon\""},
      {"fractions", "119"},
      {"micrograph_uuid", "\"626bc22d-c96c-457c-bf2b-8181855c1ee7\""}}},
    /* EPU 2.6.0.59, Falcon (BM-Falcon, no commercial name), 22 fractions listed */
    {"EPU_group_AFIS/spec/Images-Disc1/GridSquare_5324661/Data/"
     "FoilHole_5330585_Data_5338216_5338218_20200206_170645.xml",
     EPU_KIND_MICROGRAPH,
     {{"micrograph_uuid", "\"0957b250-9370-4447-9ae1-3f539046a474\""},
      {"gridsquare_id", "5324661"},
      {"foilhole_id", "5330585"},
      {"epu_version", "\"2.6.0.59\""},
      {"detector_name", "\"BM-Falcon\""},
      {"fractions", "22"}}},
    /* EPU 3.8.1.7603, Falcon 4i, EER: Detectors[EF-Falcon].DoseRate 7.42132230599974 */
    {"LS_Metadata_reader/tests/combine/"
     "FoilHole_31933450_Data_31923934_31923936_20240901_060117.xml",
     EPU_KIND_MICROGRAPH,
     {{"micrograph_uuid", "\"e77bda13-73cd-4a53-803b-935d870ca927\""},
      {"epu_version", "\"3.8.1.7603\""},
      {"detector_name", "\"Falcon 4i\""},
      {"dose_rate", "7.42132230599974"},
      {"fractions", "null"}}},
    /* EPU 3.13.0.10277, Falcon 3EC: micrograph (22 fractions listed), foil hole, square */
    {"EPU_mapper/Example_data/Images-Disc1/GridSquare_16736099/Data/"
     "FoilHole_17721029_Data_17720437_17720439_20260218_014927.xml",
     EPU_KIND_MICROGRAPH,
     {{"micrograph_uuid", "\"f4c59b6b-349d-4e42-a30a-19c62b7bf3e5\""},
      {"epu_version", "\"3.13.0.10277\""},
      {"detector_name", "\"Falcon 3EC\""},
      {"fractions", "22"}}},
    {"EPU_mapper/Example_data/Images-Disc1/GridSquare_16736086/FoilHoles/"
     "FoilHole_17721138_20260218_014959.xml",
     EPU_KIND_FOILHOLE_IMAGE,
     {{"image_uuid", "\"419c31cd-2100-474a-a614-cc767d6f15e6\""},
      {"foilhole_id", "17721138"},
      {"gridsquare_id", "16736086"},
      {"acquired_at", "\"2026-02-18T00:49:57.3302332Z\""}, /* 01:49:57.3302332+01:00 */
      {"magnification", "8500"},
      {"detector_name", "\"Falcon 3EC\""}}},
    {"EPU_mapper/Example_data/Images-Disc1/GridSquare_16736071/GridSquare_20260218_013246.xml",
     EPU_KIND_GRIDSQUARE_IMAGE,
     {{"gridsquare_id", "16736071"},
      {"image_uuid", "\"ce4919ff-3f01-4fca-a083-33722f69ed22\""},
      {"magnification", "2300"},
      {"epu_version", "\"3.13.0.10277\""}}},
    /* EPU 3.11.0.9330 session */
    {"epu_dataset_merger/testing/Y/spa/EpuSession.dm",
     EPU_KIND_SESSION,
     {{"session_id", "26042510"},
      {"name", "\"20250226_Mathieu-G382-grid04\""},
      {"epu_version", "\"3.11.0.9330\""},
      {"started_at", "\"2025-02-26T10:01:48.2418469Z\""},
      {"clustering_mode", "\"ClusteringWithImageBeamShift\""}}},
};

static void check_case(const struct version_case *c)
{
    char *path = tu_path(MORE, c->path);
    struct epu_doc *doc = tu_parse_file(c->kind, path);
    char *json = tu_json(doc);
    cJSON *obj = cJSON_Parse(json);
    assert_non_null(obj);
    for (size_t i = 0; i < sizeof(c->w) / sizeof(c->w[0]) && c->w[i].field; i++) {
        cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, c->w[i].field);
        if (!v)
            fail_msg("%s: no field %s", c->path, c->w[i].field);
        char *got = cJSON_PrintUnformatted(v);
        if (strcmp(got, c->w[i].json) != 0)
            fail_msg("%s: %s is %s, want %s", c->path, c->w[i].field, got, c->w[i].json);
        cJSON_free(got);
    }
    cJSON_Delete(obj);
    cJSON_free(json);
    epu_doc_free(doc);
    free(path);
}

static void test_versions__golden_values(void **state)
{
    (void)state;
    if (!have_more())
        skip();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_case(&cases[i]);
}

/* Atlas squares: <Category> is an integer, and stays one in JSON (25× 0, 16× 1, 1× 2,
 * 4× 3, 1× 4 in this atlas, counted with grep). */
static void test_versions__atlas_category_is_an_integer(void **state)
{
    (void)state;
    if (!have_more())
        skip();
    char *path = tu_path(MORE, "smartem-decisions/tests/testdata/Atlas.dm");
    struct epu_doc *doc = tu_parse_file(EPU_KIND_ATLAS, path);
    char *json = tu_json(doc);
    cJSON *obj = cJSON_Parse(json);
    cJSON *squares = cJSON_GetObjectItemCaseSensitive(obj, "gridsquares");
    int count[5] = {0};
    cJSON *sq;
    cJSON_ArrayForEach(sq, squares)
    {
        cJSON *cat = cJSON_GetObjectItemCaseSensitive(sq, "category");
        assert_true(cJSON_IsNumber(cat));
        assert_true(cat->valueint >= 0 && cat->valueint <= 4);
        count[cat->valueint]++;
    }
    assert_int_equal(count[0], 25);
    assert_int_equal(count[1], 16);
    assert_int_equal(count[2], 1);
    assert_int_equal(count[3], 4);
    assert_int_equal(count[4], 1);
    cJSON_Delete(obj);
    cJSON_free(json);
    epu_doc_free(doc);
    free(path);
}

static enum epu_kind kind_of(const char *word)
{
    if (strcmp(word, "micrograph") == 0)
        return EPU_KIND_MICROGRAPH;
    if (strcmp(word, "foilhole") == 0)
        return EPU_KIND_FOILHOLE_IMAGE;
    if (strcmp(word, "gridsquare") == 0)
        return EPU_KIND_GRIDSQUARE_IMAGE;
    if (strcmp(word, "gridsquare-metadata") == 0)
        return EPU_KIND_GRIDSQUARE_METADATA;
    if (strcmp(word, "atlas") == 0)
        return EPU_KIND_ATLAS;
    if (strcmp(word, "session") == 0)
        return EPU_KIND_SESSION;
    return EPU_KIND_NONE;
}

/* Every row of the manifest's file tables: `| `path` | commit | size | sha256 | what |`
 * where `what` starts with the kind. Rows that say "must be rejected" must fail to parse
 * (the Tomography session as a session; a square image outside GridSquare_<id>/). */
static void test_versions__every_file_parses(void **state)
{
    (void)state;
    if (!have_more())
        skip();
    size_t len;
    char *manifest = tu_read(MORE "/MANIFEST.md", &len);
    assert_non_null(manifest);
    int files = 0, parsed = 0, rejected = 0, by_name = 0;
    for (char *line = strtok(manifest, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "| `", 3) != 0)
            continue;
        char *rel = line + 3;
        char *tick = strchr(rel, '`');
        assert_non_null(tick);
        *tick = '\0';
        char *what = tick + 1;
        for (int bar = 0; bar < 4 && what; bar++)
            what = strchr(what + 1, '|');
        assert_non_null(what);
        what++;
        while (*what == ' ' || *what == '(')
            what++;
        char word[32];
        size_t n = strcspn(what, ";, ");
        assert_true(n < sizeof(word));
        memcpy(word, what, n);
        word[n] = '\0';
        bool tomo = strcmp(word, "Tomography") == 0;
        bool must_reject = strstr(what, "must be rejected") != NULL;
        enum epu_kind kind = tomo ? EPU_KIND_SESSION : kind_of(word);
        if (kind == EPU_KIND_NONE)
            fail_msg("manifest row %s: unknown kind '%s'", rel, word);
        char *path = tu_path(MORE, rel);
        char *buf = tu_read(path, &len);
        if (!buf)
            fail_msg("%s is listed in the manifest but absent", path);
        /* The path tells the kind wherever the name follows EPU's patterns. */
        enum epu_kind by_path = epu_classify_path(path);
        if (by_path != EPU_KIND_NONE) {
            by_name++;
            if (by_path != kind)
                fail_msg("%s: classified from its path as %d, manifest says %s", path, by_path,
                         word);
        }
        struct epu_doc *doc = NULL;
        int rc = tu_parse_chunked(kind, path, buf, len, len ? len : 1, &doc);
        if (must_reject) {
            if (rc == 0)
                fail_msg("%s parsed, but must be rejected", path);
            rejected++;
        } else {
            if (rc != 0)
                fail_msg("%s does not parse as %s: %s", path, word, em_strerror(rc));
            parsed++;
        }
        epu_doc_free(doc);
        free(buf);
        free(path);
        files++;
    }
    free(manifest);
    /* The manifest's summary: 311 files, of which two must be rejected. */
    assert_int_equal(files, 311);
    assert_int_equal(rejected, 2);
    assert_int_equal(parsed, 309);
    /* All but the six transphire fixtures named by hand, the three .dm.xml copies of
     * sessions/atlases/squares ×2 sources and the stray Atlas.dm/Session.dm follow EPU's
     * names; at least the 253 exposures and 25 foil holes must be recognised. */
    assert_true(by_name >= 253 + 25);
}

/* EPU 1.x writes hh:mm, not hh:mm:ss, in manifest names. */
static void test_versions__four_digit_time_names(void **state)
{
    (void)state;
    int64_t fh, area;
    assert_int_equal(epu_classify_path("/s/Images-Disc1/GridSquare_5/Data/"
                                       "FoilHole_983503_Data_984274_984275_20171201_1435.xml"),
                     EPU_KIND_MICROGRAPH);
    assert_true(
        epu_name_micrograph("FoilHole_983503_Data_984274_984275_20171201_1435.xml", &fh, &area));
    assert_int_equal(fh, 983503);
    assert_int_equal(area, 984274);
    assert_int_equal(
        epu_classify_path(
            "/s/Images-Disc1/GridSquare_5/FoilHoles/FoilHole_983503_20171201_1435.xml"),
        EPU_KIND_FOILHOLE_IMAGE);
    assert_int_equal(epu_classify_path("/s/Images-Disc1/GridSquare_5/GridSquare_20171201_1435.xml"),
                     EPU_KIND_GRIDSQUARE_IMAGE);
    /* other lengths are still not EPU's */
    assert_int_equal(epu_classify_path(
                         "/s/Images-Disc1/GridSquare_5/FoilHoles/FoilHole_983503_20171201_143.xml"),
                     EPU_KIND_NONE);
    assert_int_equal(
        epu_classify_path("/s/Images-Disc1/GridSquare_5/GridSquare_20171201_14355.xml"),
        EPU_KIND_NONE);
}

int main(void)
{
    epu_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_versions__golden_values),
        cmocka_unit_test(test_versions__atlas_category_is_an_integer),
        cmocka_unit_test(test_versions__every_file_parses),
        cmocka_unit_test(test_versions__four_digit_time_names),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    epu_cleanup();
    return rc;
}
