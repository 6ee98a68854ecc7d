/* The image header readers (parsers/formats.h) against the real samples in
 * ../shared/testdata/formats. Every expected value below was taken by hand from that
 * folder's README and ../shared/reference/loaders-and-formats.md §8, not from this
 * reader's output. Then robustness: every sample cut at many lengths and with bytes
 * flipped in its header reads cleanly or fails with a reason; hostile counts are refused. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "em_error.h"
#include "formats.h"
#include "testutil.h"

#define SAMPLE(rel) EM_SHARED_TESTDATA "/formats/" rel

static char why[512];

/* Reads the file `path` with fmt_read into *info (asserting success). */
static unsigned char *read_sample(const char *path, struct fmt_info *info, size_t *len)
{
    size_t n;
    unsigned char *data = (unsigned char *)tu_read(path, &n);
    assert_non_null(data);
    struct fmt_mem m;
    fmt_mem_init(&m, data, n);
    int rc = fmt_read(&m.src, info, why, sizeof(why));
    if (rc != 0)
        fail_msg("%s: %s", path, why);
    if (len)
        *len = n;
    return data;
}

static void expect_shape(const struct fmt_info *info, const char *axes, int ndim, ...)
{
    va_list ap;
    va_start(ap, ndim);
    assert_int_equal(info->ndim, ndim);
    for (int i = 0; i < ndim; i++)
        assert_int_equal(info->shape[i], va_arg(ap, int));
    va_end(ap);
    assert_string_equal(info->axes, axes);
}

static void expect_voxel(const struct fmt_info *info, double rel_tol, ...)
{
    va_list ap;
    va_start(ap, rel_tol);
    assert_true(info->has_voxel);
    for (int i = 0; i < info->ndim; i++) {
        double want = va_arg(ap, double);
        if (fabs(info->voxel_nm[i] - want) > rel_tol * want)
            fail_msg("voxel %d: %g nm, expected %g nm", i, info->voxel_nm[i], want);
    }
    va_end(ap);
}

static void test_formats__mrc(void **state)
{
    (void)state;
    struct fmt_info info;
    /* EMD-3197: 20³ float32, cell 228 Å over 20 → 11.4 Å = 1.14 nm. */
    free(read_sample(SAMPLE("mrc/EMD-3197.map"), &info, NULL));
    assert_string_equal(info.format, "mrc");
    assert_string_equal(info.dtype, "float32");
    expect_shape(&info, "zyx", 3, 20, 20, 20);
    expect_voxel(&info, 1e-4, 1.14, 1.14, 1.14);
    fmt_info_free(&info);
    /* EMD-3001: columns Z, rows X, sections Y: X,Y,Z extents 43,25,73; voxel x/y/z
     * 0.448/0.393/0.459 Å; the data starts after 1024 + 160 bytes. */
    free(read_sample(SAMPLE("mrc/EMD-3001.map"), &info, NULL));
    expect_shape(&info, "zyx", 3, 73, 25, 43);
    expect_voxel(&info, 0.002, 0.0459, 0.0393, 0.0448);
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(info.extra, "data_offset");
    assert_int_equal((int)at->valuedouble, 1184);
    fmt_info_free(&info);
    /* 5i55_tiny: nx,ny,nz 8,6,10 with mapc,mapr,maps 2,1,3: columns Y (8), rows X (6),
     * sections Z (10); voxel ≈ 0.491/0.438/0.495 Å (x/y/z). (The samples' README writes
     * "(z,y,x) = (10,6,8)": that is the data's sections × rows × columns, reported here
     * as details.data_shape.) */
    free(read_sample(SAMPLE("mrc/5i55_tiny.ccp4"), &info, NULL));
    expect_shape(&info, "zyx", 3, 10, 8, 6);
    expect_voxel(&info, 0.003, 0.0495, 0.0438, 0.0491);
    const cJSON *ds = cJSON_GetObjectItemCaseSensitive(info.extra, "data_shape");
    assert_int_equal(cJSON_GetArrayItem(ds, 0)->valueint, 10);
    assert_int_equal(cJSON_GetArrayItem(ds, 1)->valueint, 6);
    assert_int_equal(cJSON_GetArrayItem(ds, 2)->valueint, 8);
    fmt_info_free(&info);
}

