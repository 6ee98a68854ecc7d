#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <sys/stat.h>
#ifdef _WIN32
#include <direct.h>
#include <io.h>
#else
#include <unistd.h>
#endif

char *tu_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *p = realloc(buf, cap * 2 + 1);
            if (!p) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = p;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        *len = n;
    }
    return buf;
}

int tu_write(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t n = fwrite(buf, 1, len, f);
    return fclose(f) == 0 && n == len ? 0 : -1;
}

int tu_mkdir(const char *path)
{
#ifdef _WIN32
    return _mkdir(path);
#else
    return mkdir(path, 0755);
#endif
}

char *tu_tmpdir(const char *name)
{
    char tmpl[512];
#ifdef _WIN32
    const char *t = getenv("TEMP");
    snprintf(tmpl, sizeof(tmpl), "%s/em-%s-XXXXXX", t ? t : ".", name);
    for (char *p = tmpl; *p; p++)
        if (*p == '\\')
            *p = '/';
    assert_int_equal(_mktemp_s(tmpl, strlen(tmpl) + 1), 0);
    assert_int_equal(_mkdir(tmpl), 0);
    char *d = tmpl;
#else
    snprintf(tmpl, sizeof(tmpl), "/tmp/em-%s-XXXXXX", name);
    char *d = mkdtemp(tmpl);
#endif
    assert_non_null(d);
    d = strdup(d);
    assert_non_null(d);
    return d;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void rmtree_at(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        remove(dir);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *p = tu_path(dir, e->d_name);
        if (is_dir(p))
            rmtree_at(p);
        else
            assert_int_equal(remove(p), 0);
        free(p);
    }
    closedir(d);
#ifdef _WIN32
    assert_int_equal(_rmdir(dir), 0);
#else
    assert_int_equal(rmdir(dir), 0);
#endif
}

void tu_rmtree(char *dir)
{
    rmtree_at(dir);
    free(dir);
}

void tu_copytree(const char *from, const char *to)
{
    if (!is_dir(from)) {
        size_t len;
        char *buf = tu_read(from, &len);
        assert_non_null(buf);
        assert_int_equal(tu_write(to, buf, len), 0);
        free(buf);
        return;
    }
    assert_int_equal(tu_mkdir(to), 0);
    DIR *d = opendir(from);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *a = tu_path(from, e->d_name), *b = tu_path(to, e->d_name);
        tu_copytree(a, b);
        free(a);
        free(b);
    }
    closedir(d);
}

size_t tu_count_suffix(const char *dir, const char *prefix, const char *suffix)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0, pl = strlen(prefix), sl = strlen(suffix);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        n += l >= pl + sl && strncmp(e->d_name, prefix, pl) == 0 &&
             strcmp(e->d_name + l - sl, suffix) == 0;
    }
    closedir(d);
    return n;
}

int tu_truncate(const char *path, long long size)
{
#ifdef _WIN32
    FILE *f = fopen(path, "r+b");
    if (!f)
        return -1;
    int rc = _chsize_s(_fileno(f), size);
    fclose(f);
    return rc == 0 ? 0 : -1;
#else
    return truncate(path, (off_t)size);
#endif
}

void tu_setenv(const char *name, const char *value)
{
#ifdef _WIN32
    assert_int_equal(_putenv_s(name, value ? value : ""), 0);
#else
    if (value)
        assert_int_equal(setenv(name, value, 1), 0);
    else
        assert_int_equal(unsetenv(name), 0);
#endif
}

char *tu_path(const char *dir, const char *rel)
{
    size_t a = strlen(dir), b = strlen(rel);
    char *p = malloc(a + b + 2);
    assert_non_null(p);
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, rel, b + 1);
    return p;
}

bool tu_have_shared(void)
{
    char *p = tu_path(EM_SHARED_TESTDATA, "epu/nt32457-6/atlas");
    FILE *f = fopen(p, "r");
    free(p);
    if (f) {
        fclose(f);
        return true;
    }
    print_message("skipping: the real EPU files of ../shared/testdata are not beside the "
                  "checkout (%s)\n",
                  EM_SHARED_TESTDATA);
    return false;
}

struct epu_doc *tu_parse_file(enum epu_kind kind, const char *path)
{
    size_t len;
    char *buf = tu_read(path, &len);
    if (!buf)
        fail_msg("cannot read %s", path);
    struct epu_doc *doc = NULL;
    struct epu_diag diag = {0};
    int rc = epu_parse_buffer(kind, path, buf, len, &doc, &diag);
    free(buf);
    if (rc != 0)
        fail_msg("%s:%ld: %s", path, diag.line, diag.reason);
    return doc;
}

char *tu_json(const struct epu_doc *doc)
{
    cJSON *j = epu_doc_to_json(doc);
    assert_non_null(j);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    assert_non_null(s);
    return s;
}

int tu_parse_chunked(enum epu_kind kind, const char *path, const char *buf, size_t len,
                     size_t chunk, struct epu_doc **out)
{
    struct epu_parser *p = epu_parser_new(kind, NULL);
    assert_non_null(p);
    int rc = epu_parser_begin(p, path);
    for (size_t off = 0; rc == 0 && off < len; off += chunk)
        rc = epu_parser_feed(p, buf + off, len - off < chunk ? len - off : chunk);
    if (rc == 0)
        rc = epu_parser_finish(p, out);
    else
        *out = NULL;
    epu_parser_free(p);
    return rc;
}
