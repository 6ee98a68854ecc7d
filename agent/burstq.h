/* burstq.h — the file events of one burst, each path once, in the order first seen.
 *
 * The watcher reports a file many times while it is written (every write, then the
 * close); watch gathers a burst of events and looks at each path once at its end. A path
 * reported again within the burst keeps its place; "closed" sticks once seen.
 */
#ifndef EM_BURSTQ_H
#define EM_BURSTQ_H

#include <stdbool.h>
#include <stddef.h>

#include "hmap.h"
#include "pathkey.h"

struct burstq_item {
    char *path;
    struct pathkey key; /* of path, hashed once when the path first came */
    bool complete;      /* the writer closed it (or it was moved into place) */
};

struct burstq {
    struct burstq_item *v;
    size_t n, cap;
    struct hmap index; /* path hash -> position + 1 */
};

/* Adds an event for `path`. Returns 0 or -EM_ENOMEM. */
int burstq_add(struct burstq *q, const char *path, bool complete);

/* Empties the queue (the paths are freed). */
void burstq_clear(struct burstq *q);

void burstq_free(struct burstq *q);

#endif
