/* Tests of the dataset reader (agent/dataset.c): a loader's output directory made here
 * from the shared format samples, whose headers were checked by hand (test_formats). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dataset.h"
#include "em_error.h"
#include "testutil.h"

#define MRC EM_SHARED_TESTDATA "/formats/mrc/EMD-3197.map"
#define OMEZARR EM_SHARED_TESTDATA "/formats/ome-zarr/simple_0.4"

static const char record_ok[] =
    "{\"id\":\"0b3c1d7e-1111-4222-8333-444455556666\",\"source\":\"url\",\"source_id\":\"job-7\","
    "\"status\":\"complete\",\"created_at\":\"2026-12-02T10:00:00Z\",\"metadata\":{\"core\":"
    "{\"description\":\"a map\",\"volume_shape\":[20,20,20],\"data_type\":\"float32\","
    "\"voxel_size_nm\":[1.14,1.14,1.14]}},\"files\":{\"volume\":\"/elsewhere/EMD-3197.map\"},"
    "\"additional_metadata\":{\"job_id\":7}}";

/* ROOT/url/job-7/ with the MRC sample, a text file, hidden loader files and `record`. */
static char *make(const char *record)
{
    char *root = tu_tmpdir("dataset");
    char *d1 = tu_path(root, "url"), *dir = tu_path(root, "url/job-7");
    assert_int_equal(tu_mkdir(d1), 0);
    assert_int_equal(tu_mkdir(dir), 0);
    size_t n;
    char *mrc = tu_read(MRC, &n);
    assert_non_null(mrc);
    char *p = tu_path(dir, "EMD-3197.map");
    assert_int_equal(tu_write(p, mrc, n), 0);
    free(p), free(mrc);
    p = tu_path(dir, "notes.txt");
    assert_int_equal(tu_write(p, "hello\n", 6), 0);
    free(p);
    p = tu_path(dir, ".partial");
    assert_int_equal(tu_mkdir(p), 0);
    free(p);
    p = tu_path(dir, ".metadata.json.tmp");
    assert_int_equal(tu_write(p, "{", 1), 0);
    free(p);
    p = tu_path(dir, "metadata.json");
    assert_int_equal(tu_write(p, record, strlen(record)), 0);
    free(p), free(d1), free(dir);
    return root;
}

static void test_is_record(void **state)
{
    (void)state;
    assert_true(dataset_is_record("metadata.json"));
    assert_true(dataset_is_record("idr/job-3/metadata.json"));
    assert_false(dataset_is_record("idr/job-3/.metadata.json.tmp"));
    assert_false(dataset_is_record("idr/job-3/metadata.json.bak"));
    assert_false(dataset_is_record("Images-Disc1/GridSquare_1/Data/x.xml"));
}

static void test_complete(void **state)
{
    (void)state;
    if (!tu_have_shared())
        skip();
    char *root = make(record_ok);
    cJSON *key, *data;
    char why[600];
    assert_int_equal(dataset_read(root, "url/job-7/metadata.json", &key, &data, why, sizeof(why)),
                     1);
    char *k = cJSON_PrintUnformatted(key);
    assert_string_equal(k, "{\"loader\":\"url\",\"dataset_id\":"
                           "\"0b3c1d7e-1111-4222-8333-444455556666\"}");
    cJSON_free(k);
    assert_string_equal(cJSON_GetObjectItem(data, "status")->valuestring, "complete");
    assert_string_equal(cJSON_GetObjectItem(data, "dir")->valuestring, "url/job-7");
    assert_int_equal(cJSON_GetObjectItem(data, "job_id")->valueint, 7);
    /* files.volume names a path elsewhere: its last component is the one here */
    assert_string_equal(cJSON_GetObjectItem(data, "volume")->valuestring, "EMD-3197.map");
    /* two files by name, the hidden ones and the record left out; only the map has a header */
    cJSON *files = cJSON_GetObjectItem(data, "files");
    assert_int_equal(cJSON_GetArraySize(files), 2);
    cJSON *f0 = cJSON_GetArrayItem(files, 0), *f1 = cJSON_GetArrayItem(files, 1);
    assert_string_equal(cJSON_GetObjectItem(f0, "name")->valuestring, "EMD-3197.map");
    assert_int_equal(cJSON_GetObjectItem(f0, "size")->valueint, 33024);
    assert_non_null(cJSON_GetObjectItem(f0, "header"));
    assert_string_equal(cJSON_GetObjectItem(f1, "name")->valuestring, "notes.txt");
    assert_int_equal(cJSON_GetObjectItem(f1, "size")->valueint, 6);
    assert_null(cJSON_GetObjectItem(f1, "header"));
    assert_null(cJSON_GetObjectItem(f1, "error"));
    char *h = cJSON_PrintUnformatted(cJSON_GetObjectItem(data, "header"));
    assert_string_equal(h, "{\"format\":\"mrc\",\"volume_shape\":[20,20,20],\"axes\":\"zyx\","
                           "\"data_type\":\"float32\",\"voxel_size_nm\":[1.14,1.14,1.14]}");
    cJSON_free(h);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(data, "mismatches")), 0);
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(data, "record"), "source_id")->valuestring,
        "job-7");
    cJSON_Delete(key);
    cJSON_Delete(data);
    tu_rmtree(root);
}

