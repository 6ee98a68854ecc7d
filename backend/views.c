/* The store's views (views.h): the SQL of each, in both dialects, and what is added to
 * the rows after it. */
#include "views.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dynbuf.h"
#include "em_compat.h"
#include "em_error.h"
#include "store.h"

#define STALL_RECENT 21 /* micrographs whose intervals give the median */

/* `alias.data` at a JSON path, as text: SQLite json_extract, PostgreSQL #>>. `path` is
 * dotted ("target.state"). */
static void json_text(enum sql_dialect d, char *buf, size_t cap, const char *alias,
                      const char *path)
{
    if (d == SQL_POSTGRES) {
        char p[64];
        snprintf(p, sizeof(p), "%s", path);
        for (char *c = p; *c; c++)
            if (*c == '.')
                *c = ',';
        snprintf(buf, cap, "(%s.data #>> '{%s}')", alias, p);
    } else {
        snprintf(buf, cap, "json_extract(%s.data, '$.%s')", alias, path);
    }
}

static void sessions_sql(enum sql_dialect d, char *sql, size_t cap)
{
    char started[160], image[160], hole_image[160], selected[200];
    json_text(d, image, sizeof(image), "g", "metadata.selected");
    snprintf(selected, sizeof(selected), "%s = %s", image, d == SQL_POSTGRES ? "'true'" : "1");
    json_text(d, started, sizeof(started), "s", "started_at");
    json_text(d, image, sizeof(image), "g", "image.image_uuid");
    json_text(d, hole_image, sizeof(hole_image), "f", "image.image_uuid");
    snprintf(
        sql, cap,
        "SELECT s.session_id, s.name, s.agent, %s AS started_at,"
        " (SELECT COUNT(*) FROM gridsquare g WHERE g.session_id = s.session_id AND g.deleted = 0)"
        " AS squares,"
        " (SELECT COUNT(*) FROM gridsquare g WHERE g.session_id = s.session_id AND g.deleted = 0"
        /* cheapest first: the square's own image, an exposure (an index), a hole image */
        "  AND (%s IS NOT NULL OR EXISTS"
        "  (SELECT 1 FROM micrograph m WHERE m.session_id = g.session_id AND m.gridsquare_id ="
        "  g.gridsquare_id AND m.deleted = 0) OR EXISTS (SELECT 1 FROM foilhole f WHERE"
        "  f.session_id = g.session_id AND f.gridsquare_id = g.gridsquare_id AND f.deleted = 0"
        "  AND %s IS NOT NULL))) AS imaged,"
        " (SELECT COUNT(*) FROM gridsquare g WHERE g.session_id = s.session_id AND g.deleted = 0"
        "  AND %s) AS squares_selected,"
        " (SELECT COUNT(*) FROM gridsquare g WHERE g.session_id = s.session_id AND g.deleted = 0"
        "  AND %s AND (g.state IS NULL OR g.state <> 'Completed'))"
        " AS squares_left,"
        " (SELECT COUNT(*) FROM foilhole f WHERE f.session_id = s.session_id AND f.deleted = 0)"
        " AS holes,"
        " (SELECT COUNT(DISTINCT m.foilhole_id) FROM micrograph m WHERE m.session_id ="
        " s.session_id AND m.deleted = 0) AS holes_exposed,"
        " (SELECT COUNT(*) FROM micrograph m WHERE m.session_id = s.session_id AND m.deleted = 0)"
        " AS micrographs,"
        " (SELECT MIN(m.acquired_at) FROM micrograph m WHERE m.session_id = s.session_id"
        "  AND m.deleted = 0) AS first_acquired,"
        " (SELECT MAX(m.acquired_at) FROM micrograph m WHERE m.session_id = s.session_id"
        "  AND m.deleted = 0) AS last_acquired,"
        " (SELECT MAX(x) FROM ("
        "   SELECT s.source_mtime AS x"
        "   UNION ALL SELECT MAX(g.source_mtime) FROM gridsquare g WHERE g.session_id ="
        "   s.session_id AND g.deleted = 0"
        "   UNION ALL SELECT MAX(f.source_mtime) FROM foilhole f WHERE f.session_id ="
        "   s.session_id AND f.deleted = 0"
        "   UNION ALL SELECT MAX(m.source_mtime) FROM micrograph m WHERE m.session_id ="
        "   s.session_id AND m.deleted = 0"
        " ) AS t) AS last_activity, s.atlas_id"
        " FROM session s WHERE s.deleted = 0 ORDER BY s.session_id",
        started, image, hole_image, selected, selected);
}