static void test_formats__dm(void **state)
{
    (void)state;
    struct fmt_info info;
    free(read_sample(SAMPLE("dm/test_dm_image_um_unit.dm3"), &info, NULL));
    assert_string_equal(info.format, "dm3");
    assert_string_equal(info.dtype, "int32");
    expect_shape(&info, "yx", 2, 68, 68);
    expect_voxel(&info, 1e-4, 168.67, 168.67); /* 0.16867 µm */
    fmt_info_free(&info);
    free(read_sample(SAMPLE("dm/test_STEM_image.dm3"), &info, NULL));
    assert_string_equal(info.dtype, "uint32");
    expect_voxel(&info, 1e-3, 0.2485, 0.2485);
    fmt_info_free(&info);
    free(read_sample(SAMPLE("dm/dm3_2D_test-6_uint8.dm3"), &info, NULL));
    assert_string_equal(info.dtype, "uint8");
    expect_shape(&info, "yx", 2, 2, 2);
    fmt_info_free(&info);
    free(read_sample(SAMPLE("dm/dm4_2D_test-6_uint8.dm4"), &info, NULL));
    assert_string_equal(info.format, "dm4");
    assert_string_equal(info.dtype, "uint8");
    expect_shape(&info, "yx", 2, 2, 2);
    fmt_info_free(&info);
    free(read_sample(SAMPLE("dm/dm3_3D_test-1_int16.dm3"), &info, NULL));
    assert_string_equal(info.dtype, "int16");
    expect_shape(&info, "zyx", 3, 2, 2, 2);
    fmt_info_free(&info);
    free(read_sample(SAMPLE("dm/dm4_3D_test-1_int16.dm4"), &info, NULL));
    assert_string_equal(info.dtype, "int16");
    expect_shape(&info, "zyx", 3, 2, 2, 2);
    fmt_info_free(&info);
}

static void test_formats__tiff(void **state)
{
    (void)state;
    struct fmt_info info;
    /* FEI Helios: 471 rows × 512 columns uint8, [Scan] PixelWidth 3.3724e-6 m. */
    free(read_sample(SAMPLE("tiff/FEI-Helios-Ebeam-8bits.tif"), &info, NULL));
    assert_string_equal(info.format, "tiff");
    assert_string_equal(info.dtype, "uint8");
    expect_shape(&info, "yx", 2, 471, 512);
    expect_voxel(&info, 1e-6, 3372.4, 3372.4);
    fmt_info_free(&info);
    /* ImageJ: 2 pages of 68 × 68 float32, 0.1687 µm/px, spacing 2.5 µm. */
    free(read_sample(SAMPLE("tiff/test_loading_image_saved_with_imageJ_stack.tif"), &info, NULL));
    assert_string_equal(info.dtype, "float32");
    assert_int_equal(info.pages, 2);
    expect_shape(&info, "zyx", 3, 2, 68, 68);
    expect_voxel(&info, 1e-3, 2500.0, 168.67, 168.67);
    fmt_info_free(&info);
    free(read_sample(SAMPLE("tiff/multipage.tif"), &info, NULL));
    assert_int_equal(info.pages, 2);
    assert_string_equal(info.dtype, "uint8");
    fmt_info_free(&info);
    free(read_sample(SAMPLE("tiff/minisblack-1c-16b.tiff"), &info, NULL));
    assert_string_equal(info.dtype, "uint16");
    expect_shape(&info, "yx", 2, 151, 157);
    assert_false(info.has_voxel);
    fmt_info_free(&info);
    free(read_sample(SAMPLE("tiff/16bit.MM.cropped.tif"), &info, NULL));
    expect_shape(&info, "yx", 2, 64, 64);
    fmt_info_free(&info);
    /* BigTIFF: 128 × 128 RGB uint8. */
    free(read_sample(SAMPLE("bigtiff/hopper_bigtiff.tif"), &info, NULL));
    assert_string_equal(info.format, "bigtiff");
    expect_shape(&info, "yxs", 3, 128, 128, 3);
    fmt_info_free(&info);
    /* OME-TIFF: XYZCT, SizeZ 5, SizeC 3: (C,Z,Y,X) = (3,5,167,439) int8; no PhysicalSize
     * and XResolution 0/1000, so no voxel size. */
    free(read_sample(SAMPLE("ome-tiff/multi-channel-z-series.ome.tif"), &info, NULL));
    assert_string_equal(info.format, "ome-tiff");
    assert_string_equal(info.dtype, "int8");
    assert_int_equal(info.pages, 15);
    expect_shape(&info, "czyx", 4, 3, 5, 167, 439);
    assert_false(info.has_voxel);
    fmt_info_free(&info);
}

