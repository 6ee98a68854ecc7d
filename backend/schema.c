#include "schema.h"

#include <string.h>

#include "em_error.h"

#define COMMON                                                                                     \
    {"agent", COL_TEXT, 1}, {"seq", COL_ID, 1}, {"deleted", COL_FLAG, 1}, {"data", COL_JSON, 0},   \
        {"source_path", COL_TEXT, 0}, {"source_mtime", COL_TEXT, 0},                               \
    {                                                                                              \
        "emitted_at", COL_TEXT, 0                                                                  \
    }

static const struct schema_col session_cols[] = {
    {"session_id", COL_ID, 1}, {"name", COL_TEXT, 0}, {"atlas_id", COL_ID, 0}, COMMON};
static const struct schema_col atlas_cols[] = {
    {"atlas_id", COL_ID, 1}, {"name", COL_TEXT, 0}, COMMON};
static const struct schema_col gridsquare_cols[] = {
    {"session_id", COL_ID, 1}, {"gridsquare_id", COL_ID, 1}, {"state", COL_TEXT, 0}, COMMON};
static const struct schema_col foilhole_cols[] = {
    {"session_id", COL_ID, 1}, {"foilhole_id", COL_ID, 1}, {"gridsquare_id", COL_ID, 0}, COMMON};
static const struct schema_col micrograph_cols[] = {
    {"session_id", COL_ID, 1},  {"micrograph_uuid", COL_TEXT, 1}, {"gridsquare_id", COL_ID, 0},
    {"foilhole_id", COL_ID, 0}, {"acquired_at", COL_TEXT, 0},     COMMON};

/* Keyed by the agent and the path: the same relative path under two microscopes is two
 * directories. */
static const struct schema_col aborted_session_cols[] = {
    {"agent", COL_TEXT, 1},        {"path", COL_TEXT, 1},      {"seq", COL_ID, 1},
    {"deleted", COL_FLAG, 1},      {"data", COL_JSON, 0},      {"source_path", COL_TEXT, 0},
    {"source_mtime", COL_TEXT, 0}, {"emitted_at", COL_TEXT, 0}};

/* What a loader produced and an agent saw (dataset.h in agent/): keyed by the loader and
 * the record's id, with its status and directory for the queries. */
static const struct schema_col dataset_cols[] = {{"loader", COL_TEXT, 1},
                                                 {"dataset_id", COL_TEXT, 1},
                                                 {"status", COL_TEXT, 0},
                                                 {"dir", COL_TEXT, 0},
                                                 COMMON};

/* The newest heartbeat of each agent (type `agent`): keyed by the agent's name. */
static const struct schema_col agent_cols[] = {
    {"agent", COL_TEXT, 1},     {"seq", COL_ID, 1},           {"deleted", COL_FLAG, 1},
    {"data", COL_JSON, 0},      {"source_path", COL_TEXT, 0}, {"source_mtime", COL_TEXT, 0},
    {"emitted_at", COL_TEXT, 0}};

#define TABLE(n, c, k)                                                                             \
    {                                                                                              \
        n, c, sizeof(c) / sizeof(c[0]), k                                                          \
    }

static const struct schema_table tables[WIRE_TYPE_COUNT] = {
    [WIRE_SESSION] = TABLE("session", session_cols, 1),
    [WIRE_ATLAS] = TABLE("atlas", atlas_cols, 1),
    [WIRE_GRIDSQUARE] = TABLE("gridsquare", gridsquare_cols, 2),
    [WIRE_FOILHOLE] = TABLE("foilhole", foilhole_cols, 2),
    [WIRE_MICROGRAPH] = TABLE("micrograph", micrograph_cols, 2),
    [WIRE_ABORTED_SESSION] = TABLE("aborted_session", aborted_session_cols, 2),
    [WIRE_DATASET] = TABLE("dataset", dataset_cols, 2),
    [WIRE_AGENT] = TABLE("agent", agent_cols, 1),
};

/* Indexes for `em-backend query`: a session's squares, holes and micrographs, and the
 * most recent micrographs overall and per session. */
struct index_def {
    const char *name, *table, *cols;
};

static const struct index_def indexes[] = {
    {"foilhole_square", "foilhole", "session_id, gridsquare_id"},
    {"micrograph_square", "micrograph", "session_id, gridsquare_id"},
    {"micrograph_acquired", "micrograph", "acquired_at"},
    {"micrograph_session_acquired", "micrograph", "session_id, acquired_at"},
};

/* Migration 7: what the views of views.c count and compare. */
static const struct index_def covering[] = {
    {"micrograph_square_live", "micrograph", "session_id, gridsquare_id, deleted, foilhole_id"},
    {"micrograph_hole_live", "micrograph", "session_id, foilhole_id, deleted"},
    {"micrograph_session_seen", "micrograph", "session_id, deleted, source_mtime"},
    {"foilhole_square_live", "foilhole", "session_id, gridsquare_id, deleted"},
    {"foilhole_session_seen", "foilhole", "session_id, deleted, source_mtime"},
    {"gridsquare_session_seen", "gridsquare", "session_id, deleted, source_mtime"},
};