static void squares_sql(enum sql_dialect d, char *sql, size_t cap)
{
    char image[160], sel[160], x[160], y[160], w[160], h[160], iw[160], ih[160];
    json_text(d, image, sizeof(image), "g", "image.image_uuid");
    json_text(d, iw, sizeof(iw), "g", "image.image_width_px");
    json_text(d, ih, sizeof(ih), "g", "image.image_height_px");
    json_text(d, sel, sizeof(sel), "g", "metadata.selected");
    json_text(d, x, sizeof(x), "g", "atlas.center_x_px");
    json_text(d, y, sizeof(y), "g", "atlas.center_y_px");
    json_text(d, w, sizeof(w), "g", "atlas.width_px");
    json_text(d, h, sizeof(h), "g", "atlas.height_px");
    snprintf(sql, cap,
             "SELECT g.gridsquare_id, g.state, %s AS selected,"
             " CASE WHEN %s IS NOT NULL THEN 'yes' ELSE 'no' END AS has_image,"
             " (SELECT COUNT(*) FROM foilhole f WHERE f.session_id = g.session_id"
             "  AND f.gridsquare_id = g.gridsquare_id AND f.deleted = 0) AS holes,"
             " (SELECT COUNT(*) FROM micrograph m WHERE m.session_id = g.session_id"
             "  AND m.gridsquare_id = g.gridsquare_id AND m.deleted = 0) AS micrographs,"
             " g.source_mtime AS last_change, %s AS atlas_x, %s AS atlas_y, %s AS atlas_width,"
             " %s AS atlas_height, %s AS image_width, %s AS image_height"
             " FROM gridsquare g WHERE g.session_id = ? AND g.deleted = 0"
             " ORDER BY g.gridsquare_id",
             sel, image, x, y, w, h, iw, ih);
}

static void foilholes_sql(enum sql_dialect d, char *sql, size_t cap)
{
    char state[160], selected[160], near[160], image_at[160], x[160], y[160], dia[160];
    json_text(d, x, sizeof(x), "f", "target.pixel_x");
    json_text(d, y, sizeof(y), "f", "target.pixel_y");
    json_text(d, dia, sizeof(dia), "f", "target.diameter_px");
    json_text(d, state, sizeof(state), "f", "target.state");
    json_text(d, selected, sizeof(selected), "f", "target.selected");
    json_text(d, near, sizeof(near), "f", "target.is_near_grid_bar");
    json_text(d, image_at, sizeof(image_at), "f", "image.acquired_at");
    snprintf(sql, cap,
             "SELECT f.foilhole_id, %s AS state, %s AS selected, %s AS near_grid_bar,"
             " %s AS imaged_at,"
             " (SELECT COUNT(*) FROM micrograph m WHERE m.session_id = f.session_id"
             "  AND m.foilhole_id = f.foilhole_id AND m.deleted = 0) AS micrographs,"
             " %s AS x, %s AS y, %s AS diameter"
             " FROM foilhole f WHERE f.session_id = ? AND f.gridsquare_id = ? AND f.deleted = 0"
             " ORDER BY f.foilhole_id",
             state, selected, near, image_at, x, y, dia);
}

static void atlases_sql(enum sql_dialect d, char *sql, size_t cap)
{
    char at[160], squares[160], tiles[160], path[160];
    json_text(d, at, sizeof(at), "a", "acquired_at");
    json_text(d, squares, sizeof(squares), "a", "gridsquare_count");
    json_text(d, tiles, sizeof(tiles), "a", "tile_count");
    json_text(d, path, sizeof(path), "a", "path");
    snprintf(sql, cap,
             "SELECT a.atlas_id, a.name, %s AS acquired_at, %s AS squares, %s AS tiles,"
             " (SELECT COUNT(*) FROM session s WHERE s.atlas_id = a.atlas_id AND s.deleted = 0)"
             " AS sessions, %s AS path"
             " FROM atlas a WHERE a.deleted = 0 ORDER BY a.atlas_id",
             at, squares, tiles, path);
}

/* One atlas's tiles, where they sit on it (atlas pixels, as the squares' atlas_x and
 * atlas_y) and the base name of their image files. */
static void tiles_sql(enum sql_dialect d, char *sql, size_t cap)
{
    if (d == SQL_POSTGRES)
        snprintf(sql, cap,
                 "SELECT (t.v->>'tile_id')::bigint AS tile_id, t.v->>'x_px' AS x,"
                 " t.v->>'y_px' AS y, t.v->>'width_px' AS width, t.v->>'height_px' AS height,"
                 " t.v->>'base_filename' AS base_filename"
                 " FROM atlas a CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN"
                 " jsonb_typeof(a.data->'tiles') = 'array' THEN a.data->'tiles' ELSE"
                 " '[]'::jsonb END) AS t(v)"
                 " WHERE a.atlas_id = ? AND a.deleted = 0 ORDER BY 1");
    else
        snprintf(sql, cap,
                 "SELECT json_extract(t.value, '$.tile_id') AS tile_id,"
                 " json_extract(t.value, '$.x_px') AS x, json_extract(t.value, '$.y_px') AS y,"
                 " json_extract(t.value, '$.width_px') AS width,"
                 " json_extract(t.value, '$.height_px') AS height,"
                 " json_extract(t.value, '$.base_filename') AS base_filename"
                 " FROM atlas a, json_each(CASE WHEN json_type(a.data, '$.tiles') = 'array'"
                 " THEN json_extract(a.data, '$.tiles') ELSE '[]' END) AS t"
                 " WHERE a.atlas_id = ? AND a.deleted = 0 ORDER BY 1");
}

