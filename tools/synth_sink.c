/* em-synth: the sink: files written into a directory (in pieces, paced) or operations
 * into an fsrecorder recording. */
#include "synth_int.h"

/* ---- the sink: a directory or a recording ---- */

static const char *dir_key(const void *v)
{
    return v;
}

static void sink_mkdirs(struct synth *s, const char *rel)
{
    char path[REC_MAX_PATH + 1];
    snprintf(path, sizeof(path), "%s", rel);
    for (char *p = path;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        int added;
        struct hmap_entry *e = hmap_upsert(&s->dirs, hash64_str(path), path, dir_key, &added);
        if (!e) {
            failf(s, "out of memory");
            return;
        }
        if (added) {
            e->v.p = strdup(path);
            if (s->wr) {
                struct rec_op op = {.type = REC_MKDIR, .t = s->t, .path = path};
                if (rec_writer_add(s->wr, &op) < 0)
                    failf(s, "%s: cannot record", path);
            } else {
                char *abs = fsio_join(s->o.out, path);
                uv_fs_t req;
                int rc = abs ? uv_fs_mkdir(NULL, &req, abs, 0755, NULL) : UV_ENOMEM;
                if (abs)
                    uv_fs_req_cleanup(&req);
                if (rc < 0 && rc != UV_EEXIST)
                    failf(s, "%s: cannot create: %s", abs ? abs : path, uv_strerror(rc));
                free(abs);
            }
        }
        *p = c;
        if (c == '\0')
            return;
    }
}

static void sink_parent(struct synth *s, const char *rel)
{
    const char *slash = strrchr(rel, '/');
    if (!slash)
        return;
    char parent[REC_MAX_PATH + 1];
    snprintf(parent, sizeof(parent), "%.*s", (int)(slash - rel), rel);
    sink_mkdirs(s, parent);
}

static void maybe_flush(struct synth *s)
{
    if (s->wr && rec_writer_pending(s->wr) > (8u << 20) &&
        rec_writer_flush(s->wr, s->err, sizeof(s->err)) < 0)
        s->failed = true;
}

/* Writes `data` to `rel` in `pieces` writes (after truncating it when it exists), the
 * way EPU's writers do. */
void sink_file(struct synth *s, const char *rel, const char *data, size_t len, int pieces)
{
    if (s->failed)
        return;
    sink_parent(s, rel);
    if (pieces < 1 || (size_t)pieces > len)
        pieces = len ? (len < 3 ? (int)len : 3) : 1;
    s->files++;
    s->bytes += len;
    if (s->wr) {
        int added;
        struct hmap_entry *seen = hmap_upsert(&s->written, hash64_str(rel), NULL, NULL, &added);
        if (!seen) {
            failf(s, "out of memory");
            return;
        }
        struct sha256 sh;
        sha256_init(&sh);
        size_t off = 0;
        for (int i = 0; i < pieces; i++) {
            size_t end = i + 1 == pieces ? len : len / (size_t)pieces * (size_t)(i + 1);
            sha256_update(&sh, data + off, end - off);
            char hex[65];
            sha256_hex(&sh, hex);
            struct rec_op op = {.type = i > 0   ? REC_APPEND
                                        : added ? REC_CREATE
                                                : REC_REWRITE,
                                .t = s->t + i * 0.001,
                                .path = rel,
                                .offset = off,
                                .size = end,
                                .sha256 = hex,
                                .data = (const unsigned char *)data + off,
                                .len = end - off};
            if (rec_writer_add(s->wr, &op) < 0) {
                failf(s, "%s: cannot record", rel);
                return;
            }
            off = end;
        }
        s->t += pieces * 0.001;
        maybe_flush(s);
        return;
    }
    char *abs = fsio_join(s->o.out, rel);
    uv_fs_t req;
    int fd = abs ? uv_fs_open(NULL, &req, abs, UV_FS_O_WRONLY | UV_FS_O_CREAT | UV_FS_O_TRUNC, 0644,
                              NULL)
                 : UV_ENOMEM;
    if (abs)
        uv_fs_req_cleanup(&req);
    if (fd < 0) {
        failf(s, "%s: cannot create: %s", abs ? abs : rel, uv_strerror(fd));
        free(abs);
        return;
    }
    size_t off = 0;
    for (int i = 0; i < pieces && !s->failed; i++) {
        size_t end = i + 1 == pieces ? len : len / (size_t)pieces * (size_t)(i + 1);
        uv_buf_t b = uv_buf_init((char *)(uintptr_t)(data + off), (unsigned)(end - off));
        int rc = uv_fs_write(NULL, &req, fd, &b, 1, (int64_t)off, NULL);
        uv_fs_req_cleanup(&req);
        if (rc < 0 || (size_t)rc != end - off)
            failf(s, "%s: cannot write: %s", abs, rc < 0 ? uv_strerror(rc) : "short write");
        off = end;
    }
    uv_fs_close(NULL, &req, fd, NULL);
    uv_fs_req_cleanup(&req);
    free(abs);
}

/* A binary image: only its size matters (a placeholder in recordings). */
void sink_image(struct synth *s, const char *rel, size_t size)
{
    if (!s->o.images || s->failed)
        return;
    if (s->wr) {
        sink_parent(s, rel);
        s->files++;
        struct rec_op op = {.type = REC_PLACEHOLDER, .t = s->t, .path = rel, .size = size};
        if (rec_writer_add(s->wr, &op) < 0)
            failf(s, "%s: cannot record", rel);
        return;
    }
    static char img[4096];
    if (size > sizeof(img))
        size = sizeof(img);
    img[0] = (char)0xff;
    img[1] = (char)0xd8;
    img[size - 2] = (char)0xff;
    img[size - 1] = (char)0xd9;
    sink_file(s, rel, img, size, 1);
    s->bytes -= size;
}

/* Lets `seconds` of acquisition time pass: sleeps when paced, advances the recording's
 * clock when recording. The schedule is absolute, so writing time does not add up. */
void sink_wait(struct synth *s, double seconds)
{
    s->t += seconds;
    if (s->wr || s->o.rate <= 0)
        return;
    uint64_t target = s->start_ns + (uint64_t)(s->t * 1e9);
    for (uint64_t now; (now = uv_hrtime()) < target;)
        uv_sleep((unsigned)((target - now) / 1000000) + 1);
}
