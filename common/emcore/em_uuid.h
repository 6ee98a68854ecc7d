/* em_uuid.h — a key string that is usually a UUID, kept in 17 bytes instead of a
 * 37-byte allocation (a visit has 500,000 micrograph uuids in memory).
 *
 * A canonical UUID (8-4-4-4-12 hex digits, all lower or all upper case) is kept as 16
 * bytes and a form; any other string (mixed case, another length) is kept as a copy. What
 * em_uuid_get() gives back is always the exact string that was set.
 */
#ifndef EM_UUID_H
#define EM_UUID_H

#include <stdbool.h>
#include <stdint.h>

#define EM_UUID_TEXT 37 /* a canonical UUID and its NUL */

/* 17 bytes, aligned to 1, so that it packs with its neighbours (a union holding the
 * copy's pointer would align it to 8 and make it 24). */
struct em_uuid {
    uint8_t bin[16]; /* the UUID; for form EM_UUID_STRING, the copy's pointer (memcpy) */
    uint8_t form;    /* enum below */
};

enum { EM_UUID_NONE = 0, EM_UUID_LOWER, EM_UUID_UPPER, EM_UUID_STRING };

/* Sets `k` to `s` (NULL: none), freeing what it held. Returns 0, or -1 when out of memory
 * (k is then none). */
int em_uuid_set(struct em_uuid *k, const char *s);

/* The string `k` holds (in buf for a UUID, which must have EM_UUID_TEXT bytes), or NULL. */
const char *em_uuid_get(const struct em_uuid *k, char *buf);

/* Whether `k` holds exactly `s` (NULL: none). */
bool em_uuid_eq(const struct em_uuid *k, const char *s);

void em_uuid_clear(struct em_uuid *k);

#endif