/* Loader output the agents saw, with its job (matched by the record's id) and what the
 * data's own header says. */
static void datasets_sql(enum sql_dialect d, char *sql, size_t cap)
{
    char job[160], vol[160], shape[160], type[160], mism[200];
    json_text(d, job, sizeof(job), "d", "job_id");
    json_text(d, vol, sizeof(vol), "d", "volume");
    json_text(d, shape, sizeof(shape), "d", "header.volume_shape");
    json_text(d, type, sizeof(type), "d", "header.data_type");
    snprintf(mism, sizeof(mism), "%s",
             d == SQL_POSTGRES ? "jsonb_array_length(d.data->'mismatches')"
                               : "json_array_length(d.data, '$.mismatches')");
    snprintf(sql, cap,
             "SELECT d.loader, d.dataset_id, d.status, %s AS job, j.status AS job_status,"
             " d.dir, %s AS volume, %s AS shape, %s AS data_type, %s AS mismatches, d.agent,"
             " d.emitted_at AS seen_at"
             " FROM dataset d LEFT JOIN job j ON j.dataset = d.dataset_id"
             " WHERE d.deleted = 0 ORDER BY d.emitted_at, d.loader, d.dataset_id",
             job, vol, shape, type, mism);
}

/* Aborted sessions (directories with EPU files but no usable EpuSession.dm) as rows of the
 * sessions table: no id, the path as the name. */
static const char aborted_sql[] =
    "SELECT NULL AS session_id, a.path AS name, a.agent, NULL AS started_at, NULL AS squares,"
    " NULL AS imaged, NULL AS squares_selected, NULL AS squares_left, NULL AS holes, NULL AS "
    "holes_exposed, NULL AS micrographs,"
    " NULL AS first_acquired, NULL AS last_acquired, a.emitted_at AS last_activity,"
    " NULL AS atlas_id"
    " FROM aborted_session a WHERE a.deleted = 0 ORDER BY a.agent, a.path";

static const char session_exists_sql[] =
    "SELECT COUNT(*) FROM session WHERE session_id = ? AND deleted = 0";
static const char atlas_exists_sql[] =
    "SELECT COUNT(*) FROM atlas WHERE atlas_id = ? AND deleted = 0";
static const char square_exists_sql[] =
    "SELECT COUNT(*) FROM gridsquare WHERE session_id = ? AND gridsquare_id = ? AND deleted = 0";

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int collect(void *ctx, int ncols, const char *const *names, const char *const *vals)
{
    struct rows *r = ctx;
    if (!r->names) {
        r->ncols = ncols;
        r->names = calloc((size_t)ncols, sizeof(*r->names));
        if (!r->names)
            return r->err = -EM_ENOMEM;
        for (int c = 0; c < ncols; c++)
            r->names[c] = strdup(names[c]);
    }
    char ***v = em_grow(r->vals, r->n, &r->cap, sizeof(*v), 64);
    if (!v)
        return r->err = -EM_ENOMEM;
    r->vals = v;
    char **row = calloc((size_t)ncols, sizeof(*row));
    if (!row)
        return r->err = -EM_ENOMEM;
    for (int c = 0; c < ncols; c++)
        row[c] = dup_or_null(vals[c]);
    r->vals[r->n++] = row;
    return 0;
}

static bool numeric(const char *name)
{
    static const char *const counts[] = {"squares",
                                         "imaged",
                                         "holes",
                                         "holes_exposed",
                                         "micrographs",
                                         "sessions",
                                         "tiles",
                                         "per_hour",
                                         "job",
                                         "mismatches",
                                         "squares_selected",
                                         "squares_left",
                                         "stall_after_s",
                                         "atlas_x",
                                         "atlas_y",
                                         "atlas_width",
                                         "atlas_height",
                                         "image_width",
                                         "image_height",
                                         "width",
                                         "height",
                                         "x",
                                         "y",
                                         "diameter",
                                         "defocus_m",
                                         "dose",
                                         "exposure_time_s",
                                         "interval_s",
                                         "files_watched",
                                         "directories_watched",
                                         "outbox_events",
                                         "lag_seconds",
                                         "errors",
                                         "events"};
    if (strcmp(name, "micrograph_uuid") == 0 || strcmp(name, "dataset_id") == 0)
        return false;
    if (strstr(name, "_id"))
        return true;
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
        if (strcmp(name, counts[i]) == 0)
            return true;
    return false;
}

static bool flag_column(const char *name)
{
    return strcmp(name, "selected") == 0 || strcmp(name, "near_grid_bar") == 0 ||
           strcmp(name, "has_image") == 0 || strcmp(name, "stalled") == 0 ||
           strcmp(name, "alive") == 0;
}

