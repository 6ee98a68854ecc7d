/* Tests of the six EPU parsers: golden JSON for authored and real files, values known
 * independently of this code, incremental feeding, truncation and hostile input.
 *
 * Goldens live in testdata/golden/. EM_UPDATE_GOLDEN=1 rewrites them from the current
 * output (then review the diff before committing).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "em_error.h"
#include "epu.h"
#include "testutil.h"

#define MINI "visit-mini/Supervisor_20250101_100000_1_mini_EPU/"
#define MINI_SQ MINI "Images-Disc1/GridSquare_1001/"
#define NT "epu/nt32457-6/Supervisor_20240405_115113_0_SmartEPU_ApoF/"
#define NT_ATLAS                                                                                   \
    "epu/nt32457-6/atlas/Supervisor_20240404_093820_Pete_Miriam_HexAuFoil/Sample4/Atlas/Atlas.dm"
#define CM "epu/cm40593-1/"
#define CM_SQ CM "Images-Disc1/GridSquare_8999138/"

struct golden_case {
    bool shared; /* in ../shared/testdata rather than testdata/ */
    enum epu_kind kind;
    const char *path;
    const char *golden;
};

static const struct golden_case golden_cases[] = {
    {false, EPU_KIND_SESSION, MINI "EpuSession.dm", "mini_session.json"},
    {false, EPU_KIND_ATLAS,
     "visit-mini/atlas/Supervisor_20250101_090000_mini_Atlas/Sample1/Atlas/Atlas.dm",
     "mini_atlas.json"},
    {false, EPU_KIND_GRIDSQUARE_METADATA, MINI "Metadata/GridSquare_1001.dm",
     "mini_gridsquare_1001.json"},
    {false, EPU_KIND_GRIDSQUARE_METADATA, MINI "Metadata/GridSquare_1002.dm",
     "mini_gridsquare_1002_lacey.json"},
    {false, EPU_KIND_GRIDSQUARE_IMAGE, MINI_SQ "GridSquare_20250101_111000.xml",
     "mini_gridsquare_image.json"},
    {false, EPU_KIND_FOILHOLE_IMAGE, MINI_SQ "FoilHoles/FoilHole_2001_20250101_102010.xml",
     "mini_foilhole.json"},
    {false, EPU_KIND_MICROGRAPH, MINI_SQ "Data/FoilHole_2001_Data_4001_1_20250101_102100.xml",
     "mini_micrograph_bom_crlf.json"},
    {true, EPU_KIND_SESSION, NT "EpuSession.dm", "nt32457-6_session.json"},
    {true, EPU_KIND_ATLAS, NT_ATLAS, "nt32457-6_atlas.json"},
    {true, EPU_KIND_GRIDSQUARE_METADATA, NT "Metadata/GridSquare_4590776.dm",
     "nt32457-6_gridsquare_4590776.json"},
    {true, EPU_KIND_GRIDSQUARE_IMAGE,
     NT "Images-Disc1/GridSquare_4590776/GridSquare_20240406_102420.xml",
     "nt32457-6_gridsquare_image.json"},
    {true, EPU_KIND_SESSION, CM "EpuSession.dm", "cm40593-1_session.json"},
    {true, EPU_KIND_GRIDSQUARE_IMAGE, CM_SQ "GridSquare_20250108_151151.xml",
     "cm40593-1_gridsquare_image.json"},
    {true, EPU_KIND_FOILHOLE_IMAGE, CM_SQ "FoilHoles/FoilHole_9015889_20250108_154725.xml",
     "cm40593-1_foilhole.json"},
    {true, EPU_KIND_MICROGRAPH, CM_SQ "Data/FoilHole_9015883_Data_9017347_6_20250108_154915.xml",
     "cm40593-1_micrograph.json"},
};

static char *case_path(const struct golden_case *c)
{
    return tu_path(c->shared ? EM_SHARED_TESTDATA : EM_TESTDATA, c->path);
}

