/* em_utf8.h — UTF-8 checks and the one way bytes that are not UTF-8 are written.
 *
 * File names on Linux are bytes; events, logs and the store are UTF-8. A name that is not
 * UTF-8 is written with each byte that is not part of a well-formed UTF-8 sequence as the
 * four characters `\xHH` (HH: two lower-case hex digits), everything else unchanged. The
 * same rule serves scan and watch, so both name such a file identically.
 *
 * Pure functions; any thread.
 */
#ifndef EM_UTF8_H
#define EM_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Length of the well-formed UTF-8 sequence at s[0..n) (1 to 4), or 0 when s does not
 * start one (stray continuation, overlong form, surrogate, beyond U+10FFFF, cut short). */
size_t em_utf8_seq(const unsigned char *s, size_t n);

/* Whether all `n` bytes of `s` are well-formed UTF-8. */
bool em_utf8_valid(const void *s, size_t n);

/* Writes `s` (n bytes) to `out` with every byte outside a well-formed sequence as `\xHH`
 * and returns the length written. `out` must hold 4 * n + 1 bytes; it is NUL-terminated.
 * With `json`, the backslash is doubled (`\\xHH`), for text placed inside a JSON string
 * that is already encoded. */
size_t em_utf8_escape(const void *s, size_t n, char *out, bool json);

#endif
