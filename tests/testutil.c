#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

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

char *tu_tmpdir(const char *name)
{
    char tmpl[256];
    snprintf(tmpl, sizeof(tmpl), "/tmp/em-%s-XXXXXX", name);
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    d = strdup(d);
    assert_non_null(d);
    return d;
}

void tu_rmtree(char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    free(dir);
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