static char *meta(const char *path, size_t *n)
{
    char *t = tu_read(path, n);
    assert_non_null(t);
    return t;
}

static void test_formats__zarr_and_n5(void **state)
{
    (void)state;
    struct fmt_info info;
    size_t n, an;
    char *z = meta(SAMPLE("zarr/zarr.zr/gzip/.zarray"), &n);
    assert_int_equal(fmt_read_zarray(z, n, NULL, 0, NULL, &info, why, sizeof(why)), 0);
    assert_string_equal(info.dtype, "uint8");
    assert_string_equal(info.compression, "gzip");
    expect_shape(&info, "zyx", 3, 512, 512, 3);
    assert_int_equal((int)cJSON_GetObjectItemCaseSensitive(info.extra, "chunk_count")->valuedouble,
                     108);
    fmt_info_free(&info);
    free(z);
    /* OME-NGFF 0.4: scale1/image is 5 × 5 <u2 with scale [8,60] nanometer. */
    z = meta(SAMPLE("ome-zarr/simple_0.4/scale1/image/.zarray"), &n);
    char *a = meta(SAMPLE("ome-zarr/simple_0.4/.zattrs"), &an);
    assert_int_equal(fmt_read_zarray(z, n, a, an, "scale1/image", &info, why, sizeof(why)), 0);
    assert_string_equal(info.format, "ome-zarr");
    assert_string_equal(info.dtype, "uint16");
    expect_shape(&info, "yx", 2, 5, 5);
    expect_voxel(&info, 1e-9, 8.0, 60.0);
    fmt_info_free(&info);
    free(z);
    free(a);
    /* F order and big-endian dtypes are read as such. */
    z = meta(SAMPLE("zarr/from_zarr-python.zarr/3d.chunked.mixed.i2.F/.zarray"), &n);
    assert_int_equal(fmt_read_zarray(z, n, NULL, 0, NULL, &info, why, sizeof(why)), 0);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(info.extra, "order")->valuestring, "F");
    expect_shape(&info, "zyx", 3, 3, 3, 3);
    fmt_info_free(&info);
    free(z);
    /* N5 lists the fastest axis first: [3,512,512] is C-order (512,512,3); 108 blocks. */
    z = meta(SAMPLE("n5/z5py.n5/gzip/attributes.json"), &n);
    assert_int_equal(fmt_read_n5(z, n, NULL, 0, &info, why, sizeof(why)), 0);
    assert_string_equal(info.dtype, "uint8");
    expect_shape(&info, "zyx", 3, 512, 512, 3);
    assert_int_equal((int)cJSON_GetObjectItemCaseSensitive(info.extra, "block_count")->valuedouble,
                     108);
    fmt_info_free(&info);
    free(z);
    /* n5-viewer: s2 is [3,5] (x first) → (5,3); units nm and s: no voxel size in nm. */
    z = meta(SAMPLE("n5/n5_viewer_multiscale_modern/s2/attributes.json"), &n);
    a = meta(SAMPLE("n5/n5_viewer_multiscale_modern/attributes.json"), &an);
    assert_int_equal(fmt_read_n5(z, n, a, an, &info, why, sizeof(why)), 0);
    expect_shape(&info, "yx", 2, 5, 3);
    assert_false(info.has_voxel);
    fmt_info_free(&info);
    free(z);
    free(a);
    /* Not an N5 dataset (the root) and not Zarr v2: refused with a reason. */
    z = meta(SAMPLE("n5/z5py.n5/attributes.json"), &n);
    assert_int_equal(fmt_read_n5(z, n, NULL, 0, &info, why, sizeof(why)), -EM_EWRONGKIND);
    fmt_info_free(&info);
    free(z);
    const char *v3 = "{\"zarr_format\":3,\"shape\":[1]}";
    assert_int_equal(fmt_read_zarray(v3, strlen(v3), NULL, 0, NULL, &info, why, sizeof(why)),
                     -EM_EWRONGKIND);
    fmt_info_free(&info);
}

/* Every sample, cut at many lengths and with header bytes changed: never a crash (ASan
 * and UBSan in CI watch), always 0 or an error with a reason. */
