/* treestate.h — the state of a recorded tree after a sequence of operations: which
 * directories and files exist, each file's size and SHA-256 (or "placeholder": only the
 * size is known). `fsrecorder verify` compares it with a directory; `info` counts it.
 * Not thread-safe.
 */
#ifndef EM_TREESTATE_H
#define EM_TREESTATE_H

#include <stdbool.h>
#include <stdint.h>

#include "hmap.h"
#include "recording.h"

enum ts_kind { TS_DIR, TS_FILE, TS_PLACEHOLDER };

struct ts_node {
    char *path;
    enum ts_kind kind;
    uint64_t size;
    bool hashed; /* sha256 is known */
    char sha256[65];
    bool seen; /* set by treestate_compare */
};

struct treestate {
    struct hmap map; /* hash of path -> struct ts_node * */
};

void treestate_init(struct treestate *s);
void treestate_free(struct treestate *s);

/* Applies one operation. Returns 0 or EM_ENOMEM. */
int treestate_apply(struct treestate *s, const struct rec_op *op);

/* Counts of what the state holds. */
void treestate_count(const struct treestate *s, uint64_t *dirs, uint64_t *files,
                     uint64_t *placeholders, uint64_t *bytes);

struct ts_report {
    uint64_t checked, missing, different, extra;
};

/* Compares the directory `root` with the state: every directory and file of the state
 * must exist with the same size and, where known, the same SHA-256. Files in `root` the
 * state does not have count as `extra`. Each difference is printed on stderr (the first
 * `max_print`). Returns 0 or EM_ENOMEM. */
int treestate_compare(struct treestate *s, const char *root, unsigned max_print,
                      struct ts_report *rep);

/* SHA-256 of the file at `path` into hex; returns 0 or a negative EM_E* code. */
int treestate_hash_file(const char *path, char hex[65]);

#endif
