#include "treestate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynbuf.h"
#include "em_error.h"
#include "fsio.h"
#include "hash.h"
#include "sha256.h"

static const char *node_path(const void *v)
{
    return ((const struct ts_node *)v)->path;
}

void treestate_init(struct treestate *s)
{
    memset(s, 0, sizeof(*s));
}

static void free_node(union hmap_value *v, void *ctx)
{
    (void)ctx;
    struct ts_node *n = v->p;
    free(n->path);
    free(n);
}

void treestate_free(struct treestate *s)
{
    hmap_each(&s->map, free_node, NULL);
    hmap_free(&s->map);
}

static struct ts_node *find(struct treestate *s, const char *path)
{
    struct hmap_entry *e = hmap_find(&s->map, hash64_str(path), path, node_path);
    return e ? e->v.p : NULL;
}

static struct ts_node *get(struct treestate *s, const char *path)
{
    int added;
    struct hmap_entry *e = hmap_upsert(&s->map, hash64_str(path), path, node_path, &added);
    if (!e)
        return NULL;
    if (added) {
        struct ts_node *n = calloc(1, sizeof(*n));
        char *copy = strdup(path);
        if (!n || !copy) {
            free(n);
            free(copy);
            hmap_remove(&s->map, e);
            return NULL;
        }
        n->path = copy;
        e->v.p = n;
    }
    return e->v.p;
}

static void drop(struct treestate *s, const char *path)
{
    struct hmap_entry *e = hmap_find(&s->map, hash64_str(path), path, node_path);
    if (!e)
        return;
    struct ts_node *n = e->v.p;
    hmap_remove(&s->map, e);
    free(n->path);
    free(n);
}

static bool under(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    return strncmp(path, dir, n) == 0 && path[n] == '/';
}

/* The nodes strictly below `dir` (a new array you own; NULL with *count 0 when none). */
static struct ts_node **below(struct treestate *s, const char *dir, size_t *count)
{
    *count = 0;
    struct ts_node **list = NULL;
    size_t cap = 0;
    for (size_t i = 0; i < s->map.cap; i++) {
        struct hmap_entry *e = &s->map.e[i];
        if (!e->key || !under(((struct ts_node *)e->v.p)->path, dir))
            continue;
        struct ts_node **l = em_grow(list, *count, &cap, sizeof(*l), 16);
        if (!l) {
            free(list);
            *count = SIZE_MAX;
            return NULL;
        }
        list = l;
        list[(*count)++] = e->v.p;
    }
    return list;
}

/* Moves a node to a new path (replacing whatever was there). */
static int move_node(struct treestate *s, struct ts_node *n, const char *to)
{
    struct ts_node copy = *n;
    char *old = strdup(n->path);
    if (!old)
        return -EM_ENOMEM;
    drop(s, to);
    struct ts_node *dst = get(s, to);
    if (!dst) {
        free(old);
        return -EM_ENOMEM;
    }
    char *keep = dst->path;
    *dst = copy;
    dst->path = keep;
    drop(s, old);
    free(old);
    return 0;
}

static void ensure_parents(struct treestate *s, const char *path)
{
    char buf[REC_MAX_PATH + 1];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = strchr(buf, '/'); p; p = strchr(p + 1, '/')) {
        *p = '\0';
        struct ts_node *n = get(s, buf);
        if (n && n->kind != TS_DIR) {
            n->kind = TS_DIR;
            n->hashed = false;
        }
        *p = '/';
    }
}

int treestate_apply(struct treestate *s, const struct rec_op *op)
{
    struct ts_node *n;
    switch (op->type) {
    case REC_MKDIR:
        ensure_parents(s, op->path);
        n = get(s, op->path);
        if (!n)
            return -EM_ENOMEM;
        n->kind = TS_DIR;
        return 0;
    case REC_CREATE:
    case REC_APPEND:
    case REC_WRITE:
    case REC_REWRITE:
    case REC_TRUNCATE:
    case REC_PLACEHOLDER: {
        ensure_parents(s, op->path);
        n = get(s, op->path);
        if (!n)
            return -EM_ENOMEM;
        bool was_file = n->kind == TS_FILE;
        n->kind = op->type == REC_PLACEHOLDER ? TS_PLACEHOLDER : TS_FILE;
        n->size = op->size;
        if (op->sha256 && strlen(op->sha256) == 64) {
            memcpy(n->sha256, op->sha256, 65);
            n->hashed = true;
        } else if (!(op->type == REC_REWRITE && op->same && was_file)) {
            n->hashed = false;
        }
        return 0;
    }
    case REC_RENAME: {
        n = find(s, op->path);
        if (!n)
            return 0;
        if (n->kind == TS_DIR) {
            size_t count;
            struct ts_node **list = below(s, op->path, &count);
            if (count == SIZE_MAX)
                return -EM_ENOMEM;
            size_t plen = strlen(op->path);
            for (size_t i = 0; i < count; i++) {
                char to[2 * REC_MAX_PATH + 2];
                snprintf(to, sizeof(to), "%s%s", op->to, list[i]->path + plen);
                /* Each node is found again: moves reshuffle the map. */
                char *from = strdup(list[i]->path);
                if (!from) {
                    free(list);
                    return -EM_ENOMEM;
                }
                list[i] = NULL;
                struct ts_node *m = find(s, from);
                int rc = m ? move_node(s, m, to) : 0;
                free(from);
                if (rc) {
                    free(list);
                    return rc;
                }
            }
            free(list);
        }
        ensure_parents(s, op->to);
        n = find(s, op->path);
        return n ? move_node(s, n, op->to) : 0;
    }
    case REC_DELETE: {
        size_t count;
        struct ts_node **list = below(s, op->path, &count);
        if (count == SIZE_MAX)
            return -EM_ENOMEM;
        char **paths = count ? calloc(count, sizeof(*paths)) : NULL;
        for (size_t i = 0; paths && i < count; i++)
            paths[i] = list[i]->path;
        free(list);
        /* Dropping frees the strings: copy them out first. */
        for (size_t i = 0; paths && i < count; i++)
            paths[i] = strdup(paths[i]);
        for (size_t i = 0; paths && i < count; i++) {
            if (paths[i])
                drop(s, paths[i]);
            free(paths[i]);
        }
        free(paths);
        drop(s, op->path);
        return 0;
    }
    default:
        return 0;
    }
}

