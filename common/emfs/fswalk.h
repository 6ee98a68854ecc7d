/* fswalk.h — the one bounded directory walk (DESIGN §2): depth first, each directory
 * listed once in name order, never following a link into a directory, never walking a
 * directory that is its own ancestor (a tree bind-mounted into itself), at most
 * FSWALK_MAX_DEPTH levels deep. So every walk ends. Paths handed to the callbacks are
 * relative to the root, '/'-separated, "." for the root itself.
 */
#ifndef EM_FSWALK_H
#define EM_FSWALK_H

#include <stddef.h>

#define FSWALK_MAX_DEPTH 24

struct fswalk_cb {
    /* A subdirectory `rel` (named `name`) of `dir`: return 1 to walk it, 0 to skip it, or a
     * negative EM_E* to stop the walk with that code. */
    int (*dir)(void *ctx, const char *dir, const char *rel, const char *name);
    /* A regular file (or a link to one) `rel` of `dir`. Return 0, or a negative EM_E* to
     * stop. */
    int (*file)(void *ctx, const char *dir, const char *rel, const char *name);
    /* A directory below the root that cannot be listed (`err` says why; it has been
     * logged). Return 0 to go on, or a negative EM_E* to stop. May be NULL. */
    int (*unreadable)(void *ctx, const char *rel, int err);
    void *ctx;
};

struct fswalk_stats {
    size_t dirs;  /* directories listed */
    size_t files; /* regular files seen */
};

/* Walks the directory `root`. Returns 0, the error of listing the root itself (EM_ENOENT,
 * EM_EACCES, …), EM_ENOMEM, or a callback's negative code. */
int fswalk(const char *root, const struct fswalk_cb *cb, struct fswalk_stats *stats);

#endif
