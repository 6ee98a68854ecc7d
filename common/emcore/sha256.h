/* sha256.h — SHA-256 (FIPS 180-4), streaming (emcore: the tools and the loaders).
 *
 * Recordings name file contents by their SHA-256 so that `fsrecorder verify` can compare
 * a replayed tree with the recording, and so that the hashes agree with `sha256sum`; the
 * loaders record and verify the digest of every file they fetch.
 */
#ifndef EM_SHA256_H
#define EM_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct sha256 {
    uint32_t h[8];
    uint64_t len; /* bytes fed so far */
    unsigned char block[64];
    unsigned nblock;
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t len);
/* Writes the digest of everything fed so far to `out` (32 bytes); `s` stays usable. */
void sha256_final(const struct sha256 *s, unsigned char out[32]);
/* The digest as 64 lower-case hex digits and a NUL. */
void sha256_hex(const struct sha256 *s, char out[65]);
/* One-shot hex digest of `len` bytes. */
void sha256_hex_bytes(const void *data, size_t len, char out[65]);

#endif
