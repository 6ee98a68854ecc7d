/* Tests of the watch model: whatever the order files arrive in, and however often the
 * model is flushed, the last state of every entity equals what scan gives for the same
 * tree; orphans wait for their session id; a change re-emits only what it changes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "em_error.h"
#include "entity.h"
#include "epu.h"
#include "fsio.h"
#include "model.h"
#include "scan.h"
#include "testutil.h"
#include "tree.h"

#define VISIT EM_TESTDATA "/visit-mini"

/* The folded stream: one (type+key, data) per entity, last data wins. */
struct folded {
    char **key, **data;
    size_t n, cap;
    size_t events;
    char **batch; /* keys emitted since the last reset */
    size_t nbatch, batch_cap;
};

static void fold_put(struct folded *f, const char *k, char *d)
{
    f->events++;
    if (f->nbatch == f->batch_cap) {
        f->batch_cap = f->batch_cap ? f->batch_cap * 2 : 64;
        f->batch = realloc(f->batch, f->batch_cap * sizeof(char *));
    }
    f->batch[f->nbatch++] = strdup(k);
    for (size_t i = 0; i < f->n; i++) {
        if (strcmp(f->key[i], k) == 0) {
            free(f->data[i]);
            f->data[i] = d;
            return;
        }
    }
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 64;
        f->key = realloc(f->key, f->cap * sizeof(char *));
        f->data = realloc(f->data, f->cap * sizeof(char *));
    }
    f->key[f->n] = strdup(k);
    f->data[f->n++] = d;
}

static void fold_batch_reset(struct folded *f)
{
    for (size_t i = 0; i < f->nbatch; i++)
        free(f->batch[i]);
    f->nbatch = 0;
}

static void fold_free(struct folded *f)
{
    fold_batch_reset(f);
    free(f->batch);
    for (size_t i = 0; i < f->n; i++) {
        free(f->key[i]);
        free(f->data[i]);
    }
    free(f->key);
    free(f->data);
    memset(f, 0, sizeof(*f));
}

static const char *fold_get(const struct folded *f, const char *k)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->key[i], k) == 0)
            return f->data[i];
    return NULL;
}

static char *key_string(const char *type, const cJSON *key)
{
    char *k = cJSON_PrintUnformatted(key);
    size_t n = strlen(type) + strlen(k) + 2;
    char *s = malloc(n);
    snprintf(s, n, "%s %s", type, k);
    cJSON_free(k);
    return s;
}

static int on_emit(void *ctx, enum wire_type type, cJSON *key, cJSON *data, const char *source,
                   const struct fsio_stat *st)
{
    (void)source;
    (void)st;
    assert_non_null(key);
    assert_non_null(data);
    char *k = key_string(wire_type_name(type), key);
    char *d = cJSON_PrintUnformatted(data);
    fold_put(ctx, k, strdup(d));
    free(k);
    cJSON_free(d);
    cJSON_Delete(key);
    cJSON_Delete(data);
    return 0;
}

/* A delete: the entity leaves the folded state (and counts as an event of the batch). */
static int on_retract(void *ctx, enum wire_type type, cJSON *key, const char *source)
{
    (void)source;
    struct folded *f = ctx;
    char *k = key_string(wire_type_name(type), key);
    cJSON_Delete(key);
    bool found = false;
    for (size_t i = 0; i < f->n && !found; i++) {
        if (strcmp(f->key[i], k) == 0) {
            free(f->key[i]);
            free(f->data[i]);
            f->key[i] = f->key[--f->n];
            f->data[i] = f->data[f->n];
            found = true;
        }
    }
    f->events++;
    free(k);
    return found ? 0 : -EM_ESTATE; /* a delete of what was never emitted is a bug */
}

static struct epu_doc *load_rel(const char *rel, enum epu_kind kind, struct fsio_stat *st)
{
    char *path = tu_path(VISIT, rel);
    struct fsio_buf b = {0};
    struct epu_doc *doc = NULL;
    struct epu_diag diag;
    if (fsio_stat(path, st) == 0 && fsio_read(path, 1u << 26, &b, NULL) == 0 &&
        epu_parse_buffer(kind, path, b.data, b.len, &doc, &diag) < 0)
        doc = NULL;
    fsio_buf_free(&b);
    free(path);
    return doc;
}

static struct epu_doc *on_load(void *ctx, const char *rel, enum epu_kind kind, struct fsio_stat *st)
{
    (void)ctx;
    return load_rel(rel, kind, st);
}

static struct model *new_model(struct folded *f)
{
    struct model_callbacks cb = {on_emit, NULL, on_load, NULL, f, false, false, NULL};
    struct model *m = model_new(VISIT, &cb);
    assert_non_null(m);
    return m;
}