static void test_epu__golden(void **state)
{
    (void)state;
    bool shared = tu_have_shared();
    bool update = getenv("EM_UPDATE_GOLDEN") != NULL;
    for (size_t i = 0; i < sizeof(golden_cases) / sizeof(golden_cases[0]); i++) {
        const struct golden_case *c = &golden_cases[i];
        if (c->shared && !shared)
            continue;
        char *path = case_path(c);
        struct epu_doc *doc = tu_parse_file(c->kind, path);
        char *json = tu_json(doc);
        char *gname = tu_path(EM_TESTDATA "/golden", c->golden);
        if (update) {
            assert_int_equal(tu_write(gname, json, strlen(json)), 0);
        } else {
            size_t len;
            char *want = tu_read(gname, &len);
            if (!want)
                fail_msg("missing golden %s", gname);
            while (len > 0 && want[len - 1] == '\n')
                want[--len] = '\0';
            if (strcmp(want, json) != 0)
                fail_msg("%s differs from %s\n got: %.300s", path, gname, json);
            free(want);
        }
        cJSON_free(json);
        epu_doc_free(doc);
        free(gname);
        free(path);
    }
}

/* Feeding any file in small chunks gives exactly the result of one buffer. */
static void test_epu__chunked_equals_whole(void **state)
{
    (void)state;
    bool shared = tu_have_shared();
    static const size_t chunks[] = {1, 7, 4096};
    for (size_t i = 0; i < sizeof(golden_cases) / sizeof(golden_cases[0]); i++) {
        const struct golden_case *c = &golden_cases[i];
        if (c->shared && !shared)
            continue;
        char *path = case_path(c);
        size_t len;
        char *buf = tu_read(path, &len);
        assert_non_null(buf);
        struct epu_doc *whole = tu_parse_file(c->kind, path);
        char *want = tu_json(whole);
        for (size_t k = 0; k < 3; k++) {
            /* Byte-by-byte on multi-megabyte files only proves the same thing slower. */
            if (chunks[k] == 1 && len > 300000)
                continue;
            struct epu_doc *doc;
            assert_int_equal(tu_parse_chunked(c->kind, path, buf, len, chunks[k], &doc), 0);
            char *got = tu_json(doc);
            assert_string_equal(got, want);
            cJSON_free(got);
            epu_doc_free(doc);
        }
        cJSON_free(want);
        epu_doc_free(whole);
        free(buf);
        free(path);
    }
}

/* Every proper prefix of a document is an error, never a result or a crash; prefixes
 * that stop inside the markup are reported as truncated (a writer still busy). */
static void test_epu__every_prefix_fails(void **state)
{
    (void)state;
    static const struct {
        enum epu_kind kind;
        const char *path;
    } files[] = {
        {EPU_KIND_MICROGRAPH, MINI_SQ "Data/FoilHole_2002_Data_4001_1_20250101_102200.xml"},
        {EPU_KIND_SESSION, MINI "EpuSession.dm"},
        {EPU_KIND_GRIDSQUARE_METADATA, MINI "Metadata/GridSquare_1001.dm"},
    };
    for (size_t f = 0; f < 3; f++) {
        char *path = tu_path(EM_TESTDATA, files[f].path);
        size_t len;
        char *buf = tu_read(path, &len);
        assert_non_null(buf);
        size_t end = len;
        while (end > 0 && (buf[end - 1] == '\n' || buf[end - 1] == '\r' || buf[end - 1] == ' '))
            end--;
        size_t truncated = 0;
        for (size_t n = 0; n < end; n++) {
            struct epu_doc *doc = NULL;
            struct epu_diag diag;
            int rc = epu_parse_buffer(files[f].kind, path, buf, n, &doc, &diag);
            if (rc == 0)
                fail_msg("%s: prefix of %zu/%zu bytes parsed", path, n, end);
            assert_null(doc);
            assert_true(diag.reason[0] != '\0');
            truncated += rc == -EM_ETRUNCATED;
        }
        /* A prefix ends inside an element almost everywhere. */
        assert_true(truncated > end * 9 / 10);
        struct epu_doc *doc = NULL;
        assert_int_equal(epu_parse_buffer(files[f].kind, path, buf, end, &doc, NULL), 0);
        epu_doc_free(doc);
        free(buf);
        free(path);
    }
}