/* SQLite gives JSON booleans as 1/0, PostgreSQL as true/false: both become yes/no. */
static void normalize_flags(struct rows *r)
{
    for (int c = 0; c < r->ncols; c++) {
        if (!flag_column(r->names[c]))
            continue;
        for (size_t i = 0; i < r->n; i++) {
            char *v = r->vals[i][c];
            if (!v)
                continue;
            const char *yn = strcmp(v, "1") == 0 || strcmp(v, "true") == 0    ? "yes"
                             : strcmp(v, "0") == 0 || strcmp(v, "false") == 0 ? "no"
                                                                              : NULL;
            if (yn) {
                free(v);
                r->vals[i][c] = strdup(yn);
            }
        }
    }
}

/* "2025-01-01T10:21:00.1234567Z" (or with a +HH:MM offset, or a space) to Unix seconds;
 * false when it is not such a time. */
bool view_parse_time(const char *s, double *out)
{
    int y, mo, d, h, mi;
    double sec;
    char sep;
    int n = 0;
    if (!s || sscanf(s, "%4d-%2d-%2d%c%2d:%2d:%lf%n", &y, &mo, &d, &sep, &h, &mi, &sec, &n) < 7 ||
        (sep != 'T' && sep != ' '))
        return false;
    /* days since 1970-01-01 of a civil date (proleptic Gregorian) */
    long yy = mo <= 2 ? y - 1 : y;
    long era = (yy >= 0 ? yy : yy - 399) / 400;
    long yoe = yy - era * 400;
    long doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    long days = era * 146097 + doe - 719468;
    double t = (double)days * 86400.0 + h * 3600.0 + mi * 60.0 + sec;
    const char *z = s + n;
    /* An offset "+HH:MM" (digits checked: STYLE bans atoi's silent zero). */
    if ((*z == '+' || *z == '-') && strlen(z) >= 6 && z[1] >= '0' && z[1] <= '9' && z[2] >= '0' &&
        z[2] <= '9' && z[3] == ':' && z[4] >= '0' && z[4] <= '9' && z[5] >= '0' && z[5] <= '9') {
        int oh = (z[1] - '0') * 10 + (z[2] - '0'), om = (z[4] - '0') * 10 + (z[5] - '0');
        t -= (*z == '+' ? 1 : -1) * (oh * 3600.0 + om * 60.0);
    }
    *out = t;
    return true;
}

static int add_column(struct rows *r, const char *name)
{
    char **names = realloc(r->names, (size_t)(r->ncols + 1) * sizeof(*names));
    if (!names)
        return -EM_ENOMEM;
    r->names = names;
    if (!(r->names[r->ncols] = strdup(name)))
        return -EM_ENOMEM;
    for (size_t i = 0; i < r->n; i++) {
        char **row = realloc(r->vals[i], (size_t)(r->ncols + 1) * sizeof(*row));
        if (!row)
            return -EM_ENOMEM;
        row[r->ncols] = NULL;
        r->vals[i] = row;
    }
    r->ncols++;
    return 0;
}

static int column(const struct rows *r, const char *name)
{
    for (int c = 0; c < r->ncols; c++)
        if (strcmp(r->names[c], name) == 0)
            return c;
    return -1;
}

static const char agents_sql[] =
    "SELECT a.agent, %s AS host, %s AS version, %s AS os, %s AS reported_state,"
    " %s AS started_at, a.emitted_at AS last_heartbeat, %s AS interval_s,"
    " %s AS files_watched, %s AS directories_watched, %s AS events, %s AS outbox_events,"
    " %s AS bus, %s AS lag_seconds, %s AS errors"
    " FROM agent a WHERE a.deleted = 0 ORDER BY a.agent";

static void agents_sql_of(enum sql_dialect d, char *sql, size_t cap)
{
    static const char *const fields[] = {"host",
                                         "version",
                                         "os",
                                         "state",
                                         "started_at",
                                         "interval_s",
                                         "files_watched",
                                         "directories_watched",
                                         "events",
                                         "outbox_events",
                                         "bus",
                                         "lag_seconds",
                                         "errors"};
    char f[13][160];
    for (size_t i = 0; i < 13; i++)
        json_text(d, f[i], sizeof(f[i]), "a", fields[i]);
    snprintf(sql, cap, agents_sql, f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9],
             f[10], f[11], f[12]);
}

