/* testutil.h — helpers shared by the cmocka tests. */
#ifndef EM_TESTUTIL_H
#define EM_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>

#include "epu.h"

/* Reads a whole file into a new buffer (NUL-terminated; you free it). NULL if absent. */
char *tu_read(const char *path, size_t *len);

/* Writes `len` bytes to `path`; returns 0 or -1. */
int tu_write(const char *path, const void *buf, size_t len);

/* A new string: dir + "/" + rel. */
char *tu_path(const char *dir, const char *rel);

/* A new empty directory /tmp/em-<name>-XXXXXX (you free the string); fails the test
 * when it cannot be made. */
char *tu_tmpdir(const char *name);

/* Removes `dir` and everything in it, then frees the string. */
void tu_rmtree(char *dir);

/* Portable helpers, so the tests also run as Windows programs (under wine): no shell, no
 * POSIX-only calls. */
int tu_mkdir(const char *path);                     /* 0 or -1; mode 0755 on POSIX */
void tu_copytree(const char *from, const char *to); /* fails the test on error */
size_t tu_count_suffix(const char *dir, const char *prefix, const char *suffix);
int tu_truncate(const char *path, long long size);   /* 0 or -1 */
void tu_setenv(const char *name, const char *value); /* value NULL: unset */

/* True when ../shared/testdata is there; otherwise prints why a test skips. */
bool tu_have_shared(void);

/* Parses a file of `kind`; fails the test on error. You own the result. */
struct epu_doc *tu_parse_file(enum epu_kind kind, const char *path);

/* The unformatted JSON of `doc` (you free it with cJSON_free). */
char *tu_json(const struct epu_doc *doc);

/* Parses `buf` feeding it in chunks of `chunk` bytes; returns the code and sets *out. */
int tu_parse_chunked(enum epu_kind kind, const char *path, const char *buf, size_t len,
                     size_t chunk, struct epu_doc **out);

#endif