/* Counts known from the files themselves (../shared/testdata/README.md), not from us. */
static void test_epu__known_counts(void **state)
{
    (void)state;
    if (!tu_have_shared())
        skip();
    char *p = tu_path(EM_SHARED_TESTDATA, NT "Metadata/GridSquare_4590776.dm");
    struct epu_doc *sq = tu_parse_file(EPU_KIND_GRIDSQUARE_METADATA, p);
    const struct epu_gridsquare_metadata *g = &sq->u.gridsquare;
    assert_int_equal(g->gridsquare_id.v, 4590776);
    assert_int_equal(g->foilhole_count, 570);
    assert_int_equal(g->exposure_count, 868);
    size_t near = 0, with_exposures = 0;
    for (size_t i = 0; i < g->foilhole_count; i++)
        near += g->foilholes[i].is_near_grid_bar.set && g->foilholes[i].is_near_grid_bar.v;
    assert_int_equal(near, 291);
    /* Every exposure names a hole of this square, and 217 holes have exposures. */
    for (size_t i = 0; i < g->foilhole_count; i++) {
        for (size_t k = 0; k < g->exposure_count; k++) {
            if (g->exposures[k].foilhole_id.v == g->foilholes[i].foilhole_id.v) {
                with_exposures++;
                break;
            }
        }
    }
    assert_int_equal(with_exposures, 217);
    free(p);

    p = tu_path(EM_SHARED_TESTDATA, NT_ATLAS);
    struct epu_doc *at = tu_parse_file(EPU_KIND_ATLAS, p);
    assert_int_equal(at->u.atlas.atlas_id.v, 3436163); /* the root Id, not a nested one */
    assert_int_equal(at->u.atlas.tile_count, 35);
    assert_int_equal(at->u.atlas.gridsquare_count, 222);
    free(p);

    p = tu_path(EM_SHARED_TESTDATA, NT "EpuSession.dm");
    struct epu_doc *se = tu_parse_file(EPU_KIND_SESSION, p);
    assert_int_equal(se->u.session.gridsquare_count, 222);
    /* The atlas's square nodes are exactly the session's square list. */
    for (size_t i = 0; i < 222; i++)
        assert_int_equal(at->u.atlas.gridsquares[i].gridsquare_id.v,
                         se->u.session.gridsquare_ids[i]);
    assert_string_equal(se->u.session.epu_version, "3.7.0.6930");
    free(p);

    p = tu_path(EM_SHARED_TESTDATA, CM "EpuSession.dm");
    struct epu_doc *cm = tu_parse_file(EPU_KIND_SESSION, p);
    assert_int_equal(cm->u.session.gridsquare_count, 228);
    assert_int_equal(cm->u.session.session_id.v, 9015527);
    free(p);
    epu_doc_free(sq);
    epu_doc_free(at);
    epu_doc_free(se);
    epu_doc_free(cm);
}