/* micrographs: newest first (no cursor), or the page after a cursor in acquisition order. */
static void micrographs_sql(enum sql_dialect d, const struct view_args *a, char *sql, size_t cap,
                            const char **params, size_t *np, char *cur_at, char *cur_uuid,
                            size_t ccap, char *limit, size_t lcap)
{
    char defocus[160], dose[160], exposure[160];
    json_text(d, defocus, sizeof(defocus), "m", "defocus_m");
    json_text(d, dose, sizeof(dose), "m", "dose");
    json_text(d, exposure, sizeof(exposure), "m", "exposure_time_s");
    int n = snprintf(sql, cap,
                     "SELECT m.session_id, m.micrograph_uuid, m.gridsquare_id, m.foilhole_id,"
                     " m.acquired_at, %s AS defocus_m, %s AS dose, %s AS exposure_time_s"
                     " FROM micrograph m WHERE m.deleted = 0",
                     defocus, dose, exposure);
    *np = 0;
    if (a->session) {
        n += snprintf(sql + n, cap - (size_t)n, " AND m.session_id = ?");
        params[(*np)++] = a->session;
    }
    if (a->gridsquare) {
        n += snprintf(sql + n, cap - (size_t)n, " AND m.gridsquare_id = ?");
        params[(*np)++] = a->gridsquare;
    }
    if (a->since) {
        const char *comma = strchr(a->since, ',');
        snprintf(cur_at, ccap, "%.*s", comma ? (int)(comma - a->since) : 0, a->since);
        snprintf(cur_uuid, ccap, "%s", comma ? comma + 1 : "");
        n += snprintf(sql + n, cap - (size_t)n,
                      " AND (COALESCE(m.acquired_at, '') > ? OR (COALESCE(m.acquired_at, '') = ?"
                      " AND m.micrograph_uuid > ?))"
                      " ORDER BY COALESCE(m.acquired_at, ''), m.micrograph_uuid LIMIT ?");
        params[(*np)++] = cur_at;
        params[(*np)++] = cur_at;
        params[(*np)++] = cur_uuid;
    } else {
        n += snprintf(sql + n, cap - (size_t)n,
                      " ORDER BY m.acquired_at DESC, m.micrograph_uuid LIMIT ?");
    }
    (void)n;
    snprintf(limit, lcap, "%ld", a->limit > 0 ? a->limit : 20);
    params[(*np)++] = limit;
}

bool view_cursor(const struct rows *r, size_t i, char *buf, size_t cap)
{
    const char *at = rows_get(r, i, "acquired_at"), *u = rows_get(r, i, "micrograph_uuid");
    if (!u)
        return false;
    snprintf(buf, cap, "%s,%s", at ? at : "", u);
    return true;
}

const char *rows_get(const struct rows *r, size_t i, const char *name)
{
    int c = column(r, name);
    return c >= 0 && i < r->n ? r->vals[i][c] : NULL;
}

static int set(struct rows *r, size_t i, int c, const char *v)
{
    free(r->vals[i][c]);
    r->vals[i][c] = v ? strdup(v) : NULL;
    return !v || r->vals[i][c] ? 0 : -EM_ENOMEM;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* When the session's recent micrographs were written (their files' times, else EPU's
 * acquisition times): the newest, and the median interval between them (0: fewer than
 * two). */
struct recent {
    double t[STALL_RECENT];
    size_t n;
};

static int recent_row(void *ctx, int ncols, const char *const *names, const char *const *vals)
{
    (void)names;
    struct recent *x = ctx;
    double t;
    if (ncols >= 1 && x->n < STALL_RECENT && view_parse_time(vals[0], &t))
        x->t[x->n++] = t;
    return 0;
}

static int recent_times(struct store *s, const char *session, double *last, double *median,
                        char *reason, size_t cap)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT COALESCE(m.source_mtime, m.acquired_at) FROM micrograph m WHERE"
             " m.session_id = ? AND m.deleted = 0 ORDER BY m.acquired_at DESC LIMIT %d",
             STALL_RECENT);
    struct recent x = {.n = 0};
    const char *p[1] = {session};
    int rc = store_query(s, sql, 1, p, recent_row, &x, reason, cap);
    if (rc < 0)
        return rc;
    *last = 0;
    *median = 0;
    if (x.n == 0)
        return 0;
    qsort(x.t, x.n, sizeof(x.t[0]), cmp_double);
    *last = x.t[x.n - 1];
    if (x.n < 2)
        return 0;
    double gaps[STALL_RECENT];
    for (size_t i = 1; i < x.n; i++)
        gaps[i - 1] = x.t[i] - x.t[i - 1];
    size_t ng = x.n - 1;
    qsort(gaps, ng, sizeof(gaps[0]), cmp_double);
    *median = ng % 2 ? gaps[ng / 2] : (gaps[ng / 2 - 1] + gaps[ng / 2]) / 2;
    return 0;
}

/* sessions: micrographs per hour between the first and the newest; when the newest was
 * written (last_seen); the state; whether it is stalled and after how long it would be. */
