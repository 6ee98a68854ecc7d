/* journal.h — the agent's durable memory in its state directory (DESIGN §5–6).
 *
 * One append-only text file, `journal`, holds:
 *   - per file: size, mtime, content hash and parse state of the version last processed;
 *   - per emitted event: its seq, the hash of its entity key and of its data, and (until
 *     the sink has taken it) the event line itself;
 *   - the highest seq the sink has taken ("delivered").
 * On open the journal is read back (a torn last line from a kill -9 is dropped) and
 * rewritten compactly; it is compacted again as it grows. Records reach the file with
 * one write per journal_commit(), before the events they describe reach the sink, so a
 * killed agent restarts knowing every event it may have emitted: an entity whose data
 * hash is unchanged is never emitted again, and an event that was journaled but perhaps
 * not delivered is sent again with its original seq.
 *
 * A lock file keeps a second agent out of the same state directory. One journal belongs
 * to one thread.
 */
#ifndef EM_JOURNAL_H
#define EM_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pathkey.h"

enum journal_file_state {
    JFILE_DONE = 0,    /* parsed; hash is the content's */
    JFILE_FAILED = 1,  /* malformed or unreadable (reported once) */
    JFILE_WAITING = 2, /* incomplete: the next change is parsed from the start */
};

/* A file's record: fixed fields, its directory (an index in the journal's table of
 * directories, each held once) and its name. Records live in one arena, packed to 8
 * bytes, never one allocation each (a visit has 600,000 of them). */
struct journal_file {
    uint64_t size;
    int64_t mtime_sec;
    uint64_t hash;
    int32_t mtime_nsec;
    uint32_t dir; /* see journal_file_dir() */
    uint8_t state : 7;
    /* Its last record lies after the journal's mark (journal_mark()): the model snapshot
     * made at the mark does not hold what this version said. Not stored as a field: read
     * back from where the record lies. In the state's byte: a visit has 600,000 records. */
    uint8_t after_mark : 1;
    bool seen; /* processed since this run started (not stored) */
    char name[];
};

/* An event journaled but not known to be delivered. */
struct journal_pending {
    uint64_t seq;
    char *line;
};

/* The journal's state is its own (journal.c); what others may read of it: */
struct journal;

struct journal_info {
    const char *path;                      /* the journal file */
    const char *agent;                     /* whose it is */
    uint64_t last_seq;                     /* highest seq journaled */
    uint64_t delivered;                    /* highest seq the sink took */
    uint64_t loaded_seq, loaded_delivered; /* as read back at open (0 for a new journal) */
    uint64_t last_event_us;                /* when the last event was journaled (0: never) */
    uint64_t bytes;                        /* size of the file */
    uint64_t compacted;                    /* its size after the last compaction */
    size_t files, entities;                /* records held */
    const struct journal_pending *pending; /* seq > delivered at open, ascending */
    size_t npending;
    uint64_t mark_id;    /* the last mark's (journal_mark()); 0: none */
    bool fresh;          /* no journal was read: new, or damaged and set aside */
    bool loaded_compact; /* the file read was as compaction writes it */
};

void journal_info(const struct journal *j, struct journal_info *out);

/* Tests: read the journal back `bytes` at a time (0: the default, 1 MiB), so that small
 * journals have records cut by the ends of chunks. */
void journal_set_load_chunk(size_t bytes);

/* The journal file's path (for messages). */
const char *journal_path(const struct journal *j);

/* The highest seq journaled (the next event's is one more). */
uint64_t journal_last_seq(const struct journal *j);

/* fdatasync after each commit (power-loss safety) or not. */
void journal_set_fsync(struct journal *j, bool on);

/* Holds compaction off (a walk journals every file of a tree once, so compacting while
 * it runs rewrites the growing state again and again: nine times over for a 600,000-file
 * visit) or lets it happen again at the next commit. */
void journal_hold_compaction(struct journal *j, bool hold);