static const char *const migrations[] = {
    NULL,
    "entity tables (session, atlas, gridsquare, foilhole, micrograph) and query indexes",
    "ingest_position: where `ingest --follow` has read each event file to",
    "aborted_session: session directories with EPU files but no usable EpuSession.dm",
    "job: loader jobs (status, attempts, progress, lease, output, dataset)",
    "dataset: loader output directories the agents saw",
    "agent: the newest heartbeat of each agent; change_log: what changed, in commit order",
    "covering indexes for the views of query and serve",
};

static int create_indexes(struct dynbuf *out, const struct index_def *defs, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = dynbuf_printf(out, "CREATE INDEX IF NOT EXISTS %s ON %s (%s);\n", defs[i].name,
                           defs[i].table, defs[i].cols);
    return rc;
}

const struct schema_table *schema_table_of(enum wire_type t)
{
    return (unsigned)t < WIRE_TYPE_COUNT ? &tables[t] : NULL;
}

int schema_version(void)
{
    return (int)(sizeof(migrations) / sizeof(migrations[0])) - 1;
}

const char *schema_migration_what(int version)
{
    return version >= 1 && version <= schema_version() ? migrations[version] : "unknown";
}

static const char *type_sql(enum col_type t, enum sql_dialect d)
{
    switch (t) {
    case COL_ID:
        return d == SQL_POSTGRES ? "BIGINT" : "INTEGER";
    case COL_JSON:
        return d == SQL_POSTGRES ? "JSONB" : "TEXT";
    case COL_FLAG:
        return d == SQL_POSTGRES ? "SMALLINT" : "INTEGER";
    case COL_TEXT:
    default:
        return "TEXT";
    }
}

static int create_table(const struct schema_table *t, enum sql_dialect d, struct dynbuf *o)
{
    int rc = dynbuf_printf(o, "CREATE TABLE IF NOT EXISTS %s (", t->name);
    for (size_t i = 0; i < t->ncols && rc == 0; i++)
        rc = dynbuf_printf(o, "%s %s%s%s, ", t->cols[i].name, type_sql(t->cols[i].type, d),
                           t->cols[i].notnull ? " NOT NULL" : "",
                           t->cols[i].type == COL_FLAG ? " DEFAULT 0" : "");
    if (rc == 0)
        rc = dynbuf_printf(o, "PRIMARY KEY (");
    for (size_t i = 0; i < t->nkey && rc == 0; i++)
        rc = dynbuf_printf(o, "%s%s", i ? ", " : "", t->cols[i].name);
    if (rc == 0)
        rc = dynbuf_printf(o, "));\n");
    return rc;
}

int schema_migration_sql(int version, enum sql_dialect d, struct dynbuf *out)
{
    int rc = 0;
    switch (version) {
    case 1:
        for (int t = 0; t <= WIRE_MICROGRAPH && rc == 0; t++)
            rc = create_table(&tables[t], d, out);
        if (rc == 0)
            rc = create_indexes(out, indexes, sizeof(indexes) / sizeof(indexes[0]));
        return rc;
    case 2:
        /* One row per followed file: its path, the identity of the file read (device and
         * inode, so a rotated file is found again), and the offset after the last line
         * committed — written in the transaction of that line's event. */
        return dynbuf_printf(out,
                             "CREATE TABLE IF NOT EXISTS ingest_position (source TEXT PRIMARY KEY, "
                             "file_id TEXT NOT NULL, byte_offset %s NOT NULL, updated_at TEXT);\n",
                             type_sql(COL_ID, d));
    case 3:
        return create_table(&tables[WIRE_ABORTED_SESSION], d, out);
    case 4:
        /* Times compared across runners (lease_until, not_before) are the store's clock in
         * epoch seconds; created_at/updated_at are for people. rule_key makes a rule fire
         * once per entity. */
        return dynbuf_printf(
            out,
            "CREATE TABLE IF NOT EXISTS job (id %s, loader TEXT NOT NULL, params TEXT NOT NULL, "
            "rule_key TEXT UNIQUE, status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT "
            "NULL DEFAULT 0, max_attempts INTEGER NOT NULL DEFAULT 5, last_error TEXT, "
            "bytes_done %s NOT NULL DEFAULT 0, bytes_total %s, created_at TEXT, updated_at "
            "TEXT, not_before %s NOT NULL DEFAULT 0, claimed_by TEXT, lease_until %s, "
            "output_dir TEXT, dataset TEXT);\n"
            "CREATE INDEX IF NOT EXISTS job_status ON job (status, id);\n",
            d == SQL_POSTGRES ? "BIGSERIAL PRIMARY KEY" : "INTEGER PRIMARY KEY AUTOINCREMENT",
            type_sql(COL_ID, d), type_sql(COL_ID, d), type_sql(COL_ID, d), type_sql(COL_ID, d));
    case 5:
        return create_table(&tables[WIRE_DATASET], d, out);
    case 6: {
        /* One row per event that changed an entity, numbered in commit order (serve's
         * live updates read it from a cursor). The unique key makes a redelivered event
         * log nothing. */
        rc = create_table(&tables[WIRE_AGENT], d, out);
        if (rc == 0)
            rc = dynbuf_printf(out,
                               "CREATE TABLE IF NOT EXISTS change_log (id %s, type TEXT NOT NULL, "
                               "op TEXT NOT NULL, key TEXT NOT NULL, agent TEXT NOT NULL, seq %s "
                               "NOT NULL, at TEXT, UNIQUE (type, key, agent, seq));\n",
                               d == SQL_POSTGRES ? "BIGSERIAL PRIMARY KEY"
                                                 : "INTEGER PRIMARY KEY AUTOINCREMENT",
                               type_sql(COL_ID, d));
        return rc;
    }
    case 7:
        /* The views count a session's, a square's and a hole's rows that are not deleted
         * and take the newest file time: with these the counts read the index alone,
         * never the rows with their JSON (a whole visit's sessions view went from
         * seconds to milliseconds). */
        return create_indexes(out, covering, sizeof(covering) / sizeof(covering[0]));
    default:
        return -EM_EINVAL;
    }
}

