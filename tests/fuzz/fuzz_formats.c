/* Fuzz target for the image header readers (parsers/formats.h): the same bytes as a file
 * (MRC, DM3/DM4, TIFF/BigTIFF), as a Zarr .zarray with itself as .zattrs, and as N5
 * attributes.json. Beyond "no crash, no leak": reading is deterministic, and what a
 * successful read reports stays within its limits. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *text_of(const struct fmt_info *info, int rc)
{
    if (rc < 0)
        return NULL;
    if (info->ndim < 0 || info->ndim > FMT_MAX_DIMS)
        abort();
    cJSON *j = fmt_info_to_json(info);
    char *t = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    return t;
}

static void same(const char *a, const char *b)
{
    if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[256];
    struct fmt_mem m;
    struct fmt_info a, b;
    fmt_mem_init(&m, data, size);
    int ra = fmt_read(&m.src, &a, why, sizeof(why));
    int rb = fmt_read(&m.src, &b, why, sizeof(why));
    char *ta = text_of(&a, ra), *tb = text_of(&b, rb);
    if (ra != rb)
        abort();
    same(ta, tb);
    cJSON_free(ta), cJSON_free(tb);
    fmt_info_free(&a), fmt_info_free(&b);

    ra = fmt_read_zarray((const char *)data, size, (const char *)data, size, "s0", &a, why,
                         sizeof(why));
    ta = text_of(&a, ra);
    cJSON_free(ta);
    fmt_info_free(&a);
    ra = fmt_read_n5((const char *)data, size, (const char *)data, size, &a, why, sizeof(why));
    ta = text_of(&a, ra);
    cJSON_free(ta);
    fmt_info_free(&a);
    return 0;
}
