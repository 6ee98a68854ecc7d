/* epu_layout.h — where an EPU file belongs, from its path alone (DESIGN §3).
 *
 * The one place that knows EPU's directory layout: which kind a path is, which session
 * directory and grid square it belongs to, and which directories mark a session. Pure:
 * no allocation, no file system; scan, validate and watch all ask here.
 */
#ifndef EM_EPU_LAYOUT_H
#define EM_EPU_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "epu.h"

struct epu_place {
    enum epu_kind kind;    /* EPU_KIND_NONE: not an EPU file */
    bool unplaced;         /* an EPU name outside any session layout */
    bool has_session;      /* session_len is meaningful (session, .dm and image kinds) */
    size_t session_len;    /* the session directory is rel[0..session_len); 0: "." */
    int64_t gridsquare_id; /* for square .dm files and images */
};

/* Classifies `rel` (relative to the watched or scanned root, '/'-separated). */
void epu_layout_place(const char *rel, struct epu_place *place);

/* Whether a directory named `name` marks its parent as a session directory: Metadata or
 * Images-Disc<N>. */
bool epu_layout_session_marker(const char *name, bool *is_metadata);

/* Whether the session directory of `place` (found in `rel`) is `dir` ("." for the root). */
bool epu_layout_in_session(const char *rel, const struct epu_place *place, const char *dir);

#endif
