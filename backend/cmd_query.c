/* em-backend: query: what a facility wants to see in the store. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "backend.h"
#include "dynbuf.h"
#include "em_error.h"
#include "store.h"

static const char query_usage[] =
    "Usage: em-backend query [WHAT] [--store URL] [--json] [OPTIONS]\n"
    "\n"
    "WHAT is one of:\n"
    "  sessions              every session with its progress (the default): squares\n"
    "                        listed and imaged, foil holes and those with exposures,\n"
    "                        micrographs, when it started, micrographs per hour, the\n"
    "                        newest acquisition, the newest file written (last_activity),\n"
    "                        and whether it is acquiring or idle since\n"
    "  squares SESSION       one session's grid squares: state, imaged, holes, micrographs\n"
    "  foilholes SESSION SQUARE\n"
    "                        one square's foil holes: state, selected, near the grid bar,\n"
    "                        micrographs\n"
    "  micrographs           the most recent micrographs (--session ID, --limit N;\n"
    "                        default 20)\n"
    "  atlases               every atlas: squares on it, tiles, sessions using it\n"
    "  datasets              loader output the agents saw: loader, record id, status,\n"
    "                        its job and the job's status, directory, the main volume\n"
    "                        with the shape and type its header gives, how many values\n"
    "                        the record claims otherwise (mismatches)\n"
    "  entities              every stored entity as a JSON line {type, key, data} (an\n"
    "                        export; compare it with `em-agent scan`)\n"
    "\n"
    "  --store URL   sqlite:PATH or postgresql://user@host/database [EM_BACKEND_STORE];\n"
    "                opened read-only: a store that does not exist is an error\n"
    "  --json        one JSON object per row instead of a table\n"
    "A session counts as acquiring while its newest micrograph is less than 15 minutes\n"
    "old (by this machine's clock), else idle since that micrograph. Aborted sessions\n"
    "(a directory with EPU files but no usable EpuSession.dm, so no session id) follow\n"
    "the sessions, with the directory as the name and the state \"aborted\".\n"
    "Exit status: 0 success; 1 the store cannot be read, or the session or square is\n"
    "not in it; 2 usage error.\n";

#define IDLE_AFTER_S (15 * 60)

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
    char started[160], image[160], hole_image[160];
    json_text(d, started, sizeof(started), "s", "started_at");
    json_text(d, image, sizeof(image), "g", "image.image_uuid");
    json_text(d, hole_image, sizeof(hole_image), "f", "image.image_uuid");
    snprintf(
        sql, cap,
        "SELECT s.session_id, s.name, s.agent, %s AS started_at,"
        " (SELECT COUNT(*) FROM gridsquare g WHERE g.session_id = s.session_id AND g.deleted = 0)"
        " AS squares,"
        " (SELECT COUNT(*) FROM gridsquare g WHERE g.session_id = s.session_id AND g.deleted = 0"
        "  AND (%s IS NOT NULL OR EXISTS (SELECT 1 FROM foilhole f WHERE f.session_id ="
        "  g.session_id AND f.gridsquare_id = g.gridsquare_id AND f.deleted = 0"
        "  AND %s IS NOT NULL) OR EXISTS"
        "  (SELECT 1 FROM micrograph m WHERE m.session_id = g.session_id AND m.gridsquare_id ="
        "  g.gridsquare_id AND m.deleted = 0))) AS imaged,"
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
        "   UNION ALL SELECT MAX(g.source_mtime) FROM gridsquare g WHERE g.session_id = "
        "s.session_id"
        "   UNION ALL SELECT MAX(f.source_mtime) FROM foilhole f WHERE f.session_id = s.session_id"
        "   UNION ALL SELECT MAX(m.source_mtime) FROM micrograph m WHERE m.session_id = "
        "s.session_id"
        " ) AS t) AS last_activity"
        " FROM session s WHERE s.deleted = 0 ORDER BY s.session_id",
        started, image, hole_image);
}

static void squares_sql(enum sql_dialect d, char *sql, size_t cap)
{
    char image[160];
    json_text(d, image, sizeof(image), "g", "image.image_uuid");
    snprintf(sql, cap,
             "SELECT g.gridsquare_id, g.state,"
             " CASE WHEN %s IS NOT NULL THEN 'yes' ELSE 'no' END AS has_image,"
             " (SELECT COUNT(*) FROM foilhole f WHERE f.session_id = g.session_id"
             "  AND f.gridsquare_id = g.gridsquare_id AND f.deleted = 0) AS holes,"
             " (SELECT COUNT(*) FROM micrograph m WHERE m.session_id = g.session_id"
             "  AND m.gridsquare_id = g.gridsquare_id AND m.deleted = 0) AS micrographs,"
             " g.source_mtime AS last_change"
             " FROM gridsquare g WHERE g.session_id = ? AND g.deleted = 0"
             " ORDER BY g.gridsquare_id",
             image);
}

static void foilholes_sql(enum sql_dialect d, char *sql, size_t cap)
{
    char state[160], selected[160], near[160], image_at[160];
    json_text(d, state, sizeof(state), "f", "target.state");
    json_text(d, selected, sizeof(selected), "f", "target.selected");
    json_text(d, near, sizeof(near), "f", "target.is_near_grid_bar");
    json_text(d, image_at, sizeof(image_at), "f", "image.acquired_at");
    snprintf(sql, cap,
             "SELECT f.foilhole_id, %s AS state, %s AS selected, %s AS near_grid_bar,"
             " %s AS imaged_at,"
             " (SELECT COUNT(*) FROM micrograph m WHERE m.session_id = f.session_id"
             "  AND m.foilhole_id = f.foilhole_id AND m.deleted = 0) AS micrographs"
             " FROM foilhole f WHERE f.session_id = ? AND f.gridsquare_id = ? AND f.deleted = 0"
             " ORDER BY f.foilhole_id",
             state, selected, near, image_at);
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
    " NULL AS imaged, NULL AS holes, NULL AS holes_exposed, NULL AS micrographs,"
    " NULL AS first_acquired, NULL AS last_acquired, a.emitted_at AS last_activity"
    " FROM aborted_session a WHERE a.deleted = 0 ORDER BY a.agent, a.path";

static const char session_exists_sql[] =
    "SELECT COUNT(*) FROM session WHERE session_id = ? AND deleted = 0";
static const char square_exists_sql[] =
    "SELECT COUNT(*) FROM gridsquare WHERE session_id = ? AND gridsquare_id = ? AND deleted = 0";

static const char micrographs_all_sql[] =
    "SELECT m.session_id, m.micrograph_uuid, m.gridsquare_id, m.foilhole_id, m.acquired_at"
    " FROM micrograph m WHERE m.deleted = 0"
    " ORDER BY m.acquired_at DESC, m.micrograph_uuid LIMIT ?";

static const char micrographs_session_sql[] =
    "SELECT m.session_id, m.micrograph_uuid, m.gridsquare_id, m.foilhole_id, m.acquired_at"
    " FROM micrograph m WHERE m.session_id = ? AND m.deleted = 0"
    " ORDER BY m.acquired_at DESC, m.micrograph_uuid LIMIT ?";

/* Rows are gathered, then printed as an aligned table or as JSON lines. */
struct rows {
    bool json;
    int ncols;
    char **names;
    char ***vals; /* per row, per column; NULL for SQL NULL */
    size_t n, cap;
    int err;
};

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
    static const char *const counts[] = {"squares",     "imaged",    "holes", "holes_exposed",
                                         "micrographs", "sessions",  "tiles", "per_hour",
                                         "job",         "mismatches"};
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
           strcmp(name, "has_image") == 0;
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
static bool parse_time(const char *s, double *out)
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