const char *schema_position_upsert_sql(enum sql_dialect d)
{
    return d == SQL_POSTGRES
               ? "INSERT INTO ingest_position (source, file_id, byte_offset, updated_at) VALUES "
                 "($1, $2, $3, now()::text) ON CONFLICT (source) DO UPDATE SET file_id = "
                 "excluded.file_id, byte_offset = excluded.byte_offset, updated_at = "
                 "excluded.updated_at"
               : "INSERT INTO ingest_position (source, file_id, byte_offset, updated_at) VALUES "
                 "(?1, ?2, ?3, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) ON CONFLICT (source) DO "
                 "UPDATE SET file_id = excluded.file_id, byte_offset = excluded.byte_offset, "
                 "updated_at = excluded.updated_at";
}

int schema_change_sql(const struct schema_table *t, enum sql_dialect d, struct dynbuf *o)
{
    if (d == SQL_SQLITE)
        return dynbuf_printf(o,
                             "INSERT INTO change_log (type, op, key, agent, seq, at) VALUES (?1, "
                             "?2, ?3, ?4, ?5, strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ', 'now')) ON "
                             "CONFLICT DO NOTHING");
    int rc =
        dynbuf_printf(o,
                      "INSERT INTO change_log (type, op, key, agent, seq, at) SELECT '%s', "
                      "$1, $2, $3::text, $4::bigint, now()::text WHERE EXISTS (SELECT 1 FROM "
                      "%s WHERE agent = $3::text AND seq = $4::bigint",
                      wire_type_name((enum wire_type)(t - schema_table_of(WIRE_SESSION))), t->name);
    for (size_t i = 0; i < t->nkey && rc == 0; i++)
        rc = dynbuf_printf(o, " AND %s = $%zu%s", t->cols[i].name, i + 5,
                           t->cols[i].type == COL_ID ? "::bigint" : "::text");
    if (rc == 0)
        rc = dynbuf_printf(o, ") ON CONFLICT DO NOTHING");
    return rc;
}

static int param(struct dynbuf *o, enum sql_dialect d, size_t n)
{
    return dynbuf_printf(o, d == SQL_POSTGRES ? "$%zu" : "?%zu", n);
}

int schema_upsert_sql(const struct schema_table *t, enum sql_dialect d, struct dynbuf *o)
{
    int rc = dynbuf_printf(o, "INSERT INTO %s (", t->name);
    for (size_t i = 0; i < t->ncols && rc == 0; i++)
        rc = dynbuf_printf(o, "%s%s", i ? ", " : "", t->cols[i].name);
    if (rc == 0)
        rc = dynbuf_printf(o, ") VALUES (");
    for (size_t i = 0; i < t->ncols && rc == 0; i++) {
        if (i)
            rc = dynbuf_printf(o, ", ");
        if (rc == 0)
            rc = param(o, d, i + 1);
    }
    if (rc == 0)
        rc = dynbuf_printf(o, ") ON CONFLICT (");
    for (size_t i = 0; i < t->nkey && rc == 0; i++)
        rc = dynbuf_printf(o, "%s%s", i ? ", " : "", t->cols[i].name);
    if (rc == 0)
        rc = dynbuf_printf(o, ") DO UPDATE SET ");
    for (size_t i = t->nkey; i < t->ncols && rc == 0; i++)
        rc = dynbuf_printf(o, "%s%s = excluded.%s", i > t->nkey ? ", " : "", t->cols[i].name,
                           t->cols[i].name);
    if (rc == 0)
        rc = dynbuf_printf(o, " WHERE %s.agent <> excluded.agent OR %s.seq < excluded.seq", t->name,
                           t->name);
    return rc;
}