static int session_states(struct store *s, struct rows *r, const struct view_args *a, char *reason,
                          size_t cap)
{
    if (!r->names)
        return 0;
    int n = column(r, "micrographs"), first = column(r, "first_acquired"),
        last = column(r, "last_acquired"), left = column(r, "squares_left"),
        selected = column(r, "squares_selected");
    int rc;
    if ((rc = add_column(r, "per_hour")) < 0 || (rc = add_column(r, "last_seen")) < 0 ||
        (rc = add_column(r, "state")) < 0 || (rc = add_column(r, "stalled")) < 0 ||
        (rc = add_column(r, "stall_after_s")) < 0)
        return rc;
    int ph = r->ncols - 5, seen = r->ncols - 4, st = r->ncols - 3, stalled = r->ncols - 2,
        after = r->ncols - 1;
    for (size_t i = 0; i < r->n && rc == 0; i++) {
        char **row = r->vals[i];
        double t0, t1;
        long count = row[n] ? strtol(row[n], NULL, 10) : 0;
        char buf[96], when[32];
        if (!row[0]) { /* no session id: an aborted session */
            rc = set(r, i, st, "aborted (no EpuSession.dm)");
            continue;
        }
        if (view_parse_time(row[first], &t0) && view_parse_time(row[last], &t1) && count > 1 &&
            t1 > t0) {
            snprintf(buf, sizeof(buf), "%.1f", (double)(count - 1) * 3600.0 / (t1 - t0));
            if ((rc = set(r, i, ph, buf)) < 0)
                break;
        }
        double seen_at, median;
        if ((rc = recent_times(s, row[0], &seen_at, &median, reason, cap)) < 0)
            break;
        double threshold = a->stall.factor * median;
        if (threshold < a->stall.min_s)
            threshold = a->stall.min_s;
        snprintf(buf, sizeof(buf), "%.0f", threshold);
        rc = set(r, i, after, buf);
        bool is_stalled = false;
        if (rc == 0 && count == 0) {
            rc = set(r, i, st, "no exposures yet");
        } else if (rc == 0) {
            em_utc_text((time_t)seen_at, when, sizeof(when));
            rc = set(r, i, seen, when);
            long nleft = row[left] ? strtol(row[left], NULL, 10) : -1,
                 nsel = row[selected] ? strtol(row[selected], NULL, 10) : 0;
            double age = a->now - seen_at;
            if (nsel > 0 && nleft == 0)
                snprintf(buf, sizeof(buf), "finished");
            else if (age <= threshold)
                snprintf(buf, sizeof(buf), "acquiring");
            else if (age <= a->stall.idle_s) {
                snprintf(buf, sizeof(buf), "stalled since %s", when);
                is_stalled = true;
            } else
                snprintf(buf, sizeof(buf), "idle since %s", when);
            if (rc == 0)
                rc = set(r, i, st, buf);
        }
        if (rc == 0)
            rc = set(r, i, stalled, is_stalled ? "yes" : "no");
    }
    return rc;
}

/* agents: alive, stopped at, or silent since their last heartbeat. An agent is alive
 * while its last heartbeat is younger than three of its intervals (at least 90 s). */
static int agent_states(struct rows *r, double now)
{
    if (!r->names)
        return 0;
    int rs = column(r, "reported_state"), hb = column(r, "last_heartbeat"),
        iv = column(r, "interval_s");
    int rc;
    if ((rc = add_column(r, "status")) < 0 || (rc = add_column(r, "alive")) < 0)
        return rc;
    int st = r->ncols - 2, alive = r->ncols - 1;
    for (size_t i = 0; i < r->n && rc == 0; i++) {
        char **row = r->vals[i];
        double t, interval = row[iv] ? strtod(row[iv], NULL) : 30;
        char buf[96], when[32];
        bool ok = view_parse_time(row[hb], &t);
        if (ok)
            em_utc_text((time_t)t, when, sizeof(when));
        double window = 3 * interval > 90 ? 3 * interval : 90;
        bool is_alive = false;
        if (!ok)
            snprintf(buf, sizeof(buf), "unknown");
        else if (row[rs] && strcmp(row[rs], "stopped") == 0)
            snprintf(buf, sizeof(buf), "stopped at %s", when);
        else if (now - t <= window) {
            snprintf(buf, sizeof(buf), "alive");
            is_alive = true;
        } else
            snprintf(buf, sizeof(buf), "silent since %s", when);
        rc = set(r, i, st, buf);
        if (rc == 0)
            rc = set(r, i, alive, is_alive ? "yes" : "no");
    }
    return rc;
}

static int count_of(void *ctx, int ncols, const char *const *names, const char *const *vals)
{
    (void)names;
    long *n = ctx;
    *n = ncols > 0 && vals[0] ? strtol(vals[0], NULL, 10) : 0;
    return 0;
}

/* Whether the session (and square) exist. Returns 0, 1 absent (why in reason), <0. */
static int must_exist(struct store *s, const char *session, const char *square, char *reason,
                      size_t cap)
{
    long n = 0;
    const char *p[2] = {session, square};
    int rc = store_query(s, session_exists_sql, 1, p, count_of, &n, reason, cap);
    if (rc < 0)
        return rc;
    if (n == 0) {
        snprintf(reason, cap, "session %s is not in %s", session, s->redacted);
        return 1;
    }
    if (!square)
        return 0;
    rc = store_query(s, square_exists_sql, 2, p, count_of, &n, reason, cap);
    if (rc < 0)
        return rc;
    if (n == 0) {
        snprintf(reason, cap, "grid square %s of session %s is not in %s", square, session,
                 s->redacted);
        return 1;
    }
    return 0;
}