/* sessions: micrographs per hour between the first and the newest, and the state. */
static int session_rates(struct rows *r, double now)
{
    if (!r->names)
        return 0;
    int n = column(r, "micrographs"), first = column(r, "first_acquired"),
        last = column(r, "last_acquired");
    int rc;
    if ((rc = add_column(r, "per_hour")) < 0 || (rc = add_column(r, "state")) < 0)
        return rc;
    int ph = r->ncols - 2, st = r->ncols - 1;
    for (size_t i = 0; i < r->n; i++) {
        char **row = r->vals[i];
        double t0, t1;
        long count = row[n] ? strtol(row[n], NULL, 10) : 0;
        bool have = parse_time(row[first], &t0) && parse_time(row[last], &t1);
        char buf[96];
        if (!row[0]) { /* no session id: an aborted session */
            row[st] = strdup("aborted (no EpuSession.dm)");
            continue;
        }
        if (have && count > 1 && t1 > t0) {
            snprintf(buf, sizeof(buf), "%.1f", (double)(count - 1) * 3600.0 / (t1 - t0));
            row[ph] = strdup(buf);
        }
        if (!have)
            snprintf(buf, sizeof(buf), "no exposures yet");
        else if (now - t1 < IDLE_AFTER_S)
            snprintf(buf, sizeof(buf), "acquiring");
        else
            snprintf(buf, sizeof(buf), "idle since %.19sZ", row[last]);
        row[st] = strdup(buf);
    }
    /* first_acquired only served the rate */
    return 0;
}

