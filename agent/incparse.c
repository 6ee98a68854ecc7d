#include "incparse.h"

#include <stdlib.h>
#include <string.h>

#include "em_error.h"
#include "hash.h"
#include "hmap.h"

#define TAIL 64
#define READ_CHUNK (256u << 10)

/* A file being fed to its parser as it grows. */
struct partial {
    char *path;
    uint64_t key; /* the path's pathkey hash */
    enum epu_kind kind;
    struct epu_parser *parser;
    uint64_t fed;
    struct hash64c hash;
    unsigned char tail[TAIL]; /* the last bytes fed */
    unsigned ntail;
};

struct incparse {
    struct hmap partials; /* pathkey hash -> struct partial * */
    size_t count, max;
    struct epu_parser *idle[EPU_KIND_COUNT]; /* one reusable parser per kind */
    struct fsio_buf rbuf;
    uint64_t bytes;
};

static const char *partial_path_of(const void *v)
{
    return ((const struct partial *)v)->path;
}

static struct partial *partial_find(const struct incparse *ip, const struct pathkey *k)
{
    if (!ip->count)
        return NULL;
    struct hmap_entry *e = hmap_find(&ip->partials, k->hash, k->path, partial_path_of);
    return e ? e->v.p : NULL;
}

static void parser_release(struct incparse *ip, enum epu_kind kind, struct epu_parser *p)
{
    if (!ip->idle[kind])
        ip->idle[kind] = p;
    else
        epu_parser_free(p);
}

static struct epu_parser *parser_take(struct incparse *ip, enum epu_kind kind)
{
    struct epu_parser *p = ip->idle[kind];
    ip->idle[kind] = NULL;
    return p ? p : epu_parser_new(kind, NULL);
}

static void partial_drop(struct incparse *ip, struct partial *pt)
{
    struct hmap_entry *e = hmap_find(&ip->partials, pt->key, pt->path, partial_path_of);
    if (e)
        hmap_remove(&ip->partials, e);
    parser_release(ip, pt->kind, pt->parser);
    free(pt->path);
    free(pt);
    ip->count--;
}

static struct partial *partial_new(struct incparse *ip, const struct pathkey *k, enum epu_kind kind)
{
    struct partial *pt = calloc(1, sizeof(*pt));
    if (!pt || !(pt->path = strdup(k->path)) || !(pt->parser = parser_take(ip, kind)) ||
        epu_parser_begin(pt->parser, k->path) < 0) {
        if (pt && pt->parser)
            parser_release(ip, kind, pt->parser);
        if (pt)
            free(pt->path);
        free(pt);
        return NULL;
    }
    pt->kind = kind;
    pt->key = k->hash;
    hash64c_init(&pt->hash);
    int added;
    struct hmap_entry *e = hmap_upsert(&ip->partials, k->hash, k->path, partial_path_of, &added);
    if (!e) {
        parser_release(ip, kind, pt->parser);
        free(pt->path);
        free(pt);
        return NULL;
    }
    e->v.p = pt;
    ip->count++;
    return pt;
}

/* Whether the bytes before pt->fed are still the ones fed (else the file was rewritten). */
static bool tail_intact(struct incparse *ip, struct partial *pt)
{
    if (pt->ntail == 0)
        return true;
    if (fsio_read_at(pt->path, pt->fed - pt->ntail, pt->ntail, &ip->rbuf) < 0 ||
        ip->rbuf.len != pt->ntail)
        return false;
    return memcmp(ip->rbuf.data, pt->tail, pt->ntail) == 0;
}

static void keep_tail(struct partial *pt, const char *p, size_t n)
{
    if (n >= TAIL) {
        memcpy(pt->tail, p + n - TAIL, TAIL);
        pt->ntail = TAIL;
        return;
    }
    size_t keep = pt->ntail + n > TAIL ? TAIL - n : pt->ntail;
    memmove(pt->tail, pt->tail + pt->ntail - keep, keep);
    memcpy(pt->tail + keep, p, n);
    pt->ntail = (unsigned)(keep + n);
}

struct incparse *incparse_new(size_t max_partials)
{
    struct incparse *ip = calloc(1, sizeof(*ip));
    if (ip)
        ip->max = max_partials;
    return ip;
}

void incparse_free(struct incparse *ip)
{
    if (!ip)
        return;
    for (size_t i = 0; i < ip->partials.cap; i++) {
        struct partial *pt = ip->partials.e[i].key ? ip->partials.e[i].v.p : NULL;
        if (pt) {
            epu_parser_free(pt->parser);
            free(pt->path);
            free(pt);
        }
    }
    hmap_free(&ip->partials);
    for (int k = 0; k < EPU_KIND_COUNT; k++)
        epu_parser_free(ip->idle[k]);
    fsio_buf_free(&ip->rbuf);
    free(ip);
}

size_t incparse_count(const struct incparse *ip)
{
    return ip->count;
}

bool incparse_has(const struct incparse *ip, const struct pathkey *k)
{
    return partial_find(ip, k) != NULL;
}

void incparse_drop(struct incparse *ip, const struct pathkey *k)
{
    struct partial *pt = partial_find(ip, k);
    if (pt)
        partial_drop(ip, pt);
}

uint64_t incparse_bytes(const struct incparse *ip)
{
    return ip->bytes;
}

int incparse_feed(struct incparse *ip, const struct pathkey *k, enum epu_kind kind,
                  const struct fsio_stat *st, bool complete, struct incparse_done *done)
{
    const char *path = k->path;
    struct partial *pt = partial_find(ip, k);
    if (pt && (st->size < pt->fed || !tail_intact(ip, pt))) {
        partial_drop(ip, pt);
        pt = NULL;
    }
    if (pt && st->size == pt->fed && !complete)
        return 0;
    if (!pt) {
        if (!complete && ip->count >= ip->max)
            return 0; /* read it when it is closed */
        pt = partial_new(ip, k, kind);
        if (!pt)
            return -EM_ENOMEM;
    }
    /* Feed what is new. */
    int rc = 0;
    while (rc == 0 && pt->fed < st->size) {
        uint64_t want = st->size - pt->fed;
        rc = fsio_read_at(path, pt->fed, want > READ_CHUNK ? READ_CHUNK : (size_t)want, &ip->rbuf);
        if (rc < 0 || ip->rbuf.len == 0)
            break;
        hash64c_update(&pt->hash, ip->rbuf.data, ip->rbuf.len);
        keep_tail(pt, ip->rbuf.data, ip->rbuf.len);
        pt->fed += ip->rbuf.len;
        ip->bytes += ip->rbuf.len;
        rc = epu_parser_feed(pt->parser, ip->rbuf.data, ip->rbuf.len);
    }
    if (rc == 0 && !complete && !epu_parser_complete(pt->parser))
        return 0; /* more to come */
    memset(done, 0, sizeof(*done));
    if (rc == 0)
        rc = epu_parser_finish(pt->parser, &done->doc);
    done->rc = rc;
    done->hash = hash64c_final(&pt->hash);
    done->diag = *epu_parser_diag(pt->parser);
    partial_drop(ip, pt);
    return 1;
}