static int atlas_must_exist(struct store *s, const char *atlas, char *reason, size_t cap)
{
    long n = 0;
    int rc = store_query(s, atlas_exists_sql, 1, &atlas, count_of, &n, reason, cap);
    if (rc < 0)
        return rc;
    if (n == 0) {
        snprintf(reason, cap, "atlas %s is not in %s", atlas, s->redacted);
        return 1;
    }
    return 0;
}

int view_rows(struct store *s, enum view_kind k, const struct view_args *a, struct rows *r,
              char *reason, size_t cap)
{
    char sql[4096];
    const char *params[8];
    size_t np = 0;
    char cur_at[64], cur_uuid[80], limit[24];
    int rc = 0;
    switch (k) {
    case VIEW_SESSIONS:
        sessions_sql(s->dialect, sql, sizeof(sql));
        if (a->session) {
            /* one session: the same row, filtered */
            size_t l = strlen(sql);
            const char *order = " ORDER BY s.session_id";
            if (l > strlen(order) && strcmp(sql + l - strlen(order), order) == 0)
                snprintf(sql + l - strlen(order), sizeof(sql) - (l - strlen(order)),
                         " AND s.session_id = ?");
            params[np++] = a->session;
            rc = must_exist(s, a->session, NULL, reason, cap);
        }
        break;
    case VIEW_SQUARES:
        squares_sql(s->dialect, sql, sizeof(sql));
        params[np++] = a->session;
        rc = must_exist(s, a->session, NULL, reason, cap);
        break;
    case VIEW_FOILHOLES:
        foilholes_sql(s->dialect, sql, sizeof(sql));
        params[np++] = a->session;
        params[np++] = a->square;
        rc = must_exist(s, a->session, a->square, reason, cap);
        break;
    case VIEW_MICROGRAPHS:
        micrographs_sql(s->dialect, a, sql, sizeof(sql), params, &np, cur_at, cur_uuid,
                        sizeof(cur_at), limit, sizeof(limit));
        break;
    case VIEW_ATLASES:
        atlases_sql(s->dialect, sql, sizeof(sql));
        break;
    case VIEW_DATASETS:
        datasets_sql(s->dialect, sql, sizeof(sql));
        break;
    case VIEW_AGENTS:
        agents_sql_of(s->dialect, sql, sizeof(sql));
        break;
    case VIEW_TILES:
        tiles_sql(s->dialect, sql, sizeof(sql));
        params[np++] = a->atlas;
        rc = atlas_must_exist(s, a->atlas, reason, cap);
        break;
    default:
        snprintf(reason, cap, "no such view");
        return -EM_EINVAL;
    }
    if (rc != 0)
        return rc;
    rc = store_query(s, sql, np, params, collect, r, reason, cap);
    if (rc == 0 && k == VIEW_SESSIONS && !a->session)
        rc = store_query(s, aborted_sql, 0, NULL, collect, r, reason, cap);
    if (rc == 0 && r->err)
        rc = r->err;
    if (rc == 0)
        normalize_flags(r);
    if (rc == 0 && k == VIEW_SESSIONS)
        rc = session_states(s, r, a, reason, cap);
    if (rc == 0 && k == VIEW_AGENTS)
        rc = agent_states(r, a->now);
    if (rc < 0 && rc != -EM_EIO)
        snprintf(reason, cap, "%s", em_strerror(rc));
    return rc;
}

static int first_text(void *ctx, int ncols, const char *const *names, const char *const *vals)
{
    (void)names;
    char **out = ctx;
    if (ncols > 0 && vals[0] && !*out && !(*out = strdup(vals[0])))
        return -EM_ENOMEM;
    return 0;
}

/* Whether `name` is a plain file name EPU would give an image (no directory, no "..",
 * nothing a shell or a URL would read otherwise). */
static bool plain_name(const char *name)
{
    if (!name[0] || name[0] == '.')
        return false;
    for (const char *c = name; *c; c++)
        if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
              *c == '_' || *c == '-' || *c == '.'))
            return false;
    return true;
}

int view_square_jpeg(struct store *s, const char *session, const char *square, char *path,
                     size_t pcap, char *reason, size_t cap)
{
    int rc = must_exist(s, session, square, reason, cap);
    if (rc != 0)
        return rc;
    char sql[512], image[160];
    json_text(s->dialect, image, sizeof(image), "g", "image.path");
    snprintf(sql, sizeof(sql),
             "SELECT %s FROM gridsquare g WHERE g.session_id = ? AND g.gridsquare_id = ?"
             " AND g.deleted = 0",
             image);
    const char *p[2] = {session, square};
    char *xml = NULL;
    rc = store_query(s, sql, 2, p, first_text, &xml, reason, cap);
    if (rc < 0) {
        free(xml);
        return rc;
    }
    size_t n = xml ? strlen(xml) : 0;
    if (n < 5 || strcmp(xml + n - 4, ".xml") != 0 || n + 1 > pcap) {
        snprintf(reason, cap, "grid square %s of session %s has no square image yet", square,
                 session);
        free(xml);
        return 1;
    }
    snprintf(path, pcap, "%.*s.jpg", (int)(n - 4), xml);
    free(xml);
    return 0;
}

