/* hash.h — a fast 64-bit, non-cryptographic, streaming hash of bytes.
 *
 * The value of a given byte sequence is the same on every platform and every run (it is
 * stored in the journal) and does not depend on how the bytes were split into updates.
 * It detects changed content and keys maps; it is no defence against a chosen collision.
 */
#ifndef EM_HASH_H
#define EM_HASH_H

#include <stddef.h>
#include <stdint.h>

struct hash64 {
    uint64_t h;
    uint64_t len;
    unsigned char carry[8];
    unsigned ncarry;
};

void hash64_init(struct hash64 *s);
void hash64_update(struct hash64 *s, const void *data, size_t len);
/* The hash of everything fed so far; `s` stays usable for more updates. Never 0. */
uint64_t hash64_final(const struct hash64 *s);

/* One-shot forms. */
uint64_t hash64_bytes(const void *data, size_t len);
uint64_t hash64_str(const char *s);

#endif
