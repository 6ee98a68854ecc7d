/* Tests of tree discovery and scan on the authored visit (testdata/visit-mini), whose
 * expected entities were worked out by hand from its files. */
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

#include "epu.h"
#include "scan.h"
#include "testutil.h"
#include "tree.h"

#define VISIT EM_TESTDATA "/visit-mini"

/* Runs scan and returns the events as a JSON array (you own it). */
static cJSON *scan_events(const char *dir, unsigned threads, struct scan_summary *sum)
{
    FILE *out = tmpfile();
    assert_non_null(out);
    struct scan_options opt = {.dir = dir, .agent = "test", .threads = threads, .out = out};
    assert_int_equal(scan_run(&opt, sum), 0);
    rewind(out);
    cJSON *all = cJSON_CreateArray();
    char line[65536];
    while (fgets(line, sizeof(line), out)) {
        cJSON *e = cJSON_Parse(line);
        assert_non_null(e);
        cJSON_AddItemToArray(all, e);
    }
    fclose(out);
    return all;
}

static cJSON *find_event(cJSON *all, const char *type, const char *key, double v, const char *s)
{
    cJSON *e;
    cJSON_ArrayForEach(e, all)
    {
        if (strcmp(cJSON_GetObjectItem(e, "type")->valuestring, type) != 0)
            continue;
        cJSON *k = cJSON_GetObjectItem(cJSON_GetObjectItem(e, "key"), key);
        if (s ? strcmp(k->valuestring, s) == 0 : k->valuedouble == v)
            return cJSON_GetObjectItem(e, "data");
    }
    fail_msg("no %s event with %s", type, key);
    return NULL;
}

static const char *str_at(cJSON *o, const char *a, const char *b)
{
    cJSON *x = cJSON_GetObjectItem(o, a);
    if (b)
        x = cJSON_GetObjectItem(x, b);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

static void test_scan__tree_groups_files(void **state)
{
    (void)state;
    struct tree t;
    assert_int_equal(tree_scan(VISIT, &t), 0);
    assert_int_equal(t.session_count, 2);
    assert_int_equal(t.atlases.n, 1);
    const struct tree_session *s = &t.sessions[0];
    assert_string_equal(s->dir, "Supervisor_20250101_100000_1_mini_EPU");
    assert_non_null(s->epu_dm);
    assert_true(s->has_metadata);
    assert_int_equal(s->images_discs, 2);
    assert_int_equal(s->square_count, 3);
    assert_int_equal(s->squares[0].images.n, 2);
    assert_int_equal(s->squares[0].foilholes.n, 2);
    assert_int_equal(s->squares[0].micrographs.n, 3);
    assert_int_equal(s->squares[1].micrographs.n, 1); /* in Images-Disc2 */
    assert_null(t.sessions[1].epu_dm);                /* the aborted session */
    char *atlas = tree_find_atlas(&t, s,
                                  "Z:\\mini\\atlas\\Supervisor_20250101_090000_mini_Atlas\\"
                                  "Sample1\\Atlas\\Atlas.dm",
                                  "z:\\MINI");
    assert_string_equal(atlas,
                        "atlas/Supervisor_20250101_090000_mini_Atlas/Sample1/Atlas/Atlas.dm");
    free(atlas);
    /* Another drive and root: found by the path's tail. */
    atlas = tree_find_atlas(&t, s,
                            "D:\\elsewhere\\atlas\\Supervisor_20250101_090000_mini_Atlas\\"
                            "Sample1\\Atlas\\Atlas.dm",
                            "D:\\other");
    assert_non_null(atlas);
    free(atlas);
    assert_null(tree_find_atlas(&t, s, "Z:\\mini\\atlas\\X\\Sample9\\Atlas\\Atlas.dm", "Z:\\mini"));
    tree_free(&t);
}

static void test_scan__entities_of_the_mini_visit(void **state)
{
    (void)state;
    struct scan_summary sum;
    cJSON *all = scan_events(VISIT, 2, &sum);
    assert_int_equal(cJSON_GetArraySize(all), 14);
    assert_int_equal(sum.events[0], 1);     /* session */
    assert_int_equal(sum.events[5], 1);     /* the aborted session directory */
    assert_int_equal(sum.events[1], 1);     /* atlas */
    assert_int_equal(sum.events[2], 3);     /* squares 1001-1003 */
    assert_int_equal(sum.events[3], 4);     /* holes 2001-2003, 2101 */
    assert_int_equal(sum.events[4], 4);     /* micrographs of the real session */
    assert_int_equal(sum.files_skipped, 1); /* the aborted session's micrograph */
    assert_int_equal(sum.files_failed, 0);
    /* seq counts 1, 2, 3, ... */
    int i = 0;
    cJSON *e;
    cJSON_ArrayForEach(e, all)
    {
        assert_int_equal(cJSON_GetObjectItem(e, "seq")->valuedouble, ++i);
        assert_int_equal(cJSON_GetObjectItem(e, "v")->valuedouble, 1);
    }
    cJSON *sq = find_event(all, "gridsquare", "gridsquare_id", 1001, NULL);
    /* The newest of two square images wins. */
    assert_string_equal(str_at(sq, "image", "image_uuid"), "11111111-0000-4000-8000-000000001002");
    assert_true(cJSON_GetObjectItem(sq, "in_session_list")->valueint);
    assert_int_equal(cJSON_GetObjectItem(sq, "atlas_id")->valuedouble, 900001);
    assert_int_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(sq, "atlas"), "center_x_px")->valuedouble * 2, 201);
    sq = find_event(all, "gridsquare", "gridsquare_id", 1003, NULL);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(sq, "image")));
    cJSON *fh = find_event(all, "foilhole", "foilhole_id", 2001, NULL);
    /* The re-centred (newer) image wins, and the .dm target is merged in. */
    assert_string_equal(str_at(fh, "image", "image_uuid"), "22222222-0000-4000-8000-000000002002");
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(fh, "target"), "pixel_x")->valuedouble,
                     1396);
    fh = find_event(all, "foilhole", "foilhole_id", 2101, NULL); /* from the lacey map */
    assert_int_equal(cJSON_GetObjectItem(fh, "gridsquare_id")->valuedouble, 1002);
    cJSON *m =
        find_event(all, "micrograph", "micrograph_uuid", 0, "33333333-0000-4000-8000-000000003003");
    assert_int_equal(cJSON_GetObjectItem(m, "exposure_id")->valuedouble, 3003);
    assert_int_equal(cJSON_GetObjectItem(m, "foilhole_id")->valuedouble, 2001);
    assert_int_equal(cJSON_GetObjectItem(m, "session_id")->valuedouble, 800001);
    cJSON *s = find_event(all, "session", "session_id", 800001, NULL);
    assert_int_equal(cJSON_GetObjectItem(s, "atlas_id")->valuedouble, 900001);
    assert_string_equal(str_at(s, "path", NULL), "Supervisor_20250101_100000_1_mini_EPU");
    cJSON_Delete(all);
}

