/* A fuzz target per parser: FUZZ_KIND picks the kind at build time. Beyond "no crash,
 * no leak", it checks that parsing in three chunks agrees with parsing in one, and that
 * a document that parses can be printed. Built with libFuzzer under clang (EM_FUZZ=ON),
 * or linked with replay.c to run a corpus as an ordinary test. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "epu.h"

#ifndef FUZZ_KIND
#error "FUZZ_KIND must name an epu_kind"
#endif

/* A path that gives every kind the ids it takes from names. */
#define FUZZ_PATH_IMAGE "S/Images-Disc1/GridSquare_11/GridSquare_20250101_000000.xml"
#define FUZZ_PATH_HOLE "S/Images-Disc1/GridSquare_11/FoilHoles/FoilHole_22_20250101_000000.xml"
#define FUZZ_PATH_MIC "S/Images-Disc1/GridSquare_11/Data/FoilHole_22_Data_33_1_20250101_000000.xml"

static const char *fuzz_path(void)
{
    switch (FUZZ_KIND) {
    case EPU_KIND_GRIDSQUARE_IMAGE:
        return FUZZ_PATH_IMAGE;
    case EPU_KIND_FOILHOLE_IMAGE:
        return FUZZ_PATH_HOLE;
    case EPU_KIND_MICROGRAPH:
        return FUZZ_PATH_MIC;
    default:
        return "S/Metadata/GridSquare_11.dm";
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int initialised;
    if (!initialised) {
        epu_init();
        initialised = 1;
    }
    struct epu_doc *whole = NULL, *parts = NULL;
    struct epu_diag diag;
    int rc1 = epu_parse_buffer(FUZZ_KIND, fuzz_path(), data, size, &whole, &diag);

    struct epu_parser *p = epu_parser_new(FUZZ_KIND, NULL);
    if (!p)
        abort();
    size_t cut1 = size / 3, cut2 = size - size / 3;
    int rc2 = epu_parser_begin(p, fuzz_path());
    if (rc2 == 0)
        rc2 = epu_parser_feed(p, data, cut1);
    if (rc2 == 0)
        rc2 = epu_parser_feed(p, data + cut1, cut2 - cut1);
    if (rc2 == 0)
        rc2 = epu_parser_feed(p, data + cut2, size - cut2);
    if (rc2 == 0)
        rc2 = epu_parser_finish(p, &parts);
    epu_parser_free(p);

    if ((rc1 == 0) != (rc2 == 0))
        abort(); /* chunking changed the verdict */
    if (rc1 == 0) {
        cJSON *a = epu_doc_to_json(whole), *b = epu_doc_to_json(parts);
        char *sa = a ? cJSON_PrintUnformatted(a) : NULL, *sb = b ? cJSON_PrintUnformatted(b) : NULL;
        if (!sa || !sb || strcmp(sa, sb) != 0)
            abort();
        cJSON_free(sa);
        cJSON_free(sb);
        cJSON_Delete(a);
        cJSON_Delete(b);
    } else if (whole || diag.reason[0] == '\0') {
        abort(); /* a failure must say why and return nothing */
    }
    epu_doc_free(whole);
    epu_doc_free(parts);
    return 0;
}
