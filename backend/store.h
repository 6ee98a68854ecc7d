/* store.h — the metadata store (DESIGN §8): SQLite or PostgreSQL behind one interface.
 *
 * store_open() takes "sqlite:PATH" or a libpq URL ("postgresql://…", "postgres://…"),
 * connects, and applies the migrations the store lacks (schema.h). store_apply() writes a
 * batch of events in one transaction with the idempotent upsert, so a batch is stored
 * whole or not at all, and a redelivered or stale event changes nothing.
 *
 * A store belongs to one thread.
 */
#ifndef EM_STORE_H
#define EM_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ev.h"
#include "schema.h"

struct store;
struct rules;

/* PostgreSQL: the channel a commit that changed entities notifies (LISTEN). */
#define STORE_CHANGE_CHANNEL "em_changes"

/* Where a followed event file has been read to (ingest --follow). */
struct store_position {
    const char *source;  /* the file's path as given */
    const char *file_id; /* "device:inode" of the file read */
    uint64_t offset;     /* bytes of whole lines consumed */
};

struct store_ops {
    int (*apply)(struct store *s, struct ev *evs, size_t n, const struct store_position *pos,
                 size_t *changed, char *reason, size_t cap);
    int (*query)(struct store *s, const char *sql, size_t nparams, const char *const *params,
                 int (*cb)(void *ctx, int ncols, const char *const *names, const char *const *vals),
                 void *ctx, char *reason, size_t cap);
    int (*exec)(struct store *s, const char *sql, char *reason, size_t cap);
    void (*close)(struct store *s);
    int (*wait_change)(struct store *s, int timeout_ms, char *reason, size_t cap);
};

struct store {
    const struct store_ops *ops;
    enum sql_dialect dialect;
    char redacted[512]; /* the URL for messages, without a password */
    bool durable;       /* SQLite: synchronous=FULL (a commit survives power loss) */
    /* Jobs made from stored events (rules.h), or NULL: fired after each applied batch. */
    const struct rules *rules;
};

/* The rules every store opened for writing fires (consume and ingest --movies); NULL:
 * none. Set before store_open(). */
extern const struct rules *store_rules;

/* Opens the store at `url` and brings its schema up to date. `durable` asks SQLite for
 * a full sync at each commit (consume acks after commit, so it must). Returns 0 and *out
 * (free with store_close()), or EM_EUSAGE (bad URL), EM_ESTATE (schema from a newer
 * em-backend), EM_EIO (cannot connect or migrate) with a reason. */
int store_open(const char *url, bool durable, struct store **out, char *reason, size_t cap);

/* Opens an existing store for reading only (query): nothing is created or migrated. Fails
 * with EM_ENOENT when the SQLite file does not exist (a typo must not make an empty
 * store), EM_ESTATE when it is not an em-backend store or its schema is older or newer
 * than this em-backend's, EM_EUSAGE for a bad URL, EM_EIO otherwise; with a reason. */
int store_open_readonly(const char *url, struct store **out, char *reason, size_t cap);

/* Writes the `n` events (reordered by key, so that concurrent writers take row locks in
 * the same order) in one transaction; *changed counts rows inserted or updated. Returns
 * 0, or with a reason (the transaction rolled back):
 *   EM_EVALUE  the store refused an event's own values (a constraint, a type, a size):
 *              the same event will be refused again;
 *   EM_EIO     the store itself failed (full, I/O, busy, locked, connection lost, …):
 *              nothing is wrong with the events; try again later. */
int store_apply(struct store *s, struct ev *evs, size_t n, size_t *changed, char *reason,
                size_t cap);

/* store_apply() that also records `pos` in the same transaction: after any crash the
 * store holds exactly the events up to the recorded position. */
int store_apply_at(struct store *s, struct ev *evs, size_t n, const struct store_position *pos,
                   size_t *changed, char *reason, size_t cap);

/* Reads the recorded position of `source` into file_id (cap bytes) and *offset. Returns 1
 * when there is one, 0 when not, or EM_EIO with a reason. */
int store_position_get(struct store *s, const char *source, char *file_id, size_t cap,
                       uint64_t *offset, char *reason, size_t rcap);

/* Runs a query with `?` placeholders (text parameters) and calls `cb` per row with the
 * values as text (NULL for SQL NULL); a non-zero return from cb stops. Returns 0 or
 * EM_EIO with a reason. */
int store_query(struct store *s, const char *sql, size_t nparams, const char *const *params,
                int (*cb)(void *ctx, int ncols, const char *const *names, const char *const *vals),
                void *ctx, char *reason, size_t cap);

void store_close(struct store *s);

/* Waits up to `timeout_ms` for another connection to commit a change to the store:
 * PostgreSQL by LISTEN on STORE_CHANGE_CHANNEL (the first call listens), SQLite by
 * watching PRAGMA data_version. Returns 1 (a change), 0 (none in the time) or EM_EIO
 * with a reason (the connection is lost: open another). */
int store_wait_change(struct store *s, int timeout_ms, char *reason, size_t cap);

/* Backends (store_sqlite.c, store_pg.c); store_open() picks one. */
int store_sqlite_open(const char *path, bool durable, bool readonly, struct store **out,
                      char *reason, size_t cap);
int store_pg_open(const char *conninfo, struct store **out, char *reason, size_t cap);

/* Applies the migrations the store lacks through s->ops->exec/query (shared by both). */
int store_migrate(struct store *s, char *reason, size_t cap);

#endif
