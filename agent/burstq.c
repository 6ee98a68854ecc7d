#include "burstq.h"

#include <stdlib.h>
#include <string.h>

#include "dynbuf.h"
#include "em_error.h"

int burstq_add(struct burstq *q, const char *path, bool complete)
{
    struct pathkey k;
    pathkey_init(&k, path);
    /* A path whose hash collides with a queued one is queued again, which only costs a
     * second look. */
    struct hmap_entry *e = hmap_find(&q->index, k.hash, NULL, NULL);
    if (e && strcmp(q->v[e->v.u - 1].path, path) == 0) {
        q->v[e->v.u - 1].complete |= complete;
        return 0;
    }
    struct burstq_item *v = em_grow(q->v, q->n, &q->cap, sizeof(*v), 256);
    if (!v)
        return -EM_ENOMEM;
    q->v = v;
    char *copy = strdup(path);
    if (!copy)
        return -EM_ENOMEM;
    k.path = copy;
    q->v[q->n++] = (struct burstq_item){copy, k, complete};
    int added;
    e = hmap_upsert(&q->index, k.hash, NULL, NULL, &added);
    if (e && added)
        e->v.u = q->n;
    return 0;
}

void burstq_clear(struct burstq *q)
{
    for (size_t i = 0; i < q->n; i++)
        free(q->v[i].path);
    q->n = 0;
    hmap_clear(&q->index);
}

void burstq_free(struct burstq *q)
{
    burstq_clear(q);
    free(q->v);
    hmap_free(&q->index);
    memset(q, 0, sizeof(*q));
}
