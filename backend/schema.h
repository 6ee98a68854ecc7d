/* schema.h — the metadata store's tables, described once (DESIGN §8).
 *
 * One description gives the SQL for both dialects: CREATE TABLE and CREATE INDEX for
 * each migration, and the idempotent upsert of each entity table. Every entity table
 * has its natural key (unique) first, then the columns the queries use, then the common
 * columns: agent, seq, deleted, data (the entity's JSON), source_path, source_mtime,
 * emitted_at.
 *
 * The upsert is `INSERT … ON CONFLICT (key) DO UPDATE … WHERE stored.agent <>
 * excluded.agent OR stored.seq < excluded.seq`: an event that is not newer than the
 * stored one from the same agent (a redelivery, a replay, a stale event) changes nothing.
 *
 * Migrations are numbered from 1; the table em_schema records which are applied. A
 * store written by a newer em-backend (a higher number) is refused.
 */
#ifndef EM_SCHEMA_H
#define EM_SCHEMA_H

#include <stddef.h>

#include "dynbuf.h"
#include "ev.h"

enum sql_dialect { SQL_SQLITE, SQL_POSTGRES };

enum col_type { COL_ID, COL_TEXT, COL_JSON, COL_FLAG };

struct schema_col {
    const char *name;
    enum col_type type;
    int notnull;
};

struct schema_table {
    const char *name;
    const struct schema_col *cols; /* key columns first */
    size_t ncols, nkey;
};

/* The table of entity type `t`. */
const struct schema_table *schema_table_of(enum wire_type t);

/* The number of the newest migration this build knows. */
int schema_version(void);

/* Appends migration `version`'s statements to `out`, separated by ";\n". Returns 0 or a
 * negative EM_E* code. */
int schema_migration_sql(int version, enum sql_dialect d, struct dynbuf *out);

/* The statement that records a followed file's position (parameters: source, file_id,
 * byte_offset), for the transaction that stores the events read up to it. */
const char *schema_position_upsert_sql(enum sql_dialect d);

/* A one-line description of migration `version`. */
const char *schema_migration_what(int version);

/* Appends the upsert statement of `t` to `out`: parameters are the table's columns in
 * order (?N for SQLite, $N for PostgreSQL). */
/* The change_log insert for an event of table `t`. SQLite (run only when the upsert
 * changed a row): ?1 type, ?2 op, ?3 key JSON, ?4 agent, ?5 seq. PostgreSQL (pipelined
 * with the upserts, so it asks the table): $1 op, $2 key JSON, $3 agent, $4 seq, then the
 * table's key columns from $5; it logs only when the row holds this event. */
int schema_change_sql(const struct schema_table *t, enum sql_dialect d, struct dynbuf *out);

int schema_upsert_sql(const struct schema_table *t, enum sql_dialect d, struct dynbuf *out);

#endif