/* Values read by hand from the authored files, one per quirk. */
static void test_epu__quirks(void **state)
{
    (void)state;
    char *p = tu_path(EM_TESTDATA, MINI "EpuSession.dm");
    struct epu_doc *d = tu_parse_file(EPU_KIND_SESSION, p);
    /* Name is written as z:Ref="2" to AutoloaderDescription. */
    assert_string_equal(d->u.session.name, "Supervisor_20250101_100000_1_mini_EPU");
    /* The first SampleXml slot is nil; the atlas comes from the first real one. */
    assert_non_null(strstr(d->u.session.atlas_path, "Sample1"));
    assert_string_equal(d->u.session.started_at.s, "2025-01-01T09:00:00.1234567Z");
    epu_doc_free(d);
    free(p);

    p = tu_path(EM_TESTDATA, MINI "Metadata/GridSquare_1002.dm");
    d = tu_parse_file(EPU_KIND_GRIDSQUARE_METADATA, p);
    assert_int_equal(d->u.gridsquare.foilhole_count, 1); /* lacey map */
    assert_int_equal(d->u.gridsquare.foilholes[0].foilhole_id.v, 2101);
    epu_doc_free(d);
    free(p);

    p = tu_path(EM_TESTDATA, MINI_SQ "Data/FoilHole_2001_Data_4001_1_20250101_102100.xml");
    d = tu_parse_file(EPU_KIND_MICROGRAPH, p); /* BOM and CRLF */
    assert_string_equal(d->u.image.image_uuid, "33333333-0000-4000-8000-000000003001");
    assert_int_equal(d->u.image.fractions.v, 40);
    assert_int_equal(d->u.image.foilhole_id.v, 2001);
    assert_int_equal(d->u.image.acquisition_area_id.v, 4001);
    assert_int_equal(d->u.image.gridsquare_id.v, 1001);
    assert_true(d->u.image.dose.v == 1.44e21);
    epu_doc_free(d);
    free(p);

    /* 11:22:00-01:00 is 12:22:00 UTC. */
    p = tu_path(EM_TESTDATA, MINI_SQ "Data/FoilHole_2002_Data_4001_1_20250101_102200.xml");
    d = tu_parse_file(EPU_KIND_MICROGRAPH, p);
    assert_string_equal(d->u.image.acquired_at.s, "2025-01-01T12:22:00.0000000Z");
    epu_doc_free(d);
    free(p);

    p = tu_path(EM_TESTDATA,
                "visit-mini/atlas/Supervisor_20250101_090000_mini_Atlas/Sample1/Atlas/Atlas.dm");
    d = tu_parse_file(EPU_KIND_ATLAS, p);
    assert_int_equal(d->u.atlas.tile_count, 2); /* two nil padding slots skipped */
    assert_int_equal(d->u.atlas.gridsquares[0].tile_count, 2);
    assert_false(d->u.atlas.gridsquares[2].rotation_rad.set); /* NaN is null */
    assert_string_equal(d->u.atlas.acquired_at.s, "2025-01-01T08:05:30.1234567Z");
    epu_doc_free(d);
    free(p);
}

/* The same document with other prefixes (and a default namespace instead of one)
 * parses to the same values: elements are matched by local name and URI. */
static void test_epu__prefixes_do_not_matter(void **state)
{
    (void)state;
    const char *a =
        "<MicroscopeImage xmlns=\"http://schemas.datacontract.org/2004/07/Fei.SharedObjects\">"
        "<uniqueID>u-1</uniqueID><microscopeData><acquisition><acquisitionDateTime>"
        "2025-01-01T00:00:00Z</acquisitionDateTime></acquisition><optics><Defocus>-2E-06"
        "</Defocus></optics></microscopeData></MicroscopeImage>";
    const char *b =
        "<q:MicroscopeImage xmlns:q=\"http://schemas.datacontract.org/2004/07/Fei.SharedObjects\">"
        "<q:uniqueID>u-1</q:uniqueID><q:microscopeData><q:acquisition><q:acquisitionDateTime>"
        "2025-01-01T00:00:00Z</q:acquisitionDateTime></q:acquisition><q:optics><q:Defocus>-2E-06"
        "</q:Defocus></q:optics></q:microscopeData></q:MicroscopeImage>";
    struct epu_doc *da, *db;
    const char *path = "x/GridSquare_7/FoilHoles/FoilHole_9_20250101_000000.xml";
    assert_int_equal(epu_parse_buffer(EPU_KIND_FOILHOLE_IMAGE, path, a, strlen(a), &da, NULL), 0);
    assert_int_equal(epu_parse_buffer(EPU_KIND_FOILHOLE_IMAGE, path, b, strlen(b), &db, NULL), 0);
    char *ja = tu_json(da), *jb = tu_json(db);
    assert_string_equal(ja, jb);
    assert_true(da->u.image.defocus_m.v == -2e-6);
    cJSON_free(ja);
    cJSON_free(jb);
    epu_doc_free(da);
    epu_doc_free(db);
    /* The right local name in the wrong namespace is another kind of document. */
    const char *c = "<MicroscopeImage xmlns=\"urn:other\"><uniqueID>u</uniqueID></MicroscopeImage>";
    struct epu_diag diag;
    assert_int_equal(epu_parse_buffer(EPU_KIND_FOILHOLE_IMAGE, path, c, strlen(c), &da, &diag),
                     -EM_EWRONGKIND);
}