/* Opens (creating) the journal in `dir` for agent `agent`, whose files are under `roots`
 * (absolute, as the agent names them: records keep their paths relative to them). A journal that is
 * damaged (not a journal, unreadable records) is set aside as journal.damaged-<time>, reported as
 * an error, and replaced by an empty one. The run's seqs start above every earlier seq: last_seq is
 * raised to the clock in microseconds when lower, so seq never goes back for an agent even when its
 * journal was lost, truncated or damaged. Fails with EM_ESTATE when another process holds the
 * directory or the journal belongs to another agent name, or a negative EM_E* naming the cause
 * (EM_EACCES, EM_ENOSPC, …). *reason gets a message. */
int journal_open(struct journal **out, const char *dir, const char *agent, const char *const *roots,
                 size_t nroots, char *reason, size_t reason_cap);

/* The pid of the process holding the state directory `dir`, or 0 when none does. */
long journal_lock_holder(const char *dir);

/* Reads the journal of `dir` without locking or changing it (for `em-agent status`):
 * agent, last_seq, delivered, entities (live ones), files and last_event_us are filled.
 * Returns 0, EM_ENOENT when there is no journal, or another negative EM_E* code (with a
 * reason). Free with journal_close(). */
int journal_peek(struct journal **out, const char *dir, char *reason, size_t reason_cap);

/* Entities emitted and not deleted since. */
size_t journal_live_entities(const struct journal *j);

/* Whether the entity `key_hash` was last emitted with `data_hash`. */
bool journal_entity_same(const struct journal *j, uint64_t key_hash, uint64_t data_hash);

/* Whether the entity `key_hash` was emitted and not deleted since (a delete is journaled
 * with data hash 0). */
bool journal_entity_live(const struct journal *j, uint64_t key_hash);

/* Records event `seq` (must be last_seq + 1) and its line (no newline). Buffered until
 * journal_commit(). Returns 0 or EM_ENOMEM. */
int journal_event(struct journal *j, uint64_t seq, uint64_t key_hash, uint64_t data_hash,
                  const char *line);

/* Records that the sink has taken every event up to `seq`. Buffered. */
int journal_delivered(struct journal *j, uint64_t seq);

/* The absolute path of a record, written into buf (cap bytes; cut short when longer).
 * Returns buf. */
char *journal_file_path(const struct journal *j, const struct journal_file *f, char *buf,
                        size_t cap);

/* What comes before a record's name in its path: the directory relative to the journal
 * root the file is under, with a trailing '/' ("" for a file in the root itself), and in
 * *root 1 + that root's index in journal_open's list; or, for a file under no root, the
 * absolute directory with its '/' and *root 0. The string lives as long as the journal. */
const char *journal_file_dir(const struct journal *j, const struct journal_file *f, uint16_t *root);

/* The record of `path`, or NULL. */
struct journal_file *journal_file_find(const struct journal *j, const char *path);

/* Finds or creates the record of `path` (new ones are zero, not seen). NULL when out of
 * memory. */
struct journal_file *journal_file_get(struct journal *j, const char *path);

/* The same, for a path already hashed (pathkey.h): the journal hashes nothing more. */
struct journal_file *journal_file_find_key(const struct journal *j, const struct pathkey *k);
struct journal_file *journal_file_get_key(struct journal *j, const struct pathkey *k);

/* The directory of the last lookup, kept for the next: a caller that looks up many files
 * of one directory in a row (a walk's directory, the journal's own load, a snapshot's
 * restore) finds the directory once and hashes only the names. Zero it before its first
 * use, journal_dircache_free() it after; one per thread. */
struct journal_dircache {
    char *dir; /* the path's directory part with its '/' */
    size_t len, cap;
    uint64_t hash; /* of dir (a pathkey's dir_hash) */
    uint32_t index;
    uint64_t gen; /* the journal's directory set it was found in */
    bool valid;
};
void journal_dircache_free(struct journal_dircache *c);

/* Whether the journal has files in k's directory. */
bool journal_dir_known(const struct journal *j, struct journal_dircache *c,
                       const struct pathkey *k);

/* The index of k's directory among the journal's (through the cache), or -1 when the
 * journal has no file there. With it, journal_file_find_in() finds the directory's files by
 * name without the cache: safe on several threads at once while nobody changes the
 * journal (a walk's helper thread looks files up beside the loop thread). */
