/* The recording archive (recording.h): what the writer (rec_writer.c), the packer
 * (rec_pack.c) and the reader (rec_reader.c) share: operation names, path checks, the
 * compression a name asks for, messages, JSON strings. */
#include "recording.h"
#include "recording_int.h"
#include "cli_common.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <cjson/cJSON.h>

#include "dynbuf.h"
#include "em_error.h"

static const char *const op_names[] = {"mkdir",   "create",   "append",      "write",
                                       "rewrite", "truncate", "placeholder", "rename",
                                       "delete",  "end",      "unknown"};

const char *rec_op_name(enum rec_op_type t)
{
    return t <= REC_UNKNOWN ? op_names[t] : "unknown";
}

void rec_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* libarchive's message for the last error, lower case like every message here. */
const char *rec_arc_msg(struct archive *a)
{
    return cli_lower(archive_error_string(a));
}

/* Length of the UTF-8 sequence starting at p (1..4), or 0 when it is not valid. */
static size_t utf8_len(const unsigned char *p)
{
    if (p[0] < 0x80)
        return 1;
    size_t n;
    uint32_t c;
    if ((p[0] & 0xe0) == 0xc0) {
        n = 2;
        c = p[0] & 0x1fu;
    } else if ((p[0] & 0xf0) == 0xe0) {
        n = 3;
        c = p[0] & 0x0fu;
    } else if ((p[0] & 0xf8) == 0xf0) {
        n = 4;
        c = p[0] & 0x07u;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (p[i] & 0x3fu);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < min[n] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    return n;
}

const char *rec_path_check(const char *path)
{
    if (!path || !*path)
        return "empty path";
    size_t len = strlen(path);
    if (len > REC_MAX_PATH)
        return "path too long";
    if (path[0] == '/')
        return "absolute path";
    unsigned depth = 0;
    const char *comp = path;
    for (const unsigned char *p = (const unsigned char *)path;;) {
        if (*p == '/' || *p == '\0') {
            size_t n = (size_t)((const char *)p - comp);
            if (n == 0)
                return "empty path component";
            if ((n == 1 && comp[0] == '.') || (n == 2 && comp[0] == '.' && comp[1] == '.'))
                return "'.' or '..' in path";
            if (++depth > REC_MAX_DEPTH)
                return "path too deep";
            if (*p == '\0')
                break;
            comp = (const char *)p + 1;
            p++;
            continue;
        }
        if (*p < 0x20 || *p == 0x7f)
            return "control character in path";
        if (*p == '\\' || *p == ':')
            return "'\\' or ':' in path";
        size_t n = utf8_len(p);
        if (!n)
            return "path is not UTF-8";
        p += n;
    }
    return NULL;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

int rec_compression_for(const char *path, enum rec_compression *c)
{
    if (ends_with(path, ".tar"))
        *c = REC_PLAIN;
    else if (ends_with(path, ".tar.gz") || ends_with(path, ".tgz"))
        *c = REC_GZIP;
    else if (ends_with(path, ".tar.zst") || ends_with(path, ".tzst"))
        *c = REC_ZSTD;
    else
        return -1;
    return 0;
}

/* A JSON string; the text is valid UTF-8 (rec_path_check) or plain ASCII. */
int rec_json_str(struct dynbuf *b, const char *s)
{
    int rc = dynbuf_add(b, "\"", 1);
    for (const char *p = s; rc == 0 && *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            rc = dynbuf_add(b, esc, 2);
        } else if (c < 0x20) {
            rc = dynbuf_printf(b, "\\u%04x", c);
        } else {
            rc = dynbuf_add(b, p, 1);
        }
    }
    return rc ? rc : dynbuf_add(b, "\"", 1);
}