struct bad_case {
    const char *name;
    enum epu_kind kind;
    const char *doc;
    int code;
    const char *reason_part;
};

#define SESSION_OPEN                                                                               \
    "<EpuSessionXml "                                                                              \
    "xmlns=\"http://schemas.datacontract.org/2004/07/Applications.Epu.Persistence\">"

static const struct bad_case bad_cases[] = {
    {"billion laughs", EPU_KIND_SESSION,
     "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 "
     "\"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">]>" SESSION_OPEN
     "<Id>1</Id><Name>&lol2;</Name></EpuSessionXml>",
     -EM_EHOSTILE, "DOCTYPE"},
    {"external entity", EPU_KIND_SESSION,
     "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>" SESSION_OPEN
     "<Id>1</Id><Name>&e;</Name></EpuSessionXml>",
     -EM_EHOSTILE, "DOCTYPE"},
    {"external dtd", EPU_KIND_SESSION,
     "<!DOCTYPE x SYSTEM \"http://example.invalid/x.dtd\">" SESSION_OPEN
     "<Id>1</Id><Name>n</Name></EpuSessionXml>",
     -EM_EHOSTILE, "DOCTYPE"},
    {"undefined entity", EPU_KIND_SESSION,
     SESSION_OPEN "<Id>1</Id><Name>&nope;</Name></EpuSessionXml>", -EM_EMALFORMED, "nope"},
    {"wrong root", EPU_KIND_SESSION,
     "<GridSquareXml "
     "xmlns=\"http://schemas.datacontract.org/2004/07/Applications.Epu.Persistence\"/>",
     -EM_EWRONGKIND, "GridSquareXml"},
    {"missing id", EPU_KIND_SESSION, SESSION_OPEN "<Name>n</Name></EpuSessionXml>", -EM_EMISSING,
     "session_id"},
    {"missing name", EPU_KIND_SESSION, SESSION_OPEN "<Id>5</Id></EpuSessionXml>", -EM_EMISSING,
     "name"},
    {"bad integer", EPU_KIND_SESSION, SESSION_OPEN "<Id>12x</Id><Name>n</Name></EpuSessionXml>",
     -EM_EVALUE, "integer"},
    {"bad number", EPU_KIND_SESSION,
     SESSION_OPEN
     "<Id>1</Id><Name>n</Name><ClusteringRadius>1.2.3</ClusteringRadius></EpuSessionXml>",
     -EM_EVALUE, "number"},
    {"bad date", EPU_KIND_SESSION,
     SESSION_OPEN
     "<Id>1</Id><Name>n</Name><StartDateTime>2025-02-30T00:00:00Z</StartDateTime></EpuSessionXml>",
     -EM_EVALUE, "timestamp"},
    {"mismatched tags", EPU_KIND_SESSION, SESSION_OPEN "<Id>1</Name></EpuSessionXml>",
     -EM_EMALFORMED, NULL},
    {"trailing garbage", EPU_KIND_SESSION,
     SESSION_OPEN "<Id>1</Id><Name>n</Name></EpuSessionXml><x/>", -EM_EMALFORMED, NULL},
    {"binary", EPU_KIND_SESSION, "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", -EM_EMALFORMED, NULL},
    {"empty", EPU_KIND_SESSION, "", -EM_ETRUNCATED, "empty"},
    {"whitespace only", EPU_KIND_SESSION, "  \r\n ", -EM_ETRUNCATED, NULL},
    {"atlas without id", EPU_KIND_ATLAS,
     "<AtlasSessionXml xmlns=\"http://schemas.datacontract.org/2004/07/"
     "Applications.SciencesAppsShared.GridAtlas.Persistence\"><Name>A</Name></AtlasSessionXml>",
     -EM_EMISSING, "atlas_id"},
    {"hole without key", EPU_KIND_GRIDSQUARE_METADATA,
     "<GridSquareXml "
     "xmlns=\"http://schemas.datacontract.org/2004/07/Applications.Epu.Persistence\">"
     "<Id>1</Id><TargetLocations><TargetLocationsEfficient><m_serializationArray>"
     "<KeyValuePairOfintTargetLocationXmlX><value/></KeyValuePairOfintTargetLocationXmlX>"
     "</m_serializationArray></TargetLocationsEfficient></TargetLocations></GridSquareXml>",
     -EM_EMISSING, "key"},
    {"micrograph without time", EPU_KIND_MICROGRAPH,
     "<MicroscopeImage xmlns=\"http://schemas.datacontract.org/2004/07/Fei.SharedObjects\">"
     "<uniqueID>u</uniqueID></MicroscopeImage>",
     -EM_EMISSING, "acquired_at"},
};