/* Thread count changes nothing but timing: the events are the same, in the same order. */
static void test_scan__threads_do_not_change_output(void **state)
{
    (void)state;
    struct scan_summary sum;
    cJSON *one = scan_events(VISIT, 1, &sum), *four = scan_events(VISIT, 4, &sum);
    assert_int_equal(cJSON_GetArraySize(one), cJSON_GetArraySize(four));
    for (int i = 0; i < cJSON_GetArraySize(one); i++) {
        cJSON *a = cJSON_GetArrayItem(one, i), *b = cJSON_GetArrayItem(four, i);
        cJSON_DeleteItemFromObject(a, "emitted_at");
        cJSON_DeleteItemFromObject(b, "emitted_at");
        assert_true(cJSON_Compare(a, b, 1));
    }
    cJSON_Delete(one);
    cJSON_Delete(four);
}

/* A broken file is counted and logged; everything else is still emitted. */
static void test_scan__broken_file_loses_nothing_else(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("test-scan");
    char *from = tu_path(VISIT, "Supervisor_20250101_100000_1_mini_EPU");
    char *to = tu_path(dir, "Supervisor_20250101_100000_1_mini_EPU");
    tu_copytree(from, to);
    free(from);
    free(to);
    char *bad = tu_path(dir, "Supervisor_20250101_100000_1_mini_EPU/Images-Disc1/GridSquare_1001/"
                             "Data/FoilHole_2002_Data_4001_1_20250101_102200.xml");
    assert_int_equal(tu_truncate(bad, 300), 0);
    struct scan_summary sum;
    cJSON *all = scan_events(dir, 2, &sum);
    assert_int_equal(sum.files_failed, 1);
    assert_int_equal(sum.events[4], 3);
    assert_int_equal(sum.events[3], 4);
    cJSON_Delete(all);
    tu_rmtree(dir);
    free(bad);
}

static void test_scan__real_sessions(void **state)
{
    (void)state;
    if (!tu_have_shared())
        skip();
    struct scan_summary sum;
    cJSON *all = scan_events(EM_SHARED_TESTDATA "/epu/nt32457-6", 2, &sum);
    assert_int_equal(sum.events[0], 1);
    assert_int_equal(sum.events[1], 1);
    assert_int_equal(sum.events[2], 222);
    assert_int_equal(sum.events[3], 570);
    cJSON *sq = find_event(all, "gridsquare", "gridsquare_id", 4590776, NULL);
    assert_int_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(sq, "metadata"), "exposure_count")->valuedouble,
        868);
    assert_non_null(str_at(sq, "image", "image_uuid"));
    cJSON_Delete(all);
    /* Scanning only the grid directory still finds its atlas beside it. */
    all = scan_events(
        EM_SHARED_TESTDATA "/epu/nt32457-6/Supervisor_20240405_115113_0_SmartEPU_ApoF", 2, &sum);
    assert_int_equal(sum.events[1], 1);
    assert_int_equal(sum.events[2], 222);
    cJSON_Delete(all);
    all = scan_events(EM_SHARED_TESTDATA "/epu/cm40593-1", 2, &sum);
    assert_int_equal(sum.events[2], 228);
    assert_int_equal(sum.events[3], 2); /* holes known only from FoilHoles images */
    assert_int_equal(sum.events[4], 4);
    cJSON *m =
        find_event(all, "micrograph", "micrograph_uuid", 0, "a57ec324-5326-43a3-8dc6-ee3424aa5814");
    assert_int_equal(cJSON_GetObjectItem(m, "foilhole_id")->valuedouble, 9015883);
    assert_int_equal(cJSON_GetObjectItem(m, "gridsquare_id")->valuedouble, 8999138);
    cJSON_Delete(all);
}

int main(void)
{
    epu_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan__tree_groups_files),
        cmocka_unit_test(test_scan__entities_of_the_mini_visit),
        cmocka_unit_test(test_scan__threads_do_not_change_output),
        cmocka_unit_test(test_scan__broken_file_loses_nothing_else),
        cmocka_unit_test(test_scan__real_sessions),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    epu_cleanup();
    return failed;
}