/* The record claims what the data does not say: each disagreement is named. */
static void test_mismatch(void **state)
{
    (void)state;
    if (!tu_have_shared())
        skip();
    char rec[2048];
    snprintf(rec, sizeof(rec), "%s", record_ok);
    char *p = strstr(rec, "[20,20,20]");
    memcpy(p, "[10,20,20]", 10);
    p = strstr(rec, "[1.14,1.14,1.14]");
    memcpy(p, "[1.14,1.14,1.20]", 16);
    char *root = make(rec);
    cJSON *key, *data;
    char why[600];
    assert_int_equal(dataset_read(root, "url/job-7/metadata.json", &key, &data, why, sizeof(why)),
                     1);
    cJSON *m = cJSON_GetObjectItem(data, "mismatches");
    assert_int_equal(cJSON_GetArraySize(m), 2);
    assert_string_equal(cJSON_GetArrayItem(m, 0)->valuestring,
                        "volume_shape: the record says [10,20,20], EMD-3197.map has [20,20,20]");
    assert_string_equal(cJSON_GetArrayItem(m, 1)->valuestring,
                        "voxel_size_nm: the record says [1.14,1.14,1.2], EMD-3197.map has "
                        "[1.14,1.14,1.14]");
    cJSON_Delete(key);
    cJSON_Delete(data);
    tu_rmtree(root);
}

/* Not JSON, JSON that is not a loader's record, an unusable id. */
static void test_not_records(void **state)
{
    (void)state;
    if (!tu_have_shared())
        skip();
    cJSON *key, *data;
    char why[600];
    char *root = make("{\"id\":\"x\",\"source\":");
    assert_int_equal(dataset_read(root, "url/job-7/metadata.json", &key, &data, why, sizeof(why)),
                     -EM_EMALFORMED);
    assert_non_null(strstr(why, "not valid JSON"));
    assert_null(key);
    tu_rmtree(root);
    root = make("{\"name\":\"some other tool's metadata\"}");
    assert_int_equal(dataset_read(root, "url/job-7/metadata.json", &key, &data, why, sizeof(why)),
                     0);
    tu_rmtree(root);
    root = make("{\"id\":\"\",\"source\":\"url\",\"status\":\"complete\"}");
    assert_int_equal(dataset_read(root, "url/job-7/metadata.json", &key, &data, why, sizeof(why)),
                     -EM_EVALUE);
    tu_rmtree(root);
    assert_int_equal(dataset_read("/nonexistent", "a/metadata.json", &key, &data, why, sizeof(why)),
                     -EM_ENOENT);
}

/* A Zarr store beside the record is read as one volume (its multiscale levels). */
static void test_zarr(void **state)
{
    (void)state;
    if (!tu_have_shared())
        skip();
    char *root = tu_tmpdir("dataset");
    char *d = tu_path(root, "openorganelle");
    assert_int_equal(tu_mkdir(d), 0);
    free(d);
    d = tu_path(root, "openorganelle/cell");
    assert_int_equal(tu_mkdir(d), 0);
    char *z = tu_path(d, "simple.zarr");
    tu_copytree(OMEZARR, z);
    char *r = tu_path(d, "metadata.json");
    const char rec[] = "{\"id\":\"u1\",\"source\":\"openorganelle\",\"source_id\":\"cell\","
                       "\"status\":\"saving-data\",\"created_at\":\"x\",\"metadata\":{\"core\":"
                       "{\"description\":\"d\"}}}";
    assert_int_equal(tu_write(r, rec, strlen(rec)), 0);
    cJSON *key, *data;
    char why[600];
    assert_int_equal(
        dataset_read(root, "openorganelle/cell/metadata.json", &key, &data, why, sizeof(why)), 1);
    cJSON *f = cJSON_GetArrayItem(cJSON_GetObjectItem(data, "files"), 0);
    assert_string_equal(cJSON_GetObjectItem(f, "name")->valuestring, "simple.zarr");
    cJSON *h = cJSON_GetObjectItem(f, "header");
    assert_non_null(h);
    assert_string_equal(cJSON_GetObjectItem(h, "format")->valuestring, "ome-zarr");
    assert_true(cJSON_GetArraySize(cJSON_GetObjectItem(h, "levels")) >= 1);
    assert_string_equal(cJSON_GetObjectItem(data, "status")->valuestring, "saving-data");
    cJSON_Delete(key);
    cJSON_Delete(data);
    free(d), free(z), free(r);
    tu_rmtree(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_is_record), cmocka_unit_test(test_complete),
        cmocka_unit_test(test_mismatch),  cmocka_unit_test(test_not_records),
        cmocka_unit_test(test_zarr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