static void test_epu__bad_input(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *c = &bad_cases[i];
        struct epu_doc *doc = NULL;
        struct epu_diag diag = {0};
        size_t len = strcmp(c->name, "binary") == 0 ? 16 : strlen(c->doc);
        int rc = epu_parse_buffer(c->kind, "Data/FoilHole_1_Data_2_3_20250101_000000.xml", c->doc,
                                  len, &doc, &diag);
        if (rc != c->code)
            fail_msg("%s: got %d (%s), want %d", c->name, rc, diag.reason, c->code);
        assert_null(doc);
        assert_true(diag.line >= 0);
        if (c->reason_part && !strstr(diag.reason, c->reason_part))
            fail_msg("%s: reason '%s' lacks '%s'", c->name, diag.reason, c->reason_part);
    }
}

/* Depth, text size and document size are bounded. */
static void test_epu__limits(void **state)
{
    (void)state;
    size_t depth = 5000, cap = depth * 7 + 256;
    char *deep = malloc(cap);
    assert_non_null(deep);
    size_t n = (size_t)snprintf(deep, cap, "%s<Id>1</Id><Name>n</Name>", SESSION_OPEN);
    for (size_t i = 0; i < depth; i++)
        n += (size_t)snprintf(deep + n, cap - n, "<a>");
    struct epu_doc *doc;
    struct epu_diag diag;
    assert_int_equal(epu_parse_buffer(EPU_KIND_SESSION, "s", deep, n, &doc, &diag), -EM_ELIMIT);
    free(deep);

    size_t big = (2u << 20) + 64;
    char *text = malloc(big + 256);
    assert_non_null(text);
    n = (size_t)snprintf(text, 256, "%s<Id>1</Id><Name>", SESSION_OPEN);
    memset(text + n, 'x', big);
    n += big;
    n += (size_t)snprintf(text + n, 64, "</Name></EpuSessionXml>");
    assert_int_equal(epu_parse_buffer(EPU_KIND_SESSION, "s", text, n, &doc, &diag), -EM_ELIMIT);
    assert_non_null(strstr(diag.reason, "longer than"));
    free(text);

    struct dcs_limits lim = DCS_LIMITS_DEFAULT;
    lim.max_doc_bytes = 64;
    struct epu_parser *p = epu_parser_new(EPU_KIND_SESSION, &lim);
    assert_int_equal(epu_parser_begin(p, "s"), 0);
    const char *doc_text = SESSION_OPEN "<Id>1</Id><Name>n</Name></EpuSessionXml>";
    assert_int_equal(epu_parser_feed(p, doc_text, strlen(doc_text)), -EM_ELIMIT);
    epu_parser_free(p);
}

