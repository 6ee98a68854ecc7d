/* madvise() and MADV_* beside the POSIX set the build asks for */
#if defined(__linux__) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE
#endif
#include "em_compat.h"

#include <errno.h>
#include <stdint.h>

#ifdef _WIN32
#include <windows.h>

void em_now(struct timespec *ts)
{
    FILETIME ft;
    GetSystemTimePreciseAsFileTime(&ft);
    /* 100 ns ticks since 1601-01-01 */
    uint64_t t = ((uint64_t)ft.dwHighDateTime << 32 | ft.dwLowDateTime) - 116444736000000000ull;
    ts->tv_sec = (time_t)(t / 10000000u);
    ts->tv_nsec = (long)(t % 10000000u) * 100;
}

ssize_t em_getline(char **line, size_t *cap, FILE *f)
{
    size_t len = 0;
    for (;;) {
        if (!*line || len + 2 > *cap) {
            size_t ncap = *cap ? *cap * 2 : 256;
            char *p = realloc(*line, ncap);
            if (!p)
                return -1;
            *line = p;
            *cap = ncap;
        }
        int c = getc(f);
        if (c == EOF)
            break;
        (*line)[len++] = (char)c;
        if (c == '\n')
            break;
    }
    if (len == 0)
        return -1;
    (*line)[len] = '\0';
    return (ssize_t)len;
}
#else
void em_now(struct timespec *ts)
{
    timespec_get(ts, TIME_UTC);
}

ssize_t em_getline(char **line, size_t *cap, FILE *f)
{
    return getline(line, cap, f);
}
#endif

void em_utc_text(time_t t, char *buf, size_t cap)
{
    struct tm tm;
#ifdef _WIN32
    gmtime_s(&tm, &t);
#else
    gmtime_r(&t, &tm);
#endif
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

#ifdef __linux__
#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif
#endif

void em_populate(void *p, size_t len)
{
#ifdef __linux__
    static atomic_int unsupported;
    if (len < ((size_t)64 << 10) || atomic_load_explicit(&unsupported, memory_order_relaxed))
        return;
    long size = sysconf(_SC_PAGESIZE);
    uintptr_t page = size > 0 ? (uintptr_t)size : 4096,
              start = ((uintptr_t)p + page - 1) & ~(page - 1),
              end = ((uintptr_t)p + len) & ~(page - 1);
    if (end > start && madvise((void *)start, end - start, MADV_POPULATE_WRITE) != 0 &&
        errno == EINVAL)
        atomic_store_explicit(&unsupported, 1, memory_order_relaxed);
#else
    (void)p;
    (void)len;
#endif
}
