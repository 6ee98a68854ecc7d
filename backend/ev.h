/* ev.h — one entity event as the backend receives it (DESIGN §5), decoded and checked.
 *
 * Everything a message claims is checked before it reaches the store: the version, a
 * positive integer seq, a bounded agent name, a known type and op, the key fields the
 * type needs (integers, or a bounded uuid text), and a data object for an upsert. A
 * message that fails is "poison": it goes to the dead-letter exchange with the reason.
 */
#ifndef EM_EV_H
#define EM_EV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

#define EV_MAX_PROJ 4

struct ev {
    enum wire_type type;
    bool deleted; /* op "delete" */
    uint64_t seq;
    char agent[256];
    /* key fields, as text ready for the store; unused ones are empty */
    char session_id[24], atlas_id[24], gridsquare_id[24], foilhole_id[24];
    char micrograph_uuid[72];
    char loader[64], dataset_id[72]; /* dataset */
    char *path;                      /* aborted_session: the directory (owned) */
    char *data;                      /* the data object as JSON text (owned); NULL for a delete */
    char *source_path, *source_mtime, *emitted_at; /* owned, may be NULL */
    /* values the store keeps in their own columns for its queries (owned, may be NULL) */
    struct {
        const char *col;
        char *val;
    } proj[EV_MAX_PROJ];
    int nproj;
};

/* Decodes one event from `len` bytes of JSON. Returns 0, or EM_EMALFORMED / EM_EMISSING /
 * EM_EVALUE / EM_ELIMIT / EM_ENOMEM with a reason. Free *e with ev_free() either way. */
int ev_decode(const char *body, size_t len, struct ev *e, char *reason, size_t cap);

void ev_free(struct ev *e);

/* The text of column `col` for this event (a key, a projection or a common column such
 * as agent, seq, deleted, data, source_path, source_mtime, emitted_at), or NULL (SQL
 * NULL). `buf` holds numbers formatted on the way. */
const char *ev_value(const struct ev *e, const char *col, char *buf, size_t cap);

/* The event's key as canonical JSON text ({"session_id":1,"gridsquare_id":2}, the key
 * names of wire.h, ids as numbers). Free with cJSON_free(); NULL when out of memory. */
char *ev_key_json(const struct ev *e);

/* Orders events by type and key (stable order for batches, so concurrent consumers
 * lock rows in the same order). For qsort. */
int ev_cmp_key(const void *a, const void *b);

#endif