/* Kind checks that the shared root element cannot make: names and directories. */
static void test_epu__wrong_kind_by_name(void **state)
{
    (void)state;
    char *p = tu_path(EM_TESTDATA, MINI_SQ "FoilHoles/FoilHole_2001_20250101_102000.xml");
    size_t len;
    char *buf = tu_read(p, &len);
    struct epu_doc *doc;
    struct epu_diag diag;
    assert_int_equal(epu_parse_buffer(EPU_KIND_MICROGRAPH, p, buf, len, &doc, &diag),
                     -EM_EWRONGKIND);
    assert_int_equal(epu_parse_buffer(EPU_KIND_GRIDSQUARE_IMAGE, p, buf, len, &doc, &diag),
                     -EM_EWRONGKIND);
    /* A square image outside GridSquare_<gs>/ lacks its required id. */
    assert_int_equal(epu_parse_buffer(EPU_KIND_GRIDSQUARE_IMAGE,
                                      "/tmp/GridSquare_20250101_000000.xml", buf, len, &doc, &diag),
                     -EM_EMISSING);
    free(buf);
    free(p);
}

/* A parser is reused for many documents (as scan's workers do). */
static void test_epu__parser_reuse(void **state)
{
    (void)state;
    struct epu_parser *p = epu_parser_new(EPU_KIND_SESSION, NULL);
    const char *bad = SESSION_OPEN "<Id>1</Id>";
    const char *good = SESSION_OPEN "<Id>7</Id><Name>n</Name></EpuSessionXml>";
    for (int round = 0; round < 3; round++) {
        struct epu_doc *doc;
        assert_int_equal(epu_parser_begin(p, "a"), 0);
        assert_int_equal(epu_parser_feed(p, bad, strlen(bad)), 0);
        assert_int_equal(epu_parser_finish(p, &doc), -EM_ETRUNCATED);
        assert_int_equal(epu_parser_begin(p, "b"), 0);
        assert_int_equal(epu_parser_feed(p, good, strlen(good)), 0);
        assert_int_equal(epu_parser_finish(p, &doc), 0);
        assert_int_equal(doc->u.session.session_id.v, 7);
        epu_doc_free(doc);
    }
    epu_parser_free(p);
}

/* Regression: libxml2's xmlCtxtResetPush() kept state after a document with a byte-order
 * mark, so a reused parser failed every later document with "Document is empty" (the
 * watch then reported complete files as malformed). */
static void test_epu__parser_reuse_after_bom_and_torn_documents(void **state)
{
    (void)state;
    size_t len;
    char *path = tu_path(EM_TESTDATA, MINI_SQ "Data/FoilHole_2001_Data_4001_1_20250101_102100.xml");
    char *buf = tu_read(path, &len);
    assert_non_null(buf);
    assert_memory_equal(buf, "\xef\xbb\xbf<", 4); /* the file begins with a BOM */
    struct epu_parser *p = epu_parser_new(EPU_KIND_MICROGRAPH, NULL);
    const size_t cuts[] = {len, len, 1, len, 2, len, len / 2, len, 0, len};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        struct epu_doc *doc = NULL;
        assert_int_equal(epu_parser_begin(p, path), 0);
        int rc = epu_parser_feed(p, buf, cuts[i]);
        if (rc == 0)
            rc = epu_parser_finish(p, &doc);
        assert_int_equal(rc, cuts[i] == len ? 0 : -EM_ETRUNCATED);
        epu_doc_free(doc);
    }
    epu_parser_free(p);
    free(buf);
    free(path);
}

int main(void)
{
    epu_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_epu__golden),
        cmocka_unit_test(test_epu__chunked_equals_whole),
        cmocka_unit_test(test_epu__every_prefix_fails),
        cmocka_unit_test(test_epu__known_counts),
        cmocka_unit_test(test_epu__quirks),
        cmocka_unit_test(test_epu__prefixes_do_not_matter),
        cmocka_unit_test(test_epu__bad_input),
        cmocka_unit_test(test_epu__limits),
        cmocka_unit_test(test_epu__wrong_kind_by_name),
        cmocka_unit_test(test_epu__parser_reuse),
        cmocka_unit_test(test_epu__parser_reuse_after_bom_and_torn_documents),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    epu_cleanup();
    return failed;
}