static void print_rows(const struct rows *r)
{
    if (r->json) {
        for (size_t i = 0; i < r->n; i++) {
            cJSON *o = cJSON_CreateObject();
            for (int c = 0; c < r->ncols; c++) {
                const char *v = r->vals[i][c];
                if (!v)
                    cJSON_AddNullToObject(o, r->names[c]);
                else if (flag_column(r->names[c]))
                    cJSON_AddBoolToObject(o, r->names[c], strcmp(v, "yes") == 0);
                else if (numeric(r->names[c]))
                    cJSON_AddNumberToObject(o, r->names[c], strtod(v, NULL));
                else
                    cJSON_AddStringToObject(o, r->names[c], v);
            }
            char *line = cJSON_PrintUnformatted(o);
            if (line)
                printf("%s\n", line);
            cJSON_free(line);
            cJSON_Delete(o);
        }
        return;
    }
    if (!r->names) {
        printf("(nothing stored)\n");
        return;
    }
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
        printf("%-*s%s", (int)w[c], r->names[c], c + 1 < r->ncols ? "  " : "\n");
    for (size_t i = 0; i < r->n; i++)
        for (int c = 0; c < r->ncols; c++) {
            const char *v = r->vals[i][c] ? r->vals[i][c] : "-";
            printf(numeric(r->names[c]) ? "%*s%s" : "%-*s%s", (int)w[c], v,
                   c + 1 < r->ncols ? "  " : "\n");
        }
    free(w);
}

static void rows_free(struct rows *r)
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
}

/* `entities`: streamed, one JSON line per entity, in key order. */
struct export
{
    enum wire_type type;
    const struct schema_table *t;
    int err;
};

static int export_row(void *ctx, int ncols, const char *const *names, const char *const *vals)
{
    struct export *x = ctx;
    cJSON *o = cJSON_CreateObject(), *key = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", wire_type_name(x->type));
    for (size_t c = 0; c < x->t->nkey && (int)c < ncols; c++) {
        if (strcmp(names[c], "agent") == 0)
            continue; /* aborted_session: keyed by agent and path; the event's key is the path */
        if (x->t->cols[c].type == COL_ID)
            cJSON_AddNumberToObject(key, names[c], strtod(vals[c] ? vals[c] : "0", NULL));
        else
            cJSON_AddStringToObject(key, names[c], vals[c] ? vals[c] : "");
    }
    cJSON_AddItemToObject(o, "key", key);
    cJSON *data = vals[ncols - 1] ? cJSON_Parse(vals[ncols - 1]) : NULL;
    cJSON_AddItemToObject(o, "data", data ? data : cJSON_CreateNull());
    char *line = cJSON_PrintUnformatted(o);
    if (line)
        printf("%s\n", line);
    else
        x->err = -EM_ENOMEM;
    cJSON_free(line);
    cJSON_Delete(o);
    return x->err;
}

static int export_all(struct store *s, char *reason, size_t cap)
{
    for (int t = 0; t < WIRE_TYPE_COUNT; t++) {
        struct export x = {(enum wire_type)t, schema_table_of((enum wire_type)t), 0};
        char sql[512];
        int n = snprintf(sql, sizeof(sql), "SELECT ");
        for (size_t c = 0; c < x.t->nkey; c++)
            n += snprintf(sql + n, sizeof(sql) - (size_t)n, "%s, ", x.t->cols[c].name);
        n += snprintf(sql + n, sizeof(sql) - (size_t)n, "data FROM %s WHERE deleted = 0 ORDER BY ",
                      x.t->name);
        for (size_t c = 0; c < x.t->nkey; c++)
            n += snprintf(sql + n, sizeof(sql) - (size_t)n, "%s%s", c ? ", " : "",
                          x.t->cols[c].name);
        int rc = store_query(s, sql, 0, NULL, export_row, &x, reason, cap);
        if (rc < 0)
            return rc;
        if (x.err < 0)
            return x.err;
    }
    return 0;
}

