/* em-backend query: what a facility wants to see in the store. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "backend.h"
#include "em_error.h"
#include "store.h"

static const char query_usage[] =
    "Usage: em-backend query [WHAT] [--store URL] [--json] [OPTIONS]\n"
    "\n"
    "WHAT is one of:\n"
    "  sessions              every session with its progress: squares, foil holes and\n"
    "                        micrographs stored, the newest micrograph's acquisition time\n"
    "                        and the last file activity (the default)\n"
    "  squares SESSION_ID    one session's grid squares with their state, hole and\n"
    "                        micrograph counts\n"
    "  micrographs           the most recent micrographs (--session ID, --limit N;\n"
    "                        default 20)\n"
    "  entities              every stored entity as a JSON line {type, key, data} (an\n"
    "                        export; compare it with `em-agent scan`)\n"
    "\n"
    "  --store URL   sqlite:PATH or postgresql://user@host/database [EM_BACKEND_STORE]\n"
    "  --json        one JSON object per row instead of a table\n"
    "Exit status: 0 success, 2 usage or store error.\n";

static const char sessions_sql[] =
    "SELECT s.session_id, s.name, s.agent,"
    " (SELECT COUNT(*) FROM gridsquare g WHERE g.session_id = s.session_id AND g.deleted = 0)"
    " AS squares,"
    " (SELECT COUNT(*) FROM foilhole f WHERE f.session_id = s.session_id AND f.deleted = 0)"
    " AS holes,"
    " (SELECT COUNT(*) FROM micrograph m WHERE m.session_id = s.session_id AND m.deleted = 0)"
    " AS micrographs,"
    " (SELECT MAX(m.acquired_at) FROM micrograph m WHERE m.session_id = s.session_id)"
    " AS last_acquired,"
    " (SELECT MAX(x) FROM ("
    "   SELECT s.source_mtime AS x"
    "   UNION ALL SELECT MAX(g.source_mtime) FROM gridsquare g WHERE g.session_id = s.session_id"
    "   UNION ALL SELECT MAX(f.source_mtime) FROM foilhole f WHERE f.session_id = s.session_id"
    "   UNION ALL SELECT MAX(m.source_mtime) FROM micrograph m WHERE m.session_id = s.session_id"
    " ) AS t) AS last_activity"
    " FROM session s WHERE s.deleted = 0 ORDER BY s.session_id";

static const char squares_sql[] =
    "SELECT g.gridsquare_id, g.state,"
    " (SELECT COUNT(*) FROM foilhole f WHERE f.session_id = g.session_id"
    "  AND f.gridsquare_id = g.gridsquare_id AND f.deleted = 0) AS holes,"
    " (SELECT COUNT(*) FROM micrograph m WHERE m.session_id = g.session_id"
    "  AND m.gridsquare_id = g.gridsquare_id AND m.deleted = 0) AS micrographs,"
    " g.source_mtime AS last_change"
    " FROM gridsquare g WHERE g.session_id = ? AND g.deleted = 0 ORDER BY g.gridsquare_id";

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
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        char ***v = realloc(r->vals, cap * sizeof(*v));
        if (!v)
            return r->err = -EM_ENOMEM;
        r->vals = v;
        r->cap = cap;
    }
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
    return strstr(name, "_id") || strcmp(name, "squares") == 0 || strcmp(name, "holes") == 0 ||
           strcmp(name, "micrographs") == 0;
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
                else if (numeric(r->names[c]) && strcmp(r->names[c], "micrograph_uuid") != 0)
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
            printf(numeric(r->names[c]) && strcmp(r->names[c], "micrograph_uuid") != 0 ? "%*s%s"
                                                                                       : "%-*s%s",
                   (int)w[c], v, c + 1 < r->ncols ? "  " : "\n");
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
    enum ev_type type;
    const struct schema_table *t;
    int err;
};

static int export_row(void *ctx, int ncols, const char *const *names, const char *const *vals)
{
    struct export *x = ctx;
    cJSON *o = cJSON_CreateObject(), *key = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", ev_type_name(x->type));
    for (size_t c = 0; c < x->t->nkey && (int)c < ncols; c++) {
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
    for (int t = 0; t < EVT_COUNT; t++) {
        struct export x = {(enum ev_type)t, schema_table_of((enum ev_type)t), 0};
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

int cmd_query(int argc, char **argv)
{
    const char *store_opt = NULL, *session = NULL, *limit_opt = NULL, *what = NULL, *arg = NULL;
    bool json = false, bad = false;
    for (int i = 0; i < argc && !bad; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(query_usage, stdout);
            return BE_OK;
        }
        if (strcmp(a, "--json") == 0) {
            json = true;
            continue;
        }
        if (be_verbose(a) || be_opt(argc, argv, &i, "store", &store_opt, &bad) ||
            be_opt(argc, argv, &i, "session", &session, &bad) ||
            be_opt(argc, argv, &i, "limit", &limit_opt, &bad))
            continue;
        if (a[0] == '-') {
            fprintf(stderr, "em-backend query: unknown option '%s' (see --help)\n", a);
            return BE_USAGE;
        }
        if (!what)
            what = a;
        else if (!arg)
            arg = a;
        else {
            fprintf(stderr, "em-backend query: unexpected '%s' (see --help)\n", a);
            return BE_USAGE;
        }
    }
    long limit = 20, id;
    if (bad || (limit_opt && !be_number("limit", limit_opt, 1, 1000000, &limit)))
        return BE_USAGE;
    if (!what)
        what = "sessions";
    const char *sql = NULL;
    const char *params[2];
    size_t nparams = 0;
    char limit_text[24];
    snprintf(limit_text, sizeof(limit_text), "%ld", limit);
    if (strcmp(what, "sessions") == 0 && !arg) {
        sql = sessions_sql;
    } else if (strcmp(what, "squares") == 0) {
        if (!arg || !be_number("squares SESSION_ID", arg, 0, 0x7fffffffffffffffL, &id))
            return BE_USAGE;
        sql = squares_sql;
        params[nparams++] = arg;
    } else if (strcmp(what, "micrographs") == 0 && !arg) {
        if (session) {
            if (!be_number("session", session, 0, 0x7fffffffffffffffL, &id))
                return BE_USAGE;
            params[nparams++] = session;
            sql = micrographs_session_sql;
        } else {
            sql = micrographs_all_sql;
        }
        params[nparams++] = limit_text;
    } else if (strcmp(what, "entities") != 0 || arg) {
        fprintf(stderr, "em-backend query: unknown query '%s' (see --help)\n", what);
        return BE_USAGE;
    }
    const char *url = be_store_url(store_opt);
    if (!url)
        return BE_USAGE;
    struct store *s;
    char reason[512];
    if (store_open(url, false, &s, reason, sizeof(reason)) < 0) {
        fprintf(stderr, "em-backend query: %s\n", reason);
        return BE_USAGE;
    }
    int rc;
    if (!sql) {
        rc = export_all(s, reason, sizeof(reason));
    } else {
        struct rows r = {.json = json};
        rc = store_query(s, sql, nparams, params, collect, &r, reason, sizeof(reason));
        if (rc == 0 && r.err)
            rc = r.err;
        if (rc == 0)
            print_rows(&r);
        rows_free(&r);
    }
    store_close(s);
    if (rc < 0) {
        fprintf(stderr, "em-backend query: %s\n", rc == -EM_EIO ? reason : em_strerror(rc));
        return BE_USAGE;
    }
    return fflush(stdout) == 0 ? BE_OK : BE_USAGE;
}
