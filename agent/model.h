/* model.h — the entity graph of one watched root, built incrementally (DESIGN §5).
 *
 * The watcher tells the model about files as they are parsed, in any order; the model
 * keeps what it needs to rebuild each entity's merged state and, on model_flush(),
 * rebuilds the entities that may have changed and hands them to the sink. The sink
 * decides whether the state is new (the journal remembers what was emitted), so the
 * model never has to.
 *
 * What is kept: session and atlas documents (few), one JSON string per source part of
 * each grid square and foil hole (.dm fields, targets, newest images), the .dm exposure
 * map, and per micrograph only its path, square and exposure id. A micrograph whose
 * exposure id changes is re-read through the `load` callback.
 *
 * Parents may arrive after children. A square or hole knows its session directory from
 * its path, so it is emitted as soon as the directory's EpuSession.dm has given the
 * session id; until then its parts are held (up to MODEL_MAX_HELD entities per root,
 * beyond which the session directory is handed to `rescan` once its id is known).
 * Entities of a square whose .dm or image arrive later are emitted again with the
 * missing parts; an atlas that appears after its session is linked when it appears.
 *
 * One model belongs to one thread.
 */
#ifndef EM_MODEL_H
#define EM_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "epu.h"
#include "event.h"
#include "fsio.h"

#define MODEL_MAX_HELD 200000

struct model_callbacks {
    /* Receives one entity's current state; takes ownership of `key` and `data`.
     * `source` and `st` describe the file the state mostly comes from and stay valid only
     * during the call. Returns 0 or a negative EM_E* (which model_flush() passes on). */
    int (*emit)(void *ctx, enum wire_type type, cJSON *key, cJSON *data, const char *source,
                const struct fsio_stat *st);
    /* The entity `key` (of `type`; ownership taken) no longer exists under that key: its
     * session's id changed, or its session directory went away. `source` names why. May be
     * NULL (then nothing is retracted). Returns 0 or a negative EM_E*. */
    int (*retract)(void *ctx, enum wire_type type, cJSON *key, const char *source);
    /* Reads and parses the file `rel` (relative to the root) again. Returns a document
     * you own, or NULL when it is gone or unparseable now (the entity is then skipped
     * until the file changes again). */
    struct epu_doc *(*load)(void *ctx, const char *rel, enum epu_kind kind, struct fsio_stat *st);
    /* Asks for every file under `session_dir` to be handed over again (the model had
     * to drop held parts). May be NULL. */
    void (*rescan)(void *ctx, const char *session_dir);
    void *ctx;
    /* When true, model_file() keeps the names of micrographs and foil-hole images (the
     * part of `rel` after its last '/') as the caller's copy `keep` instead of copying
     * them: the caller promises it stays valid and unchanged while the model lives (the
     * watch passes names from its journal, which outlives it). Directories are interned
     * by the model either way. */
    bool borrow_paths;
    /* When true, `retract` may also be called for an entity this model did not emit, when
     * an earlier run (whose state the caller keeps) may have: the caller sends a delete
     * only for what it emitted. The watch sets it; its journal decides. */
    bool retract_unknown;
    /* Optional: `emit` with the data already written as JSON text (cJSON_free it; owned
     * like `key`). Used for micrographs whose fields a parse worker wrote. */
    int (*emit_text)(void *ctx, enum wire_type type, cJSON *key, char *data_json,
                     const char *source, const struct fsio_stat *st);
};

struct model_stats {
    size_t sessions, atlases, squares, holes, micrographs;
    size_t held;    /* entities waiting for their session's id */
    size_t dropped; /* parts dropped because MODEL_MAX_HELD was reached */
};

struct model;

/* A model for the tree at `root` (used to find atlases on disk). NULL when out of memory. */
struct model *model_new(const char *root, const struct model_callbacks *cb);

/* Takes note of the file `rel` (relative to the root, '/'-separated) of `kind`: `doc` is
 * its parsed content, or NULL when it exists but cannot be parsed (a square's file still
 * makes the square exist, as in scan). `keep`: the caller's stable copy of rel's name
 * when the model borrows (borrow_paths), else NULL. Takes ownership of `doc` whatever
 * happens. A micrograph may be handed to the sink from here. Returns 0, EM_ENOMEM or the
 * sink's error. */