/* Every EPU file of the visit, relative to it. */
static size_t visit_files(char ***out)
{
    struct tree t;
    assert_int_equal(tree_scan(VISIT, &t), 0);
    char **v = calloc(256, sizeof(char *));
    size_t n = 0;
    for (size_t i = 0; i < t.atlases.n; i++)
        v[n++] = strdup(t.atlases.v[i]);
    for (size_t i = 0; i < t.session_count; i++) {
        struct tree_session *s = &t.sessions[i];
        if (s->epu_dm)
            v[n++] = strdup(s->epu_dm);
        for (size_t j = 0; j < s->square_count; j++) {
            struct tree_square *q = &s->squares[j];
            if (q->metadata)
                v[n++] = strdup(q->metadata);
            for (size_t k = 0; k < q->images.n; k++)
                v[n++] = strdup(q->images.v[k]);
            for (size_t k = 0; k < q->foilholes.n; k++)
                v[n++] = strdup(q->foilholes.v[k]);
            for (size_t k = 0; k < q->micrographs.n; k++)
                v[n++] = strdup(q->micrographs.v[k]);
        }
    }
    tree_free(&t);
    *out = v;
    return n;
}

/* The file `real` of the visit handed to the model as if it were at `rel`; with
 * `worker_json`, micrographs come with the fields a parse worker writes (as the watch
 * feeds them). */
static void feed_file(struct model *m, const char *rel, const char *real, bool worker_json)
{
    struct tree_loc loc;
    assert_int_equal(tree_locate(rel, &loc), 0);
    free(loc.session_dir);
    struct fsio_stat st;
    struct epu_doc *doc = load_rel(real, loc.kind, &st);
    assert_non_null(doc);
    char *doc_json =
        worker_json && loc.kind == EPU_KIND_MICROGRAPH ? entity_micrograph_doc_json(doc) : NULL;
    assert_int_equal(model_file_json(m, rel, NULL, loc.kind, doc, &st, doc_json), 0);
    cJSON_free(doc_json);
}

static void feed(struct model *m, const char *rel)
{
    feed_file(m, rel, rel, false);
}

/* scan's entities for the visit, folded. */
static void scan_fold(struct folded *f)
{
    FILE *out = tmpfile();
    struct scan_options opt = {.dir = VISIT, .agent = "t", .threads = 1, .out = out};
    struct scan_summary sum;
    assert_int_equal(scan_run(&opt, &sum), 0);
    rewind(out);
    char line[1 << 16];
    while (fgets(line, sizeof(line), out)) {
        cJSON *e = cJSON_Parse(line);
        char *k =
            key_string(cJSON_GetObjectItem(e, "type")->valuestring, cJSON_GetObjectItem(e, "key"));
        fold_put(f, k, cJSON_PrintUnformatted(cJSON_GetObjectItem(e, "data")));
        free(k);
        cJSON_Delete(e);
    }
    fclose(out);
}

