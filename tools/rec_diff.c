#include "rec_diff.h"

#include <stdlib.h>

#include "hash.h"

bool rec_blocks_of(const unsigned char *p, size_t n, uint64_t **out, size_t *count)
{
    size_t nb = (n + REC_BLOCK - 1) / REC_BLOCK;
    uint64_t *b = nb ? malloc(nb * sizeof(*b)) : NULL;
    for (size_t i = 0; b && i < nb; i++) {
        size_t len = i + 1 < nb ? REC_BLOCK : n - i * REC_BLOCK;
        b[i] = hash64_bytes(p + i * REC_BLOCK, len);
    }
    *out = b;
    *count = b ? nb : 0;
    return b || nb == 0;
}

struct rec_change rec_diff(const struct rec_blocks *old, bool was_placeholder,
                           const unsigned char *p, size_t n, const uint64_t *nb, size_t nnb)
{
    struct rec_change c = {.type = REC_REWRITE, .data = p, .len = n};
    if (!old) {
        c.type = was_placeholder ? REC_REWRITE : REC_CREATE;
        return c;
    }
    uint64_t o = old->size;
    size_t full = (size_t)(o / REC_BLOCK);
    /* Blocks equal before the first difference, up to the shorter size. */
    size_t common = 0;
    size_t lim = (size_t)((n < o ? n : o) / REC_BLOCK);
    while (common < lim && common < nnb && common < old->count && nb[common] == old->hash[common])
        common++;
    bool prefix_same = false; /* the old bytes are a prefix of the new */
    if (n >= o && common >= full) {
        size_t tail = (size_t)(o % REC_BLOCK);
        prefix_same = tail == 0 || (full < old->count &&
                                    hash64_bytes(p + full * REC_BLOCK, tail) == old->hash[full]);
    }
    if (n == o && prefix_same) {
        c.same = true;
        c.data = NULL;
        c.len = 0;
    } else if (n > o && prefix_same) {
        c.type = REC_APPEND;
        c.offset = o;
        c.data = p + o;
        c.len = n - (size_t)o;
    } else if (n < o && n % REC_BLOCK == 0 && common == n / REC_BLOCK) {
        c.type = REC_TRUNCATE;
        c.data = NULL;
        c.len = 0;
    } else if (n == o && common > 0) {
        /* Same size, changed from block `common` on: up to the last changed block. */
        size_t last = nnb - 1;
        while (last > common && last < old->count && nb[last] == old->hash[last])
            last--;
        size_t end = (last + 1) * REC_BLOCK < n ? (last + 1) * REC_BLOCK : n;
        c.type = REC_WRITE;
        c.offset = common * REC_BLOCK;
        c.data = p + c.offset;
        c.len = end - (size_t)c.offset;
    }
    return c;
}