/* An id argument: a whole number, or a message naming what was expected. */
static bool id_arg(const char *what, const char *v, long *out)
{
    char *end;
    errno = 0;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v) {
        fprintf(stderr,
                "em-backend: query: %s: which one? give its id (see 'em-backend query "
                "sessions')\n",
                what);
        return false;
    }
    if (end == v || *end || errno || x < 0) {
        fprintf(stderr, "em-backend: query: %s: '%s' is not an id (a whole number)\n", what, v);
        return false;
    }
    *out = x;
    return true;
}

static int count_of(void *ctx, int ncols, const char *const *names, const char *const *vals)
{
    (void)names;
    long *n = ctx;
    *n = ncols > 0 && vals[0] ? strtol(vals[0], NULL, 10) : 0;
    return 0;
}

/* Whether the session (and square) exist; prints why not. Returns 0, 1 absent, <0 error. */
static int must_exist(struct store *s, const char *session, const char *square, char *reason,
                      size_t cap)
{
    long n = 0;
    const char *p[2] = {session, square};
    int rc = store_query(s, session_exists_sql, 1, p, count_of, &n, reason, cap);
    if (rc < 0)
        return rc;
    if (n == 0) {
        fprintf(stderr,
                "em-backend: query: session %s is not in %s (see 'em-backend query "
                "sessions')\n",
                session, s->redacted);
        return 1;
    }
    if (!square)
        return 0;
    rc = store_query(s, square_exists_sql, 2, p, count_of, &n, reason, cap);
    if (rc < 0)
        return rc;
    if (n == 0) {
        fprintf(stderr,
                "em-backend: query: grid square %s of session %s is not in %s (see "
                "'em-backend query squares %s')\n",
                square, session, s->redacted, session);
        return 1;
    }
    return 0;
}

enum { Q_STORE, Q_SESSION, Q_LIMIT, Q_JSON, Q_COUNT };
static const struct emopt_spec query_opts[Q_COUNT] = {
    [Q_STORE] = {"store", 0, EMOPT_VALUE, true, false, NULL},
    [Q_SESSION] = {"session", 0, EMOPT_VALUE, false, false, NULL},
    [Q_LIMIT] = {"limit", 0, EMOPT_VALUE, false, false, NULL},
    [Q_JSON] = {"json", 0, EMOPT_FLAG, false, false, NULL},
};