static void assert_same_entities(const struct folded *want, const struct folded *got)
{
    assert_int_equal(got->n, want->n);
    for (size_t i = 0; i < want->n; i++) {
        const char *d = fold_get(got, want->key[i]);
        if (!d)
            fail_msg("missing %s", want->key[i]);
        if (strcmp(d, want->data[i]) != 0)
            fail_msg("%s differs:\n want %s\n got  %s", want->key[i], want->data[i], d);
    }
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static struct model *new_model_retracting(struct folded *f);

static void test_model__any_order_gives_scans_entities(void **state)
{
    (void)state;
    struct folded want = {0};
    scan_fold(&want);
    assert_int_equal(want.n, 14); /* 13 entities and the aborted session directory */
    char **files;
    size_t n = visit_files(&files);
    assert_int_equal(n, 14);
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (int round = 0; round < 300; round++) {
        /* Shuffle; flush after every file in odd rounds, only at the end in even ones. */
        for (size_t i = n; i > 1; i--) {
            size_t j = (size_t)(rng_next(&seed) % i);
            char *t = files[i - 1];
            files[i - 1] = files[j];
            files[j] = t;
        }
        struct folded got = {0};
        struct model *m = new_model_retracting(&got);
        for (size_t i = 0; i < n; i++) {
            feed(m, files[i]);
            if (round % 2)
                assert_int_equal(model_flush(m), 0);
        }
        assert_int_equal(model_flush(m), 0);
        assert_int_equal(model_dirty(m), 0);
        assert_same_entities(&want, &got);
        model_free(m);
        fold_free(&got);
    }
    for (size_t i = 0; i < n; i++)
        free(files[i]);
    free(files);
    fold_free(&want);
}

#define S1 "Supervisor_20250101_100000_1_mini_EPU"
#define ABORTED "Supervisor_20250101_120000_2_aborted_EPU"

static void test_model__orphans_wait_for_the_session_id(void **state)
{
    (void)state;
    struct folded got = {0};
    struct model *m = new_model_retracting(&got);
    feed(m, S1 "/Images-Disc1/GridSquare_1001/FoilHoles/FoilHole_2001_20250101_102000.xml");
    feed(m, S1 "/Images-Disc1/GridSquare_1001/Data/FoilHole_2001_Data_4001_1_20250101_102100.xml");
    feed(m, ABORTED
         "/Images-Disc1/GridSquare_5001/Data/FoilHole_6001_Data_4001_1_20250101_121000.xml");
    assert_int_equal(model_flush(m), 0);
    /* No session id yet: nothing can be keyed by it; both directories are, for now,
     * sessions without a session file (aborted_session, keyed by the path). */
    assert_int_equal(got.events, 2);
    assert_non_null(fold_get(&got, "aborted_session {\"path\":\"" S1 "\"}"));
    assert_non_null(fold_get(&got, "aborted_session {\"path\":\"" ABORTED "\"}"));
    struct model_stats st;
    model_stats(m, &st);
    assert_int_equal(st.held, 5); /* 2 squares, 1 hole, 2 micrographs */
    feed(m, S1 "/EpuSession.dm");
    assert_int_equal(model_flush(m), 0);
    /* session + square 1001 + hole 2001 + micrograph, and the listed squares 1002, 1003;
     * S1 is no longer an aborted session (a delete), the other directory still is */
    assert_int_equal(got.n, 7);
    assert_null(fold_get(&got, "aborted_session {\"path\":\"" S1 "\"}"));
    assert_non_null(fold_get(&got, "aborted_session {\"path\":\"" ABORTED "\"}"));
    assert_non_null(fold_get(&got, "foilhole {\"session_id\":800001,\"foilhole_id\":2001}"));
    model_stats(m, &st);
    assert_int_equal(st.held, 2); /* the aborted session's square and micrograph */
    model_free(m);
    fold_free(&got);
}

static void test_model__a_change_re_emits_only_what_it_changes(void **state)
{
    (void)state;
    struct folded got = {0};
    struct model *m = new_model(&got);
    char **files;
    size_t n = visit_files(&files);
    for (size_t i = 0; i < n; i++)
        if (!strstr(files[i], "FoilHole_2002_Data") && !strstr(files[i], "GridSquare_1001.dm"))
            feed(m, files[i]);
    assert_int_equal(model_flush(m), 0);
    fold_batch_reset(&got);
    /* A micrograph without its .dm: exposure_id null, only the micrograph is emitted. */
    feed(m, S1 "/Images-Disc1/GridSquare_1001/Data/FoilHole_2002_Data_4001_1_20250101_102200.xml");
    assert_int_equal(model_flush(m), 0);
    assert_int_equal(got.nbatch, 1);
    assert_non_null(strstr(got.batch[0], "micrograph "));
    const char *d = fold_get(&got, got.batch[0]);
    assert_non_null(strstr(d, "\"exposure_id\":null"));
    fold_batch_reset(&got);
    /* The square's .dm arrives: the square, its targeted holes and the micrographs whose
     * exposure id it gives are emitted again, nothing else. */
    feed(m, S1 "/Metadata/GridSquare_1001.dm");
    assert_int_equal(model_flush(m), 0);
    size_t squares = 0, micrographs = 0, others = 0;
    for (size_t i = 0; i < got.nbatch; i++) {
        if (strncmp(got.batch[i], "gridsquare ", 11) == 0)
            squares++;
        else if (strncmp(got.batch[i], "micrograph ", 11) == 0)
            micrographs++;
        else if (strncmp(got.batch[i], "foilhole ", 9) != 0)
            others++;
    }
    assert_int_equal(squares, 1);
    assert_int_equal(others, 0);
    assert_true(micrographs >= 1);
    struct folded want = {0};
    scan_fold(&want);
    assert_same_entities(&want, &got);
    fold_free(&want);
    for (size_t i = 0; i < n; i++)
        free(files[i]);
    free(files);
    model_free(m);
    fold_free(&got);
}

static void test_model__unparseable_square_file_still_makes_the_square(void **state)
{
    (void)state;
    struct folded got = {0};
    struct model *m = new_model(&got);
    feed(m, S1 "/EpuSession.dm");
    struct fsio_stat st = {0};
    assert_int_equal(model_file(m,
                                S1 "/Images-Disc1/GridSquare_7777/GridSquare_20250101_101000.xml",
                                NULL, EPU_KIND_GRIDSQUARE_IMAGE, NULL, &st),
                     0);
    assert_int_equal(model_flush(m), 0);
    const char *d = fold_get(&got, "gridsquare {\"session_id\":800001,\"gridsquare_id\":7777}");
    assert_non_null(d);
    assert_non_null(strstr(d, "\"in_session_list\":false"));
    assert_non_null(strstr(d, "\"image\":null"));
    model_free(m);
    fold_free(&got);
}

static struct model *new_model_retracting(struct folded *f)
{
    struct model_callbacks cb = {on_emit, on_retract, on_load, NULL, f, false, false, NULL};
    struct model *m = model_new(VISIT, &cb);
    assert_non_null(m);
    return m;
}

static void feed_all(struct model *m, const char *except)
{
    char **files;
    size_t n = visit_files(&files);
    for (size_t i = 0; i < n; i++) {
        if (!except || strcmp(files[i], except) != 0)
            feed(m, files[i]);
        free(files[i]);
    }
    free(files);
    assert_int_equal(model_flush(m), 0);
}

/* A session directory that goes takes every entity it gave with it (one delete each), and
 * the model forgets it. */
static void test_model__forgotten_directory_retracts_its_entities(void **state)
{
    (void)state;
    struct folded got = {0};
    struct model *m = new_model_retracting(&got);
    feed_all(m, NULL);
    assert_int_equal(got.n, 14);
    size_t before = got.events;
    assert_int_equal(model_forget_dir(m, "no/such/dir"), 0);
    assert_int_equal(model_forget_dir(m, S1), 1);
    assert_int_equal(model_flush(m), 0);
    /* the atlas is not the directory's, nor the other (aborted) session directory */
    assert_int_equal(got.n, 2);
    assert_non_null(fold_get(&got, "aborted_session {\"path\":\"" ABORTED "\"}"));
    assert_int_equal(got.events - before, 12);
    /* The aborted directory going takes its aborted_session with it. */
    assert_int_equal(model_forget_dir(m, ABORTED), 1);
    assert_int_equal(got.n, 1);
    assert_non_null(strstr(got.key[0], "atlas "));
    struct model_stats st;
    model_stats(m, &st);
    assert_int_equal(st.squares + st.holes + st.micrographs, 0);
    /* Made again: read afresh, the same entities as before. */
    feed_all(m, NULL);
    struct folded want = {0};
    scan_fold(&want);
    assert_same_entities(&want, &got);
    fold_free(&want);
    model_free(m);
    fold_free(&got);
}

/* A square's .dm withdrawn (incomplete for good) leaves the entities a model gives when
 * that .dm exists but cannot be parsed, which is what scan gives for such a tree. */
static void test_model__withdrawn_dm_equals_an_unparseable_one(void **state)
{
    (void)state;
    const char *dm = S1 "/Metadata/GridSquare_1001.dm";
    struct folded got = {0}, want = {0};
    struct model *m = new_model_retracting(&got);
    feed_all(m, NULL);
    assert_int_equal(model_withdraw(m, dm, EPU_KIND_GRIDSQUARE_METADATA), 0);
    assert_int_equal(model_flush(m), 0);
    struct model *w = new_model_retracting(&want);
    struct fsio_stat st = {0};
    assert_int_equal(model_file(w, dm, NULL, EPU_KIND_GRIDSQUARE_METADATA, NULL, &st), 0);
    feed_all(w, dm);
    assert_true(want.n < 14); /* a hole known only from the .dm is gone */
    assert_same_entities(&want, &got);
    /* The .dm back: everything as before. */
    feed(m, dm);
    assert_int_equal(model_flush(m), 0);
    struct folded all = {0};
    scan_fold(&all);
    assert_same_entities(&all, &got);
    fold_free(&all);
    model_free(w);
    model_free(m);
    fold_free(&want);
    fold_free(&got);
}

/* The one exposure rule scan and watch share: a micrograph gets the id of the .dm entry
 * with its base name; a name listed twice, the first entry's; no entry, none. */
static void test_model__exposure_rule_first_listed_wins(void **state)
{
    (void)state;
    char a[] = "FoilHole_1_Data_2_3_20250101_000000", b[] = "FoilHole_1_Data_2_4_20250101_000001";
    struct epu_exposure ex[] = {
        {.exposure_id = {.v = 30}, .base_filename = b},
        {.exposure_id = {.v = 10}, .base_filename = a},
        {.exposure_id = {.v = 20}, .base_filename = a}, /* again: the first (10) wins */
        {.exposure_id = {.v = 40}, .base_filename = NULL},
    };
    struct epu_gridsquare_metadata g = {.exposures = ex, .exposure_count = 4};
    struct entity_exposure t[4];
    size_t n;
    assert_int_equal(entity_exposures_index(&g, t, &n), 0);
    assert_int_equal(n, 2);
    const struct entity_exposure *e =
        entity_exposure_find(t, n,
                             entity_micrograph_name("S/Images-Disc1/GridSquare_5/Data/"
                                                    "FoilHole_1_Data_2_3_20250101_000000.xml"));
    assert_non_null(e);
    assert_int_equal(e->exposure_id, 10);
    e = entity_exposure_find(t, n,
                             entity_micrograph_name("FoilHole_1_Data_2_4_20250101_000001.xml"));
    assert_non_null(e);
    assert_int_equal(e->exposure_id, 30);
    assert_null(entity_exposure_find(t, n, entity_micrograph_name("FoilHole_1_Data_2_5_x.xml")));
    assert_null(entity_exposure_find(t, 0, entity_micrograph_name(a)));
}

/* Where each emitted entity came from: key -> source path. */
static int on_emit_source(void *ctx, enum wire_type type, cJSON *key, cJSON *data,
                          const char *source, const struct fsio_stat *st)
{
    (void)st;
    char *k = key_string(wire_type_name(type), key);
    fold_put(ctx, k, strdup(source ? source : "-"));
    free(k);
    cJSON_Delete(key);
    cJSON_Delete(data);
    return 0;
}

static size_t count_value(const struct folded *f, const char *v)
{
    size_t n = 0;
    for (size_t i = 0; i < f->n; i++)
        n += strcmp(f->data[i], v) == 0;
    return n;
}

#define SQ1 S1 "/Images-Disc1/GridSquare_1001/Data/"
#define SQ1_DISC2 S1 "/Images-Disc2/GridSquare_1001/Data/"
#define MIC_A "FoilHole_2001_Data_4001_1_20250101_102100.xml"
#define MIC_B "FoilHole_2002_Data_4001_1_20250101_102200.xml"

/* A micrograph keeps its square's directory unless it has its own (model->micro_dirs):
 * one of square 1001 written under Images-Disc2 is emitted, saved and forgotten with its
 * own path, while the square's other one keeps the square's. */
static void test_model__a_squares_micrograph_in_another_directory(void **state)
{
    (void)state;
    struct folded got = {0};
    struct model_callbacks cb = {on_emit_source, NULL, on_load, NULL, &got, false, false, NULL};
    struct model *m = model_new(VISIT, &cb);
    assert_non_null(m);
    feed(m, S1 "/EpuSession.dm");
    feed(m, S1 "/Metadata/GridSquare_1001.dm");
    feed(m, SQ1 MIC_A);
    feed_file(m, SQ1_DISC2 MIC_B, SQ1 MIC_B, false);
    assert_int_equal(model_flush(m), 0);
    assert_int_equal(count_value(&got, SQ1 MIC_A), 1);
    assert_int_equal(count_value(&got, SQ1_DISC2 MIC_B), 1);
    assert_int_equal(count_value(&got, SQ1 MIC_B), 0);

    /* The snapshot names both paths as they were. */
    FILE *f = tmpfile();
    assert_int_equal(model_save(m, f), 0);
    rewind(f);
    char line[4096];
    size_t a = 0, b = 0;
    while (fgets(line, sizeof(line), f)) {
        a += strstr(line, SQ1 MIC_A) != NULL;
        b += strstr(line, SQ1_DISC2 MIC_B) != NULL;
    }
    assert_int_equal(a, 1);
    assert_int_equal(b, 1);
    fclose(f);

    /* The same name under the square's own directory is another micrograph. */
    struct model_stats st;
    model_stats(m, &st);
    assert_int_equal(st.micrographs, 2);
    feed(m, SQ1 MIC_B);
    model_stats(m, &st);
    assert_int_equal(st.micrographs, 3);
    /* The session forgotten: every micrograph goes, with its own directory (ASan sees
     * any left behind). */
    assert_int_equal(model_forget_dir(m, S1), 1);
    model_stats(m, &st);
    assert_int_equal(st.micrographs, 0);
    model_free(m);
    fold_free(&got);
}

/* emit_text: the data as the model wrote it. */
static int on_emit_text(void *ctx, enum wire_type type, cJSON *key, char *data_json,
                        const char *source, const struct fsio_stat *st)
{
    (void)source;
    (void)st;
    char *k = key_string(wire_type_name(type), key);
    fold_put(ctx, k, strdup(data_json));
    free(k);
    cJSON_Delete(key);
    cJSON_free(data_json);
    return 0;
}

/* Entities the model writes as text (holes with their image part, micrographs with their
 * worker's fields) are byte for byte the ones it prints from objects; and some were. */
static void test_model__text_and_object_emission_agree(void **state)
{
    (void)state;
    struct folded objects = {0}, texts = {0};
    struct model *a = new_model(&objects);
    feed_all(a, NULL);
    struct model_callbacks cb = {on_emit, NULL, on_load, NULL, &texts, false, false, on_emit_text};
    struct model *b = model_new(VISIT, &cb);
    assert_non_null(b);
    /* As the watch feeds it: micrographs with the fields their parse worker wrote. */
    char **files;
    size_t n = visit_files(&files);
    for (size_t i = 0; i < n; i++) {
        feed_file(b, files[i], files[i], true);
        free(files[i]);
    }
    free(files);
    assert_int_equal(model_flush(b), 0);
    assert_same_entities(&objects, &texts);
    size_t holes = 0;
    for (size_t i = 0; i < texts.n; i++)
        holes += strncmp(texts.key[i], "foilhole ", 9) == 0 && strstr(texts.data[i], "\"image\":{");
    assert_true(holes >= 1);
    model_free(a);
    model_free(b);
    fold_free(&objects);
    fold_free(&texts);
}

/* ---- snapshots: model_save() and model_restore() with a borrowing caller ---- */

/* The caller's stable copies of the paths it fed (the watch's journal, here a table). */
struct names {
    char *rel[128];
    size_t n;
    /* what model_restore() asked, in order: 'h' hint (step 0), 'g' step 1, 'p' path() */
    char kind[512];
    size_t idx[512];
    size_t nlog;
    size_t hinted, stepped, asked;
    /* what snap_load() does to a session file it reads: its id moved by this, or unset */
    int64_t id_delta;
    bool id_unset;
};

static const char *names_add(struct names *t, const char *rel)
{
    assert_true(t->n < 128);
    t->rel[t->n] = strdup(rel);
    return strrchr(t->rel[t->n++], '/') + 1;
}

static size_t names_find(const struct names *t, const char *rel)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->rel[i], rel) == 0)
            return i;
    fail_msg("model_restore asked for %s, which was never fed", rel);
    return 0;
}

