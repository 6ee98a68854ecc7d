/* rec_diff.h — how a file's new bytes differ from the version last recorded (pure: no
 * file system, no clock, no allocation but the block list).
 *
 * The recorder keeps of each file only its size and a 64-bit hash per REC_BLOCK bytes,
 * not the bytes. rec_diff() compares new bytes with that and chooses the operation:
 *   - nothing recorded before (or a placeholder): create (rewrite after a placeholder);
 *   - the same bytes: a same-content rewrite (recorded only when the mtime moved);
 *   - growth behind an unchanged prefix: an append of the new tail;
 *   - a shrink to an unchanged prefix on a block boundary: a truncate;
 *   - the same size, changed from one block to another: a write of those blocks;
 *   - anything else (a rewrite that grows or shrinks elsewhere): a rewrite, all bytes.
 */
#ifndef EM_REC_DIFF_H
#define EM_REC_DIFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "recording.h"

#define REC_BLOCK 4096u

/* What was recorded of a file: its size and the hash of each REC_BLOCK-byte block (the
 * last one shorter). */
struct rec_blocks {
    uint64_t size;
    const uint64_t *hash;
    size_t count;
};

/* The operation that turns the recorded version into the new bytes. */
struct rec_change {
    enum rec_op_type type;     /* REC_CREATE, REC_REWRITE, REC_APPEND, REC_TRUNCATE, REC_WRITE */
    bool same;                 /* REC_REWRITE of unchanged bytes (no data) */
    uint64_t offset;           /* REC_APPEND, REC_WRITE */
    const unsigned char *data; /* into the new bytes; NULL when none is stored */
    size_t len;
};

/* The block hashes of `n` bytes at `p`, in a new array (*out, *count; NULL and 0 for no
 * bytes). Returns false when out of memory. */
bool rec_blocks_of(const unsigned char *p, size_t n, uint64_t **out, size_t *count);

/* Compares the new bytes `p`/`n` (with their block hashes `nb`/`nnb` from
 * rec_blocks_of) with `old`, the version recorded (NULL: none, or a placeholder; then
 * `was_placeholder` says which). */
struct rec_change rec_diff(const struct rec_blocks *old, bool was_placeholder,
                           const unsigned char *p, size_t n, const uint64_t *nb, size_t nnb);

#endif