struct counts {
    uint64_t dirs, files, placeholders, bytes;
};

static void count_one(union hmap_value *v, void *ctx)
{
    struct counts *c = ctx;
    const struct ts_node *n = v->p;
    if (n->kind == TS_DIR) {
        c->dirs++;
        return;
    }
    if (n->kind == TS_PLACEHOLDER)
        c->placeholders++;
    else
        c->files++;
    c->bytes += n->size;
}

void treestate_count(const struct treestate *s, uint64_t *dirs, uint64_t *files,
                     uint64_t *placeholders, uint64_t *bytes)
{
    struct counts c = {0};
    hmap_each(&s->map, count_one, &c);
    *dirs = c.dirs;
    *files = c.files;
    *placeholders = c.placeholders;
    *bytes = c.bytes;
}

int treestate_hash_file(const char *path, char hex[65])
{
    struct fsio_buf b = {0};
    struct sha256 sh;
    sha256_init(&sh);
    uint64_t off = 0;
    for (;;) {
        int rc = fsio_read_at(path, off, 1u << 20, &b);
        if (rc < 0) {
            fsio_buf_free(&b);
            return rc;
        }
        if (b.len == 0)
            break;
        sha256_update(&sh, b.data, b.len);
        off += b.len;
    }
    fsio_buf_free(&b);
    sha256_hex(&sh, hex);
    return 0;
}

struct compare {
    struct treestate *s;
    struct ts_report *rep;
    unsigned printed, max_print;
};

static void report(struct compare *c, const char *what, const char *path, const char *detail)
{
    if (c->printed++ < c->max_print)
        fprintf(stderr, "fsrecorder: %s: %s%s%s\n", what, path, detail ? ": " : "",
                detail ? detail : "");
}

static int compare_dir(struct compare *c, const char *abs, const char *rel)
{
    struct fsio_entry *ents;
    size_t count;
    int rc = fsio_list(abs, &ents, &count);
    if (rc < 0)
        return rc == -EM_ENOMEM ? rc : 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        char *a = fsio_join(abs, ents[i].name);
        char *r = rel ? fsio_join(rel, ents[i].name) : strdup(ents[i].name);
        if (!a || !r) {
            free(a);
            free(r);
            rc = -EM_ENOMEM;
            break;
        }
        struct fsio_stat st;
        struct ts_node *n = find(c->s, r);
        if (fsio_lstat(a, &st) < 0 || st.type == FSIO_OTHER) {
            c->rep->different++;
            report(c, "not a file or directory", r, NULL);
        } else if (!n) {
            c->rep->extra++;
            report(c, "not in the recording", r, NULL);
            if (st.type == FSIO_DIR)
                rc = compare_dir(c, a, r);
        } else {
            n->seen = true;
            c->rep->checked++;
            if ((n->kind == TS_DIR) != (st.type == FSIO_DIR)) {
                c->rep->different++;
                report(c, "differs", r,
                       n->kind == TS_DIR ? "a file, not a directory" : "a directory, not a file");
            } else if (n->kind == TS_DIR) {
                rc = compare_dir(c, a, r);
            } else if (st.size != n->size) {
                char d[96];
                snprintf(d, sizeof(d), "%llu bytes, recorded %llu", (unsigned long long)st.size,
                         (unsigned long long)n->size);
                c->rep->different++;
                report(c, "differs", r, d);
            } else if (n->hashed) {
                char hex[65];
                if (treestate_hash_file(a, hex) < 0 || strcmp(hex, n->sha256) != 0) {
                    c->rep->different++;
                    report(c, "differs", r, "content (SHA-256) is not the recorded one");
                }
            }
        }
        free(a);
        free(r);
    }
    fsio_entries_free(ents, count);
    return rc;
}

static void unseen(union hmap_value *v, void *ctx)
{
    struct compare *c = ctx;
    struct ts_node *n = v->p;
    if (!n->seen) {
        c->rep->missing++;
        report(c, "missing", n->path, NULL);
    }
    n->seen = false;
}

int treestate_compare(struct treestate *s, const char *root, unsigned max_print,
                      struct ts_report *rep)
{
    memset(rep, 0, sizeof(*rep));
    struct compare c = {s, rep, 0, max_print};
    int rc = compare_dir(&c, root, NULL);
    hmap_each(&s->map, unseen, &c);
    if (c.printed > max_print)
        fprintf(stderr, "fsrecorder: ... and %u more differences\n", c.printed - max_print);
    return rc;
}