static void names_log(struct names *t, char kind, size_t i)
{
    if (t->nlog < 512) {
        t->kind[t->nlog] = kind;
        t->idx[t->nlog++] = i;
    }
}

static const char *snap_path(void *ctx, const char *rel)
{
    struct names *t = ctx;
    size_t i = names_find(t, rel);
    names_log(t, 'p', i);
    t->asked++;
    return strrchr(t->rel[i], '/') + 1;
}

static uint64_t snap_prefetch(void *ctx, const char *rel, int step, uint64_t token)
{
    struct names *t = ctx;
    if (step == 1) {
        assert_null(rel);
        assert_true(token >= 1 && token <= t->n);
        names_log(t, 'g', (size_t)token - 1);
        t->stepped++;
        return token;
    }
    size_t i = names_find(t, rel);
    names_log(t, 'h', i);
    t->hinted++;
    return i + 1;
}

static struct epu_doc *snap_load(void *ctx, const char *rel, enum epu_kind kind,
                                 struct fsio_stat *st)
{
    const struct names *t = ctx;
    struct epu_doc *doc = load_rel(rel, kind, st);
    if (doc && kind == EPU_KIND_SESSION) {
        doc->u.session.session_id.v += t->id_delta;
        if (t->id_unset) { /* as the parser leaves a file without <Id> */
            doc->u.session.session_id.set = false;
            doc->u.session.session_id.v = 0;
        }
    }
    return doc;
}

