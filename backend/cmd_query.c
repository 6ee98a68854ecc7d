/* em-backend: query: what a facility wants to see in the store (the rows of views.h). */
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
#include "views.h"

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
    "  micrographs           the most recent micrographs (--session ID, --square ID,\n"
    "                        --limit N; default 20), or with --since CURSOR the next page\n"
    "                        in acquisition order (CURSOR: \"ACQUIRED_AT,UUID\" of the\n"
    "                        last one seen; \",\" starts at the beginning)\n"
    "  atlases               every atlas: squares on it, tiles, sessions using it\n"
    "  tiles ATLAS           one atlas's tiles: where each sits on the atlas (pixels, as\n"
    "                        the squares' atlas_x/atlas_y) and its image's base name\n"
    "  datasets              loader output the agents saw: loader, record id, status,\n"
    "                        its job and the job's status, directory, the main volume\n"
    "                        with the shape and type its header gives, how many values\n"
    "                        the record claims otherwise (mismatches)\n"
    "  agents                every agent's last heartbeat: host, version, what it\n"
    "                        watches, outbox, lag, errors, and whether it is alive, stopped\n"
    "                        (said so) or silent since its last heartbeat\n"
    "  entities              every stored entity as a JSON line {type, key, data} (an\n"
    "                        export; compare it with `em-agent scan`)\n"
    "\n"
    "  --store URL   sqlite:PATH or postgresql://user@host/database [EM_BACKEND_STORE];\n"
    "                opened read-only: a store that does not exist is an error\n"
    "  --json        one JSON object per row instead of a table\n"
    "  --stall-factor F, --stall-min SECONDS, --idle-after SECONDS\n"
    "                the stall rule (below); defaults 5, 300 and 43200 [EM_BACKEND_STALL_*]\n"
    "A session's state: \"finished\" once every square selected for it is Completed;\n"
    "\"acquiring\" while its newest micrograph (by its file's time) is younger than\n"
    "--stall-factor times the median interval of its last 21, and at least --stall-min;\n"
    "then \"stalled since\" that micrograph (stalled: true) until --idle-after, then \"idle\n"
    "since\". stall_after_s says the threshold in force. Aborted sessions\n"
    "(a directory with EPU files but no usable EpuSession.dm, so no session id) follow\n"
    "the sessions, with the directory as the name and the state \"aborted\".\n"
    "Exit status: 0 success; 1 the store cannot be read, or the session or square is\n"
    "not in it; 2 usage error.\n";

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
        if (t == WIRE_AGENT)
            continue; /* heartbeats are not made from files: `scan` has none */
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
                "%s')\n",
                what, strncmp(what, "tiles", 5) == 0 ? "atlases" : "sessions");
        return false;
    }
    if (end == v || *end || errno || x < 0) {
        fprintf(stderr, "em-backend: query: %s: '%s' is not an id (a whole number)\n", what, v);
        return false;
    }
    *out = x;
    return true;
}

enum {
    Q_STORE,
    Q_SESSION,
    Q_SQUARE,
    Q_SINCE,
    Q_LIMIT,
    Q_JSON,
    Q_STALL_FACTOR,
    Q_STALL_MIN,
    Q_IDLE_AFTER,
    Q_COUNT
};
static const struct emopt_spec query_opts[Q_COUNT] = {
    [Q_STORE] = {"store", 0, EMOPT_VALUE, true, false, NULL},
    [Q_SESSION] = {"session", 0, EMOPT_VALUE, false, false, NULL},
    [Q_SQUARE] = {"square", 0, EMOPT_VALUE, false, false, NULL},
    [Q_SINCE] = {"since", 0, EMOPT_VALUE, false, false, NULL},
    [Q_LIMIT] = {"limit", 0, EMOPT_VALUE, false, false, NULL},
    [Q_JSON] = {"json", 0, EMOPT_FLAG, false, false, NULL},
    [Q_STALL_FACTOR] = {"stall-factor", 0, EMOPT_VALUE, true, false, NULL},
    [Q_STALL_MIN] = {"stall-min", 0, EMOPT_VALUE, true, false, NULL},
    [Q_IDLE_AFTER] = {"idle-after", 0, EMOPT_VALUE, true, false, NULL},
};

int be_stall_rule(const struct emopt *o, int factor, int min, int idle, struct stall_rule *r)
{
    r->factor = STALL_FACTOR;
    r->min_s = STALL_MIN_S;
    r->idle_s = STALL_IDLE_S;
    return emopt_double(o, factor, 1, 1000, &r->factor) &&
                   emopt_seconds(o, min, 0, 7 * 86400.0, &r->min_s) &&
                   emopt_seconds(o, idle, 0, 365 * 86400.0, &r->idle_s)
               ? 0
               : -EM_EUSAGE;
}

