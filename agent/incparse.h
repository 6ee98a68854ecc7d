/* incparse.h — files fed to their parsers as they grow (watch's per-file incremental
 * parsing; no loop, no journal, no model: testable on its own).
 *
 * EPU writes an XML in pieces. Each change of a file is fed here: the bytes new since the
 * last feed are read and pushed into that file's parser (a "partial", at most `max` at
 * once), and when the root element has ended or the writer closed the file, the document
 * is finished and handed back with the content hash of every byte fed. A file that
 * shrank, or whose last fed bytes differ now (rewritten in place), is parsed again from
 * its first byte. Parsers are reused, one idle parser kept per kind.
 */
#ifndef EM_INCPARSE_H
#define EM_INCPARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "epu.h"
#include "fsio.h"
#include "pathkey.h"

struct incparse;

/* A finished read: rc 0 and doc, or a negative EM_E* code with diag (EM_ETRUNCATED: the
 * document has not ended; EM_EMALFORMED etc.). hash covers every byte fed. */
struct incparse_done {
    int rc;
    struct epu_doc *doc; /* yours */
    uint64_t hash;
    struct epu_diag diag;
};

/* At most `max_partials` files are fed at once (more are read whole when closed). NULL
 * when out of memory. */
struct incparse *incparse_new(size_t max_partials);
void incparse_free(struct incparse *ip);

/* Files being fed now. */
size_t incparse_count(const struct incparse *ip);

/* Files are named by their keyed path (pathkey.h: hashed once by the caller). */

/* Whether the file is being fed. */
bool incparse_has(const struct incparse *ip, const struct pathkey *k);

/* Forgets the file (gone, or read whole elsewhere); nothing when it is not being fed. */
void incparse_drop(struct incparse *ip, const struct pathkey *k);

/* Bytes read by incparse_feed() so far. */
uint64_t incparse_bytes(const struct incparse *ip);

/* Feeds what is new in the file `k` (of `kind`, whose stat is *st); `complete`: the
 * writer closed it (or a walk found it), so finish it now. Returns 1 with *done filled
 * when the document is finished (the partial is dropped), 0 when more is to come (or the
 * file is left to be read when closed: too many partials, or nothing new), or -EM_ENOMEM. */
int incparse_feed(struct incparse *ip, const struct pathkey *k, enum epu_kind kind,
                  const struct fsio_stat *st, bool complete, struct incparse_done *done);

#endif