static size_t retracts, retracts_other; /* under session 800001, and others */

static int count_retract(void *ctx, enum wire_type type, cJSON *key, const char *source)
{
    (void)ctx, (void)type, (void)source;
    char *k = cJSON_PrintUnformatted(key);
    if (strstr(k, "\"session_id\":800001"))
        retracts++;
    else
        retracts_other++;
    cJSON_free(k);
    cJSON_Delete(key);
    return 0;
}

/* As the watch makes it: borrowing names, and retracting (so micrographs keep their
 * uuid, and the snapshot has it). */
static struct model *new_borrowing(struct folded *f)
{
    struct model_callbacks cb = {on_emit, count_retract, on_load, NULL, f, true, true, NULL};
    struct model *m = model_new(VISIT, &cb);
    assert_non_null(m);
    return m;
}

static char *save_text(struct model *m, size_t *len)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    assert_int_equal(model_save(m, f), 0);
    long n = ftell(f);
    assert_true(n > 0);
    rewind(f);
    char *text = malloc((size_t)n + 1);
    assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
    text[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return text;
}

static int restore_text(struct model *m, const char *text, size_t len,
                        const struct model_restore_cb *cb)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    rewind(f);
    int rc = model_restore(m, f, cb);
    fclose(f);
    return rc;
}