int view_tile_jpeg(struct store *s, const char *atlas, const char *tile, char *path, size_t pcap,
                   char *reason, size_t cap)
{
    struct view_args a = {.atlas = atlas};
    struct rows r = {0};
    int rc = view_rows(s, VIEW_TILES, &a, &r, reason, cap);
    const char *base = NULL;
    for (size_t i = 0; rc == 0 && i < r.n; i++)
        if (rows_get(&r, i, "tile_id") && strcmp(rows_get(&r, i, "tile_id"), tile) == 0)
            base = rows_get(&r, i, "base_filename");
    char *dm = NULL;
    if (rc == 0 && !base) {
        snprintf(reason, cap, "atlas %s has no tile %s", atlas, tile);
        rc = 1;
    } else if (rc == 0 && !plain_name(base)) {
        snprintf(reason, cap, "atlas %s, tile %s: its image name is not a plain file name", atlas,
                 tile);
        rc = 1;
    }
    if (rc == 0)
        rc = store_query(s, "SELECT source_path FROM atlas WHERE atlas_id = ? AND deleted = 0", 1,
                         &atlas, first_text, &dm, reason, cap);
    if (rc == 0) {
        /* the tiles' files sit beside the Atlas.dm that lists them */
        const char *slash = dm ? strrchr(dm, '/') : NULL;
        int dir = slash ? (int)(slash - dm) + 1 : 0;
        size_t need = (size_t)dir + strlen(base) + 5;
        if (!dm || need > pcap) {
            snprintf(reason, cap, "atlas %s: the store has no path for it", atlas);
            rc = 1;
        } else {
            snprintf(path, pcap, "%.*s%s.jpg", dir, dm, base);
        }
    }
    free(dm);
    rows_free(&r);
    return rc;
}

cJSON *rows_object(const struct rows *r, size_t i)
{
    cJSON *o = cJSON_CreateObject();
    for (int c = 0; o && c < r->ncols; c++) {
        const char *v = r->vals[i][c];
        cJSON *x;
        if (!v)
            x = cJSON_CreateNull();
        else if (flag_column(r->names[c]))
            x = cJSON_CreateBool(strcmp(v, "yes") == 0);
        else if (numeric(r->names[c])) {
            double d = strtod(v, NULL);
            x = isfinite(d) ? cJSON_CreateNumber(d) : cJSON_CreateNull();
        } else
            x = cJSON_CreateString(v);
        if (!x || !cJSON_AddItemToObject(o, r->names[c], x)) {
            cJSON_Delete(x);
            cJSON_Delete(o);
            return NULL;
        }
    }
    return o;
}

/* Columns the table leaves out (--json has them): what a person reads in the others. */
static bool table_hides(const char *name)
{
    static const char *const hidden[] = {"squares_selected", "squares_left",  "first_acquired",
                                         "last_acquired",    "last_activity", "stalled",
                                         "stall_after_s"};
    for (size_t i = 0; i < sizeof(hidden) / sizeof(hidden[0]); i++)
        if (strcmp(name, hidden[i]) == 0)
            return true;
    return false;
}

void rows_print_table(const struct rows *r, FILE *f)
{
    if (!r->names) {
        fprintf(f, "(nothing stored)\n");
        return;
    }
    int last = -1; /* the last column shown */
    for (int c = 0; c < r->ncols; c++)
        if (!table_hides(r->names[c]))
            last = c;
    size_t *w = calloc((size_t)r->ncols, sizeof(*w));
    if (!w)
        return;
    for (int c = 0; c < r->ncols; c++) {
        w[c] = strlen(r->names[c]);
        for (size_t i = 0; i < r->n; i++) {
            size_t l = r->vals[i][c] ? strlen(r->vals[i][c]) : 1;
            if (l > w[c])
                w[c] = l;
        }
    }
    for (int c = 0; c < r->ncols; c++)
        if (!table_hides(r->names[c]))
            fprintf(f, "%-*s%s", c == last ? 0 : (int)w[c], r->names[c], c < last ? "  " : "\n");
    for (size_t i = 0; i < r->n; i++)
        for (int c = 0; c < r->ncols; c++) {
            if (table_hides(r->names[c]))
                continue;
            const char *v = r->vals[i][c] ? r->vals[i][c] : "-";
            fprintf(f, numeric(r->names[c]) ? "%*s%s" : "%-*s%s", c == last ? 0 : (int)w[c], v,
                    c < last ? "  " : "\n");
        }
    free(w);
}

void rows_free(struct rows *r)
{
    for (size_t i = 0; i < r->n; i++) {
        for (int c = 0; c < r->ncols; c++)
            free(r->vals[i][c]);
        free(r->vals[i]);
    }
    free(r->vals);
    for (int c = 0; c < r->ncols && r->names; c++)
        free(r->names[c]);
    free(r->names);
    memset(r, 0, sizeof(*r));
}