static int query_main(const struct emopt *o)
{
    const char *session = emopt_get(o, Q_SESSION), *limit_opt = emopt_get(o, Q_LIMIT);
    bool json = emopt_yes(o, Q_JSON);
    size_t nall;
    char *const *all = emopt_args(o, &nall);
    const char *what = nall ? all[0] : NULL;
    const char *args[2] = {NULL, NULL};
    int nargs = 0;
    for (size_t i = 1; i < nall; i++) {
        if (nargs == 2)
            return emopt_usage_error(o, "%s: one argument too many (see 'em-backend help query')",
                                     all[i]);
        args[nargs++] = all[i];
    }
    if (!what)
        what = "sessions";
    /* What each query takes: arguments, and which options apply. */
    struct {
        const char *name;
        int nargs;
        bool session, limit, json;
    } const queries[] = {
        {"sessions", 0, false, false, true},  {"squares", 1, false, false, true},
        {"foilholes", 2, false, false, true}, {"micrographs", 0, true, true, true},
        {"atlases", 0, false, false, true},   {"entities", 0, false, false, false},
        {"datasets", 0, false, false, true},
    };
    int q = -1;
    for (int i = 0; i < (int)(sizeof(queries) / sizeof(queries[0])); i++)
        if (strcmp(what, queries[i].name) == 0)
            q = i;
    if (q < 0) {
        fprintf(stderr,
                "em-backend: query: %s: unknown query (sessions, squares, foilholes, "
                "micrographs, atlases, datasets, entities)\n",
                what);
        return BE_USAGE;
    }
    long id;
    if (q == 1 && !id_arg("squares SESSION", args[0], &id))
        return BE_USAGE;
    if (q == 2 && (!id_arg("foilholes SESSION", args[0], &id) ||
                   !id_arg("foilholes SESSION SQUARE", args[1] ? args[1] : NULL, &id)))
        return BE_USAGE;
    if (nargs > queries[q].nargs) {
        fprintf(stderr, "em-backend: query: %s takes %s, not '%s'\n", what,
                queries[q].nargs == 0   ? "no argument"
                : queries[q].nargs == 1 ? "one argument"
                                        : "two arguments",
                args[queries[q].nargs]);
        return BE_USAGE;
    }
    if ((session && !queries[q].session) || (limit_opt && !queries[q].limit) ||
        (json && !queries[q].json)) {
        fprintf(stderr, "em-backend: query: %s does not apply to `query %s`\n",
                session     ? "--session"
                : limit_opt ? "--limit"
                            : "--json (it is JSON already)",
                what);
        return BE_USAGE;
    }
    long limit = 20;
    if (!emopt_long(o, Q_LIMIT, 1, 1000000, &limit))
        return BE_USAGE;
    if (session && !id_arg("--session", session, &id))
        return BE_USAGE;
    const char *url = be_store_url(emopt_get(o, Q_STORE));
    if (!url)
        return BE_USAGE;
    struct store *s;
    char reason[512];
    int rc = store_open_readonly(url, &s, reason, sizeof(reason));
    if (rc < 0) {
        fprintf(stderr, "em-backend: %s\n", reason);
        return rc == -EM_EUSAGE ? BE_USAGE : BE_FAILED;
    }
    char sql[4096];
    const char *params[2];
    size_t nparams = 0;
    char limit_text[24];
    snprintf(limit_text, sizeof(limit_text), "%ld", limit);
    switch (q) {
    case 0:
        sessions_sql(s->dialect, sql, sizeof(sql));
        break;
    case 1:
        squares_sql(s->dialect, sql, sizeof(sql));
        params[nparams++] = args[0];
        rc = must_exist(s, args[0], NULL, reason, sizeof(reason));
        break;
    case 2:
        foilholes_sql(s->dialect, sql, sizeof(sql));
        params[nparams++] = args[0];
        params[nparams++] = args[1];
        rc = must_exist(s, args[0], args[1], reason, sizeof(reason));
        break;
    case 3:
        if (session)
            params[nparams++] = session;
        snprintf(sql, sizeof(sql), "%s", session ? micrographs_session_sql : micrographs_all_sql);
        params[nparams++] = limit_text;
        break;
    case 4:
        atlases_sql(s->dialect, sql, sizeof(sql));
        break;
    case 6:
        datasets_sql(s->dialect, sql, sizeof(sql));
        break;
    default:
        sql[0] = '\0';
    }
    if (rc == 1) {
        store_close(s);
        return BE_FAILED;
    }
    if (rc < 0) {
    } else if (q == 5) {
        rc = export_all(s, reason, sizeof(reason));
    } else {
        struct rows r = {.json = json};
        rc = store_query(s, sql, nparams, params, collect, &r, reason, sizeof(reason));
        if (rc == 0 && q == 0)
            rc = store_query(s, aborted_sql, 0, NULL, collect, &r, reason, sizeof(reason));
        if (rc == 0 && r.err)
            rc = r.err;
        if (rc == 0)
            normalize_flags(&r);
        if (rc == 0 && q == 0)
            rc = session_rates(&r, (double)time(NULL));
        if (rc == 0)
            print_rows(&r);
        rows_free(&r);
    }
    store_close(s);
    if (rc < 0) {
        fprintf(stderr, "em-backend: query: %s\n", rc == -EM_EIO ? reason : em_strerror(rc));
        return BE_FAILED;
    }
    return fflush(stdout) == 0 ? BE_OK : BE_FAILED;
}

int cmd_query(int argc, char **argv)
{
    static const struct emopt_command c = {"em-backend", "query", query_usage, "EM_BACKEND_",
                                           query_opts,   Q_COUNT, query_main};
    return emopt_run(&c, argc, argv);
}