int model_file(struct model *m, const char *rel, const char *keep, enum epu_kind kind,
               struct epu_doc *doc, const struct fsio_stat *st);

/* model_file() for a micrograph whose fields a parse worker already wrote as JSON text
 * (entity_micrograph_doc_json(); NULL: none). Does not take `doc_json`. */
int model_file_json(struct model *m, const char *rel, const char *keep, enum epu_kind kind,
                    struct epu_doc *doc, const struct fsio_stat *st, const char *doc_json);

/* The session directory `dir` (relative to the root) is gone: every entity it gave is
 * retracted and forgotten, so that a directory made again at that path is read afresh.
 * Returns 1 when `dir` was a session directory, 0 when not, or a negative EM_E*. */
int model_forget_dir(struct model *m, const char *dir);

/* Forgets (as model_forget_dir()) every session directory that `identify` says is gone
 * (returns 0; 1 when there, with its identity; -1 when it cannot tell) or is another directory than
 * the one first seen there (device and inode differ: deleted and made again between two looks); one
 * made again is handed to `rescan` to be read afresh. The periodic check's way to see what no watch
 * event tells (polling, the portable backend, a quick delete and copy). Returns the number
 * forgotten, or a negative EM_E*. */
int model_forget_missing(struct model *m,
                         int (*identify)(void *ctx, const char *dir, uint64_t *dev, uint64_t *ino),
                         void *ctx);

/* The file `rel` of `kind` stays unreadable (incomplete for good): what it said is
 * withdrawn, so the entities become what scan gives for a tree where the file cannot be
 * parsed. For a square's .dm: its metadata, hole targets (a hole known only from it is
 * retracted) and exposure map; for an EpuSession.dm: the whole session directory, read
 * again once the file parses. Other kinds keep their last version. Returns 0 or a
 * negative EM_E*. */
int model_withdraw(struct model *m, const char *rel, enum epu_kind kind);

/* Rebuilds every entity that may have changed and hands each to the sink, parents
 * before children. Returns 0 or the first error. */
int model_flush(struct model *m);

/* Entities waiting to be rebuilt (a flush is due when this is not 0). */
size_t model_dirty(const struct model *m);

void model_stats(const struct model *m, struct model_stats *st);

/* A snapshot of the model, so that a restart needs not read the tree again (DESIGN §6).
 * model_save() writes every session, atlas, square, hole and micrograph part the model
 * keeps, as text ending in an end record; it refuses (EM_ESTATE, EM_EINVAL) a model with
 * entities still due or dropped parts, or names it cannot write. Documents are not
 * written: session and atlas files are read again on restore (a few), through `load`. */
int model_save(struct model *m, FILE *f);

/* How many calls since model_new() may have changed what a snapshot holds (files taken
 * in, directories forgotten, files withdrawn): 0 after a restore means the snapshot
 * read is still the model. */
uint64_t model_changes(const struct model *m);

struct model_restore_cb {
    /* The file `rel` (a session's or an atlas's) parsed: the version the snapshot was made
     * from, or a later one that the caller hands over again (model_file()) after the
     * restore; NULL when neither (the restore fails). */
    struct epu_doc *(*load)(void *ctx, const char *rel, enum epu_kind kind, struct fsio_stat *st);
    /* The caller's stable copy of the name of `rel` (after its last '/'), for a model
     * that borrows paths; NULL when it has none (the restore fails). */
    const char *(*path)(void *ctx, const char *rel);
    void *ctx;
    /* Optional: a hint that path() will be asked for `rel` some records later. Step 0
     * (rel set) returns a token, step 1 (rel NULL) gets it back a few records later; the
     * caller may prefetch what the lookup will touch. */
    uint64_t (*prefetch)(void *ctx, const char *rel, int step, uint64_t token);
};

/* Fills a new, empty model from a snapshot written by model_save(). Returns 0, or a
 * negative EM_E* (EM_ETRUNCATED, EM_EMALFORMED, EM_ESTATE for a file changed since, or
 * EM_ENOMEM); on failure free the model and start a new one. Nothing is due afterwards:
 * what was restored is what was emitted. */
int model_restore(struct model *m, FILE *f, const struct model_restore_cb *cb);

void model_free(struct model *m);

#endif