static int query_main(const struct emopt *o)
{
    const char *session = emopt_get(o, Q_SESSION), *limit_opt = emopt_get(o, Q_LIMIT),
               *square = emopt_get(o, Q_SQUARE), *since = emopt_get(o, Q_SINCE);
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
        enum view_kind view;
    } const queries[] = {
        {"sessions", 0, false, false, true, VIEW_SESSIONS},
        {"squares", 1, false, false, true, VIEW_SQUARES},
        {"foilholes", 2, false, false, true, VIEW_FOILHOLES},
        {"micrographs", 0, true, true, true, VIEW_MICROGRAPHS},
        {"atlases", 0, false, false, true, VIEW_ATLASES},
        {"entities", 0, false, false, false, VIEW_COUNT},
        {"datasets", 0, false, false, true, VIEW_DATASETS},
        {"agents", 0, false, false, true, VIEW_AGENTS},
        {"tiles", 1, false, false, true, VIEW_TILES},
    };
    int q = -1;
    for (int i = 0; i < (int)(sizeof(queries) / sizeof(queries[0])); i++)
        if (strcmp(what, queries[i].name) == 0)
            q = i;
    if (q < 0) {
        fprintf(stderr,
                "em-backend: query: %s: unknown query (sessions, squares, foilholes, "
                "micrographs, atlases, tiles, datasets, agents, entities)\n",
                what);
        return BE_USAGE;
    }
    long id;
    if (q == 1 && !id_arg("squares SESSION", args[0], &id))
        return BE_USAGE;
    if (queries[q].view == VIEW_TILES && !id_arg("tiles ATLAS", args[0], &id))
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
    bool micro = queries[q].view == VIEW_MICROGRAPHS;
    if ((session && !queries[q].session) || (limit_opt && !queries[q].limit) ||
        (json && !queries[q].json) || (square && !micro) || (since && !micro)) {
        fprintf(stderr, "em-backend: query: %s does not apply to `query %s`\n",
                session     ? "--session"
                : limit_opt ? "--limit"
                : square    ? "--square"
                : since     ? "--since"
                            : "--json (it is JSON already)",
                what);
        return BE_USAGE;
    }
    struct view_args va = {.limit = 20, .now = (double)time(NULL)};
    if (!emopt_long(o, Q_LIMIT, 1, 1000000, &va.limit))
        return BE_USAGE;
    if ((session && !id_arg("--session", session, &id)) ||
        (square && !id_arg("--square", square, &id)))
        return BE_USAGE;
    if (since && !strchr(since, ',')) {
        fprintf(stderr,
                "em-backend: query: --since %s: a cursor is \"ACQUIRED_AT,UUID\" (the "
                "acquired_at and micrograph_uuid of the last micrograph seen; \",\" for the "
                "first page)\n",
                since);
        return BE_USAGE;
    }
    if (be_stall_rule(o, Q_STALL_FACTOR, Q_STALL_MIN, Q_IDLE_AFTER, &va.stall) < 0)
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
    if (q == 5) {
        rc = export_all(s, reason, sizeof(reason));
    } else {
        if (micro) {
            va.session = session;
            va.gridsquare = square;
            va.since = since;
        } else if (queries[q].view == VIEW_TILES) {
            va.atlas = args[0];
        } else {
            va.session = args[0];
            va.square = args[1];
        }
        struct rows r = {0};
        rc = view_rows(s, queries[q].view, &va, &r, reason, sizeof(reason));
        if (rc == 1) {
            fprintf(stderr, "em-backend: query: %s (see 'em-backend query %s')\n", reason,
                    q == 2                          ? "squares SESSION"
                    : queries[q].view == VIEW_TILES ? "atlases"
                                                    : "sessions");
            rows_free(&r);
            store_close(s);
            return BE_FAILED;
        }
        if (rc == 0 && json) {
            for (size_t i = 0; i < r.n && rc == 0; i++) {
                cJSON *obj = rows_object(&r, i);
                char *line = obj ? cJSON_PrintUnformatted(obj) : NULL;
                if (line)
                    printf("%s\n", line);
                else
                    rc = -EM_ENOMEM;
                cJSON_free(line);
                cJSON_Delete(obj);
            }
        } else if (rc == 0) {
            rows_print_table(&r, stdout);
        }
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