static int by_string(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The same records (a model's maps keep no order of insertion, so a restored model may
 * write them in another order), and the end record last. */
static void assert_same_lines(const char *got, const char *want)
{
    char *g = strdup(got), *w = strdup(want);
    char *gl[256], *wl[256];
    size_t ng = 0, nw = 0;
    for (char *p = strtok(g, "\n"); p && ng < 256; p = strtok(NULL, "\n"))
        gl[ng++] = p;
    for (char *p = strtok(w, "\n"); p && nw < 256; p = strtok(NULL, "\n"))
        wl[nw++] = p;
    assert_int_equal(ng, nw);
    assert_string_equal(gl[ng - 1], "E");
    qsort(gl, ng, sizeof(*gl), by_string);
    qsort(wl, nw, sizeof(*wl), by_string);
    for (size_t i = 0; i < ng; i++)
        assert_string_equal(gl[i], wl[i]);
    free(g);
    free(w);
}

/* A snapshot of more records than model_restore() reads ahead (40 micrographs more than
 * the visit has; their names and the foil-hole images' are borrowed) restores to a model that saves
 * the same records, with and without hints; every borrowed path was hinted before it was
 * asked for; a session file whose id changed since stands in with the old id, so that
 * taking it in again moves the directory to the new id; a snapshot cut anywhere
 * (at a line end, inside a line, before its end record) is refused as truncated and
 * leaves nothing behind (ASan). */
static void test_model__snapshot_restores_what_was_saved_and_refuses_a_cut_one(void **state)
{
    (void)state;
    struct folded got = {0};
    struct names fed = {0};
    struct model *m = new_borrowing(&got);
    char **files;
    size_t n = visit_files(&files);
    for (size_t i = 0; i < n; i++) {
        struct tree_loc loc;
        assert_int_equal(tree_locate(files[i], &loc), 0);
        free(loc.session_dir);
        struct fsio_stat st;
        struct epu_doc *doc = load_rel(files[i], loc.kind, &st);
        assert_non_null(doc);
        assert_int_equal(model_file(m, files[i], names_add(&fed, files[i]), loc.kind, doc, &st), 0);
        free(files[i]);
    }
    free(files);
    for (int i = 0; i < 40; i++) {
        char rel[256];
        snprintf(rel, sizeof(rel), "%sFoilHole_%d_Data_4001_%d_20250101_1023%02d.xml", SQ1,
                 2300 + i, i + 1, i);
        struct fsio_stat st;
        struct epu_doc *doc = load_rel(SQ1 MIC_B, EPU_KIND_MICROGRAPH, &st);
        assert_non_null(doc);
        assert_int_equal(model_file(m, rel, names_add(&fed, rel), EPU_KIND_MICROGRAPH, doc, &st),
                         0);
    }
    assert_int_equal(model_flush(m), 0);
    size_t len;
    char *text = save_text(m, &len);
    size_t lines = 0, borrowed = 0;
    for (const char *p = text; *p; p = strchr(p, '\n') + 1) {
        lines++;
        borrowed +=
            strncmp(p, "M\t", 2) == 0 || (strncmp(p, "H\t", 2) == 0 && strstr(p, "/FoilHoles/") &&
                                          strstr(p, "/FoilHoles/") < strchr(p, '\n'));
    }
    if (borrowed < 40) /* far more than the 16 read ahead */
        fail_msg("%zu borrowed paths, not more than read ahead", borrowed);

    /* Whole, with hints: the same text again, each path hinted before it was asked for. */
    struct folded none = {0};
    struct model *r = new_borrowing(&none);
    struct model_restore_cb cb = {snap_load, snap_path, &fed, snap_prefetch};
    assert_int_equal(restore_text(r, text, len, &cb), 0);
    assert_int_equal(model_dirty(r), 0);
    assert_int_equal(none.events, 0); /* what was restored was emitted before */
    size_t len2;
    char *again = save_text(r, &len2);
    assert_int_equal(len2, len);
    assert_same_lines(again, text);
    free(again);
    model_free(r);
    assert_int_equal(fed.asked, borrowed);
    assert_int_equal(fed.hinted, borrowed);
    assert_true(fed.stepped + 8 >= borrowed); /* all but the last few lines' */
    for (size_t k = 0; k < fed.nlog; k++) {
        if (fed.kind[k] != 'p')
            continue;
        bool hinted = false;
        for (size_t e = 0; e < k && !hinted; e++)
            hinted = fed.kind[e] == 'h' && fed.idx[e] == fed.idx[k];
        if (!hinted)
            fail_msg("%s asked for before its hint", fed.rel[fed.idx[k]]);
    }

    /* Without hints (a caller that has none): the same. */
    r = new_borrowing(&none);
    struct model_restore_cb plain_cb = {snap_load, snap_path, &fed, NULL};
    fed.hinted = 0;
    assert_int_equal(restore_text(r, text, len, &plain_cb), 0);
    assert_int_equal(fed.hinted, 0);
    again = save_text(r, &len2);
    assert_same_lines(again, text);
    free(again);
    model_free(r);

    /* The session file now says another id, or none (rewritten while the agent was down,
     * or taken in by a run killed after the snapshot): the restored session stands in
     * with the snapshot's id (it saves the same records), and the file handed over again
     * is an id change as live: the old id's entities are deleted, the directory's come
     * again under the new one. S records without the id (7 fields, format 2, which the
     * watch no longer reads) are malformed. */
    for (int c = 1; c < 3; c++) {
        fed.id_delta = c == 1 ? 1 : 0;
        fed.id_unset = c == 2;
        struct folded moved = {0};
        struct model_callbacks mcb = {on_emit, count_retract, on_load, NULL,
                                      &moved,  true,          true,    NULL};
        r = model_new(VISIT, &mcb);
        assert_non_null(r);
        assert_int_equal(restore_text(r, text, len, &cb), 0);
        again = save_text(r, &len2);
        assert_same_lines(again, text);
        free(again);
        struct fsio_stat st;
        struct epu_doc *doc = snap_load(&fed, S1 "/EpuSession.dm", EPU_KIND_SESSION, &st);
        assert_non_null(doc);
        retracts = retracts_other = 0;
        assert_int_equal(model_file(r, S1 "/EpuSession.dm", NULL, EPU_KIND_SESSION, doc, &st), 0);
        assert_int_equal(model_flush(r), 0);
        /* the session and its squares, holes and micrographs, under 800001 */
        size_t in_s1 = 1, real = 1;
        for (const char *p = text; *p; p = strchr(p, '\n') + 1) {
            bool q = strncmp(p, "Q\t" S1 "\t", strlen(S1) + 3) == 0 ||
                     strncmp(p, "H\t" S1 "\t", strlen(S1) + 3) == 0;
            bool mic = strncmp(p, "M\t" S1 "/", strlen(S1) + 3) == 0;
            char line[1024];
            size_t l = (size_t)(strchr(p, '\n') - p);
            snprintf(line, sizeof(line), "%.*s", (int)l, p);
            in_s1 += q || mic;
            real += q || (mic && !strstr(line, "/FoilHole_23")); /* made up: no file */
        }
        assert_true(in_s1 > 40);
        assert_int_equal(retracts, in_s1);
        assert_int_equal(retracts_other, 0);
        retracts = 0;
        size_t under_new = 0;
        for (size_t i = 0; i < moved.n; i++) {
            assert_null(strstr(moved.key[i], "800001"));
            under_new += strstr(moved.key[i], "\"session_id\":800002") != NULL;
        }
        /* with an id: every entity again (micrographs read again through `load`: the 40
         * made up have no file, so they wait for one); without: held, none emitted */
        assert_int_equal(under_new, c == 1 ? real : 0);
        fold_free(&moved);
        model_free(r);
    }
    fed.id_delta = 0;
    fed.id_unset = false;
    char *old_form = malloc(len + 1);
    size_t olen = 0, ids = 0;
    for (const char *p = text; *p; p = strchr(p, '\n') + 1) {
        size_t l = (size_t)(strchr(p, '\n') - p);
        if (strncmp(p, "S\t", 2) == 0) {
            const char *tab = p + l;
            while (tab[-1] != '\t')
                tab--;
            ids += tab[0] != '-';
            l = (size_t)(tab - 1 - p);
        }
        memcpy(old_form + olen, p, l);
        olen += l;
        old_form[olen++] = '\n';
    }
    assert_true(olen < len);
    assert_int_equal(ids, 1); /* the visit's session; the aborted one has none */
    r = new_borrowing(&none);
    assert_int_equal(restore_text(r, old_form, olen, &cb), -EM_EMALFORMED);
    model_free(r);
    free(old_form);

    /* Cut: at every line end but the last (no end record), one byte into and one byte
     * before the end of every line. */
    size_t cuts = 0;
    for (const char *p = text; *p; p = strchr(p, '\n') + 1) {
        size_t start = (size_t)(p - text), end = (size_t)(strchr(p, '\n') - text) + 1;
        size_t at[] = {start, start + 1, end - 1};
        for (size_t c = 0; c < 3; c++) {
            if (at[c] >= len)
                continue;
            r = new_borrowing(&none);
            int rc = restore_text(r, text, at[c], &cb);
            if (rc != -EM_ETRUNCATED)
                fail_msg("a snapshot cut at byte %zu of %zu: %d, not truncated", at[c], len, rc);
            model_free(r);
            cuts++;
        }
    }
    assert_true(cuts >= 3 * lines - 2);
    assert_int_equal(none.events, 0);
    free(text);
    model_free(m);
    for (size_t i = 0; i < fed.n; i++)
        free(fed.rel[i]);
    fold_free(&got);
    fold_free(&none);
}

int main(void)
{
    epu_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model__exposure_rule_first_listed_wins),
        cmocka_unit_test(test_model__a_squares_micrograph_in_another_directory),
        cmocka_unit_test(test_model__text_and_object_emission_agree),
        cmocka_unit_test(test_model__any_order_gives_scans_entities),
        cmocka_unit_test(test_model__orphans_wait_for_the_session_id),
        cmocka_unit_test(test_model__a_change_re_emits_only_what_it_changes),
        cmocka_unit_test(test_model__unparseable_square_file_still_makes_the_square),
        cmocka_unit_test(test_model__forgotten_directory_retracts_its_entities),
        cmocka_unit_test(test_model__withdrawn_dm_equals_an_unparseable_one),
        cmocka_unit_test(test_model__snapshot_restores_what_was_saved_and_refuses_a_cut_one),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    epu_cleanup();
    return rc;
}
