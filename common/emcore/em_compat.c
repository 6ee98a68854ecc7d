#include "em_compat.h"

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
