#include "fswalk.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "em_error.h"
#include "fsio.h"
#include "log.h"

struct walk {
    const char *root;
    const struct fswalk_cb *cb;
    struct fswalk_stats *stats;
    uint64_t dev[FSWALK_MAX_DEPTH], ino[FSWALK_MAX_DEPTH]; /* the directories on the way down */
};

static char *rel_join(const char *dir, const char *name)
{
    if (strcmp(dir, ".") == 0 || dir[0] == '\0')
        return strdup(name);
    return fsio_join(dir, name);
}

static int walk(struct walk *wk, const char *rel, unsigned depth)
{
    char *abs = strcmp(rel, ".") == 0 ? strdup(wk->root) : fsio_join(wk->root, rel);
    if (!abs)
        return -EM_ENOMEM;
    struct fsio_stat dst;
    if (fsio_stat(abs, &dst) == 0 && fsio_dir_seen_above(wk->dev, wk->ino, depth, &dst)) {
        em_log(EM_LOG_WARN,
               "%s: the same directory as one above it (a bind mount?): not walked again", rel);
        free(abs);
        return 0;
    }
    struct fsio_entry *e;
    size_t n;
    int rc = fsio_list(abs, &e, &n);
    free(abs);
    if (rc < 0) {
        if (depth == 0 || rc == -EM_ENOMEM)
            return rc;
        em_log(EM_LOG_WARN, "%s: cannot list the directory: %s (skipped)", rel, em_strerror(rc));
        return wk->cb->unreadable ? wk->cb->unreadable(wk->cb->ctx, rel, rc) : 0;
    }
    wk->stats->dirs++;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (e[i].type != FSIO_DIR && e[i].type != FSIO_FILE)
            continue;
        char *child = rel_join(rel, e[i].name);
        if (!child) {
            rc = -EM_ENOMEM;
            break;
        }
        if (e[i].type == FSIO_DIR) {
            rc = wk->cb->dir(wk->cb->ctx, rel, child, e[i].name);
            if (rc > 0 && depth + 1 < FSWALK_MAX_DEPTH)
                rc = walk(wk, child, depth + 1);
            else if (rc > 0) {
                em_log(EM_LOG_WARN, "%s: deeper than %d levels (not walked)", child,
                       FSWALK_MAX_DEPTH);
                rc = 0;
            }
        } else {
            wk->stats->files++;
            rc = wk->cb->file(wk->cb->ctx, rel, child, e[i].name);
        }
        free(child);
    }
    fsio_entries_free(e, n);
    return rc;
}

int fswalk(const char *root, const struct fswalk_cb *cb, struct fswalk_stats *stats)
{
    struct walk wk;
    memset(&wk, 0, sizeof(wk));
    wk.root = root;
    wk.cb = cb;
    wk.stats = stats;
    memset(stats, 0, sizeof(*stats));
    return walk(&wk, ".", 0);
}
