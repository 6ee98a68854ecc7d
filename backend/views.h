/* views.h — what a person asks of the store, as rows: the answers of `em-backend query`
 * and of serve's HTTP API, made by one piece of code so that the two always agree.
 *
 * A view runs its SQL (both dialects), gathers the rows as text, then adds what SQL does
 * not give on both stores alike (rates, states, stalls, liveness). rows_object() turns a
 * row into the JSON object `query --json` prints and the API returns.
 */
#ifndef EM_VIEWS_H
#define EM_VIEWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <cjson/cJSON.h>

struct store;

enum view_kind {
    VIEW_SESSIONS,
    VIEW_SQUARES,     /* one session's grid squares */
    VIEW_FOILHOLES,   /* one square's foil holes */
    VIEW_MICROGRAPHS, /* newest first, or a page after a cursor */
    VIEW_ATLASES,
    VIEW_DATASETS,
    VIEW_AGENTS,
    VIEW_TILES, /* one atlas's tiles */
    VIEW_COUNT
};

/* When a session counts as stalled: no micrograph for longer than `factor` × the median
 * interval between its recent micrographs, and at least `min_s` seconds. After `idle_s`
 * without one it is idle (nobody is coming back to it). */
struct stall_rule {
    double factor, min_s, idle_s;
};
#define STALL_FACTOR 5.0
#define STALL_MIN_S 300.0
#define STALL_IDLE_S (12 * 3600.0)

struct view_args {
    const char *session, *square; /* ids (checked by the caller: whole numbers) */
    const char *atlas;            /* tiles: the atlas's id */
    const char *gridsquare;       /* micrographs: only this square's (or NULL) */
    const char *since;            /* micrographs: the page after this cursor (or NULL) */
    long limit;                   /* micrographs: at most this many (> 0) */
    double now;                   /* Unix seconds: states, stalls and liveness are judged at */
    struct stall_rule stall;
};

/* The gathered rows: names and values as text (NULL for SQL NULL). */
struct rows {
    int ncols;
    char **names;
    char ***vals; /* per row, per column */
    size_t n, cap;
    int err;
};

/* Runs a view into `r` (empty: {0}). Returns 0; 1 when the session or square asked for is
 * not in the store (`reason` says which, for a person); or a negative EM_E* with a reason.
 * rows_free() either way. */
int view_rows(struct store *s, enum view_kind k, const struct view_args *a, struct rows *r,
              char *reason, size_t cap);

/* The .jpg EPU writes beside a grid square's newest square image, and beside an atlas
 * tile: its path relative to the agent's watched root, as the events gave the manifests'
 * paths (the files themselves are never in the store). Returns 0; 1 when the store knows
 * no such square, tile or image (`reason` says which); or a negative EM_E*. */
int view_square_jpeg(struct store *s, const char *session, const char *square, char *path,
                     size_t pcap, char *reason, size_t cap);
int view_tile_jpeg(struct store *s, const char *atlas, const char *tile, char *path, size_t pcap,
                   char *reason, size_t cap);

/* Row `i` as the JSON object of `query --json`: counts and ids as numbers, flags as
 * booleans, the rest as strings. NULL when out of memory. */
cJSON *rows_object(const struct rows *r, size_t i);

/* The rows as an aligned table with a header line ("(nothing stored)" when none). */
void rows_print_table(const struct rows *r, FILE *f);

/* The value of column `name` in row `i`, or NULL. */
const char *rows_get(const struct rows *r, size_t i, const char *name);

void rows_free(struct rows *r);

/* The micrographs cursor of row `i` (acquired_at and uuid), for `next`; false if none. */
bool view_cursor(const struct rows *r, size_t i, char *buf, size_t cap);

/* "2025-01-01T10:21:00.1234567Z" (or with an offset, or a space) to Unix seconds. */
bool view_parse_time(const char *s, double *out);

#endif