int64_t journal_dir_index(const struct journal *j, struct journal_dircache *c,
                          const struct pathkey *k);
struct journal_file *journal_file_find_in(const struct journal *j, uint32_t dir, const char *name,
                                          uint64_t name_hash);
/* Hints for a journal_file_find_in() soon (hset_prefetch): step 0, then step 1 some work
 * later (a system call), then the lookup finds its memory loaded. */
void journal_file_prefetch(const struct journal *j, uint32_t dir, uint64_t name_hash, int step);

/* The same hints by path, for a reader that looks paths up one after another (a
 * snapshot's restore): step 0 returns a token (0: the directory is not known, nothing to
 * hint), step 1 takes it some work later; then journal_file_find_path_cached() of `path`
 * finds its memory loaded. `c` should not be the cache of those lookups (the hints run
 * some paths ahead of them). */
uint64_t journal_file_prefetch_path(const struct journal *j, struct journal_dircache *c,
                                    const char *path);
void journal_file_prefetch_token(const struct journal *j, uint64_t token);

/* journal_file_find_key() and journal_file_find() through a cache. */
struct journal_file *journal_file_find_cached(const struct journal *j, struct journal_dircache *c,
                                              const struct pathkey *k);
struct journal_file *journal_file_find_path_cached(const struct journal *j,
                                                   struct journal_dircache *c, const char *path);
/* journal_file_get_key() through a cache. */
struct journal_file *journal_file_get_cached(struct journal *j, struct journal_dircache *c,
                                             const struct pathkey *k);

/* Marks every file under the directory `dir` (absolute) as not processed in this run,
 * so that files there are read again even when their size and mtime are unchanged. */
void journal_files_unsee(struct journal *j, const char *dir);

/* Records a file's new state (after changing *f). Buffered. The record now lies after the
 * mark (f->after_mark). */
int journal_file_note(struct journal *j, struct journal_file *f);

/* The mark: a record that says "a model snapshot named `id` holds what every file record
 * before this one said". Buffered (journal_commit() writes it). Every file's after_mark is
 * cleared; records noted later set theirs again. Reading the journal back, each file's
 * after_mark says whether its last record came after the last mark, and compaction keeps
 * that (the records before the mark, the mark, the records after it). Not while a
 * compaction runs on its thread (journal_compact_start()). */
int journal_mark(struct journal *j, uint64_t id);

/* The same at the end of a run, cheaper: the files' after_mark are left as they are (a
 * compaction takes every record as before this mark); nothing may be noted after it. */
int journal_mark_final(struct journal *j, uint64_t id);

/* How many files' records lie after the mark (kept as records are noted and marked). */
size_t journal_files_after_mark(const struct journal *j);

/* Writes buffered records with one write, then compacts the file when it has doubled
 * since the last compaction (at least 64 MiB) and every event is delivered. Returns 0 or EM_EIO
 * (the records stay buffered). */
int journal_commit(struct journal *j);

/* Forgets every entity and file (not the seq): the next walk parses everything and
 * emits the current state of every entity again. For state found inconsistent. */
void journal_forget(struct journal *j);

/* Like journal_forget(), but events journaled and not yet delivered are still re-sent
 * (--from-start: a delete among them must not be lost). */
void journal_forget_entities(struct journal *j);

/* Frees the pending list once it has been re-sent. */
void journal_pending_clear(struct journal *j);

/* At the end of a run: commits, then, when journal_close() would compact the journal,
 * starts that on a thread of its own, so that other state can be written meanwhile (the
 * model snapshots). Until journal_compact_join(), the caller only reads the journal:
 * journal_last_seq() and the names and paths it holds. A failed compaction is logged and
 * leaves the journal as it was (read whole at the next start). */
void journal_compact_start(struct journal *j);
/* Waits for journal_compact_start()'s compaction. Returns 0 or its error (logged). */
int journal_compact_join(struct journal *j);

/* Commits and closes; releases the lock. Returns journal_commit()'s result. */
int journal_close(struct journal *j);

#endif