static void test_formats__cut_and_flipped(void **state)
{
    (void)state;
    static const char *files[] = {SAMPLE("mrc/EMD-3197.map"),
                                  SAMPLE("mrc/EMD-3001.map"),
                                  SAMPLE("mrc/5i55_tiny.ccp4"),
                                  SAMPLE("dm/test_dm_image_um_unit.dm3"),
                                  SAMPLE("dm/dm4_3D_test-1_int16.dm4"),
                                  SAMPLE("tiff/multipage.tif"),
                                  SAMPLE("tiff/test_loading_image_saved_with_imageJ_stack.tif"),
                                  SAMPLE("bigtiff/hopper_bigtiff.tif"),
                                  SAMPLE("ome-tiff/multi-channel-z-series.ome.tif")};
    size_t failures = 0, reads = 0;
    for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
        size_t n;
        unsigned char *data = (unsigned char *)tu_read(files[f], &n);
        assert_non_null(data);
        for (size_t cut = 0; cut < n; cut += cut < 2048 ? 7 : n / 97 + 1) {
            struct fmt_mem m;
            struct fmt_info info;
            fmt_mem_init(&m, data, cut);
            why[0] = '\0';
            int rc = fmt_read(&m.src, &info, why, sizeof(why));
            reads++;
            if (rc < 0) {
                failures++;
                assert_true(why[0] != '\0');
            }
            fmt_info_free(&info);
        }
        for (size_t pos = 0; pos < n && pos < 1200; pos++) {
            unsigned char keep = data[pos];
            for (int v = 0; v < 3; v++) {
                data[pos] = v == 0 ? 0xff : v == 1 ? 0x00 : (unsigned char)(keep ^ 0x80);
                struct fmt_mem m;
                struct fmt_info info;
                fmt_mem_init(&m, data, n);
                why[0] = '\0';
                if (fmt_read(&m.src, &info, why, sizeof(why)) < 0)
                    assert_true(why[0] != '\0');
                fmt_info_free(&info);
            }
            data[pos] = keep;
        }
        free(data);
    }
    /* A file cut in its header cannot be read whole: most cuts fail. */
    assert_true(failures > reads / 2);
}

static void test_formats__hostile(void **state)
{
    (void)state;
    struct fmt_info info;
    struct fmt_mem m;
    /* A TIFF whose first page directory points at itself as the next. */
    unsigned char t[64] = {'I', 'I', 42, 0, 8, 0, 0, 0, 2, 0};
    unsigned char ent[2][12] = {{0, 1, 3, 0, 1, 0, 0, 0, 4, 0, 0, 0},
                                {1, 1, 3, 0, 1, 0, 0, 0, 4, 0, 0, 0}};
    memcpy(t + 10, ent, sizeof(ent));
    t[34] = 8; /* next directory: byte 8 again */
    fmt_mem_init(&m, t, sizeof(t));
    assert_int_equal(fmt_read(&m.src, &info, why, sizeof(why)), -EM_ELIMIT);
    fmt_info_free(&info);
    /* A 10 GB MRC header over 1 KiB: the data is missing, said so. */
    unsigned char h[1024] = {0};
    int32_t dims[4] = {100000, 100000, 1, 2};
    memcpy(h, dims, sizeof(dims));
    memcpy(h + 208, "MAP \x44\x41", 6);
    fmt_mem_init(&m, h, sizeof(h));
    assert_int_equal(fmt_read(&m.src, &info, why, sizeof(why)), -EM_ETRUNCATED);
    assert_non_null(strstr(why, "bytes of data expected"));
    fmt_info_free(&info);
    /* JSON larger than the limit, and a shape that is not sizes. */
    const char *bad = "{\"zarr_format\":2,\"shape\":[-1],\"chunks\":[1],\"dtype\":\"<u1\"}";
    assert_int_equal(fmt_read_zarray(bad, strlen(bad), NULL, 0, NULL, &info, why, sizeof(why)),
                     -EM_EMALFORMED);
    fmt_info_free(&info);
    /* Not any known format. */
    fmt_mem_init(&m, "hello, world: not an image at all", 33);
    assert_int_equal(fmt_read(&m.src, &info, why, sizeof(why)), -EM_EWRONGKIND);
    fmt_info_free(&info);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formats__mrc),
        cmocka_unit_test(test_formats__dm),
        cmocka_unit_test(test_formats__tiff),
        cmocka_unit_test(test_formats__zarr_and_n5),
        cmocka_unit_test(test_formats__cut_and_flipped),
        cmocka_unit_test(test_formats__hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
