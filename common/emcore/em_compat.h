/* em_compat.h — what differs between the C libraries the agent is built against: glibc on
 * Linux, mingw-w64's msvcrt on Windows (see ../shared/reference/windows-build.md §8).
 *
 * EM_PRINTF: printf-format checking of the formats this code writes (C99: %zu, %lld).
 * mingw's plain `printf` attribute means Microsoft's formats, where %zu is an error; with
 * _POSIX_C_SOURCE set, mingw routes printf to its own C99 implementation, which
 * `gnu_printf` describes.
 *
 * em_strndup: msvcrt has no strndup (an implicit declaration there would truncate the
 * returned pointer to 32 bits).
 *
 * em_isfinite: mingw's isfinite macro has a float branch that -Wfloat-conversion flags.
 */
#ifndef EM_COMPAT_H
#define EM_COMPAT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#ifdef __MINGW32__
#define EM_PRINTF(fmt, args) __attribute__((format(gnu_printf, fmt, args)))
#define em_isfinite(x) __builtin_isfinite(x)
#else
#define EM_PRINTF(fmt, args) __attribute__((format(__printf__, fmt, args)))
#include <math.h>
#define em_isfinite(x) isfinite(x)
/* The wall clock (timespec_get(TIME_UTC), which msvcrt lacks). */
void em_now(struct timespec *ts);

/* getline(), which msvcrt lacks: the next line of f with its newline into *line (grown as
 * needed); its length, or -1 at the end of the file or on an error. */
ssize_t em_getline(char **line, size_t *cap, FILE *f);

#endif

/* A copy of at most n bytes of s, NUL-terminated; NULL when out of memory. */
static inline char *em_strndup(const char *s, size_t n)
{
    const char *end = memchr(s, '\0', n);
    size_t len = end ? (size_t)(end - s) : n;
    char *d = malloc(len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

/* The wall clock (timespec_get(TIME_UTC), which msvcrt lacks). */
void em_now(struct timespec *ts);

/* getline(), which msvcrt lacks: the next line of f with its newline into *line (grown as
 * needed); its length, or -1 at the end of the file or on an error. */
ssize_t em_getline(char **line, size_t *cap, FILE *f);

/* Backs the whole pages inside [p, p + len) with memory now, in one system call
 * (Linux's MADV_POPULATE_WRITE), instead of one page fault per 4 KiB page as they are
 * first written. For large blocks that are about to be filled in one go: a restart's
 * journal and model (150 MB). On the 2-core VM of the benchmarks a page fault costs about
 * 10 us, so 37,000 of them were 0.4 s of a 2 s restart; populating the same memory in
 * one call costs a fifteenth of that. Does nothing for a block under 64 KiB, elsewhere than
 * Linux, or on a kernel older than 5.14; the content is not changed. */
void em_populate(void *p, size_t len);

/* Unix seconds `t` as "YYYY-MM-DDTHH:MM:SSZ" (UTC) into buf (at least 21 bytes). */
void em_utc_text(time_t t, char *buf, size_t cap);

#endif
