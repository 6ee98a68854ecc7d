/* dcs.h — a streaming reader for XML written by .NET's DataContractSerializer.
 *
 * EPU's files are DataContractSerializer output (DESIGN §3). This reader drives libxml2's
 * SAX2 push parser, so a document may arrive whole or in successive chunks, and it keeps
 * only the stack of open elements, never a tree. It handles the serializer's quirks once
 * for every file kind:
 *   - elements are identified by local name and namespace URI, never by prefix;
 *   - `i:nil="true"` makes an element's value NULL (padding slots, null fields);
 *   - a leaf written as `z:Ref="n"` takes the text of the earlier leaf with `z:Id="n"`;
 *   - text is trimmed of surrounding white space (pretty-printed copies, CRLF);
 *   - a `Key` child's text is remembered on its parent frame, so paths can select
 *     `KeyValueOfstringanyType` entries by key.
 * Untrusted input is bounded: no network, no DTD (a DOCTYPE is rejected outright, which
 * also rules out entity expansion), and limits on total size, depth, text length and
 * the memory kept for z:Ref resolution.
 *
 * A reader is used by one thread at a time; different readers may run on different
 * threads once epu_init() has run.
 */
#ifndef EM_DCS_H
#define EM_DCS_H

#include "em_compat.h"
#include <stdbool.h>
#include <stddef.h>

/* Namespace URIs used by the serializer itself. */
#define DCS_NS_XSI "http://www.w3.org/2001/XMLSchema-instance"
#define DCS_NS_SER "http://schemas.microsoft.com/2003/10/Serialization/"

#define DCS_KEY_MAX 64  /* longest `Key` text remembered for key-selected paths */
#define DCS_PATH_MAX 16 /* most segments in one path pattern */

struct dcs_limits {
    size_t max_doc_bytes;  /* total input; larger documents fail with EM_ELIMIT */
    unsigned max_depth;    /* open elements at once */
    size_t max_text;       /* bytes of text in one leaf */
    size_t max_refs_bytes; /* text kept for z:Ref resolution */
    unsigned max_attrs;    /* attributes (namespace declarations included) on one element */
    size_t max_ref_text;   /* bytes handed out through z:Ref in one document */
};

/* 256 MiB documents, depth 128, 1 MiB text nodes, 16 MiB of z:Id text, 64 attributes on
 * an element, 64 MiB of resolved z:Ref text. Real EPU files are at most tens of MB, about
 * 15 levels deep, with at most 6 attributes on an element and z:Refs to short values.
 * The attribute and z:Ref limits keep the work linear in the input: libxml2 compares
 * each attribute with every earlier one, and each z:Ref hands its target's text out
 * again. */
#define DCS_LIMITS_DEFAULT                                                                         \
    {                                                                                              \
        256u << 20, 128u, 1u << 20, 16u << 20, 64u, 64u << 20                                      \
    }

/* Where and why a document failed: the first error wins. */
struct dcs_diag {
    int code;         /* negative EM_E* */
    long line;        /* 1-based line in the document, 0 if unknown */
    char reason[256]; /* lower-case sentence without trailing newline */
};

struct dcs_frame {
    const char *name; /* local name; valid until the element ends */
    const char *uri;  /* namespace URI, "" when none */
    long long zid;    /* z:Id, or -1 */
    long long zref;   /* z:Ref, or -1 */
    bool nil;         /* i:nil="true" */
    bool has_children;
    bool key_set; /* key[] holds the text of a `Key` child */
    char key[DCS_KEY_MAX];
};

struct dcs_reader;

/* Callbacks of one document kind. Each returns 0 to go on or a negative EM_E* code,
 * normally after describing the problem with dcs_fail(). */
struct dcs_handler {
    /* An element has started and is dcs_top(); its attributes are readable with
     * dcs_attr() during this call only. May be NULL. */
    int (*start)(void *ud, struct dcs_reader *r);
    /* The element dcs_top() is about to end. For a leaf (no child elements) `text` is
     * its trimmed text, NUL-terminated, with z:Ref resolved; it is NULL for nil
     * elements, unresolvable references and elements with children. May be NULL. */
    int (*end)(void *ud, struct dcs_reader *r, const char *text, size_t len);
};

/* A compiled path pattern: segments separated by '/', each a local name, a prefix
 * ending in '*' (`KeyValuePairOfintNodeXml*`, for hash-suffixed generic names), or
 * `Name=Key` to select an element named Name whose `Key` child had that text, or
 * `Name=*suffix` for a Key that ends with suffix (`*].DoseRate`). */
struct dcs_path {
    unsigned n;
    struct dcs_seg {
        const char *name;
        size_t len;
        bool prefix;
        const char *key; /* NULL unless Name=Key */
        size_t keylen;
    } seg[DCS_PATH_MAX];
};

/* Creates a reader that calls `h` with `ud` for the document fed to it. `lim` may be
 * NULL for DCS_LIMITS_DEFAULT. `name` is used in libxml2's own messages and may be NULL.
 * Returns NULL when out of memory. The caller owns the reader (dcs_reader_free). */
struct dcs_reader *dcs_reader_new(const struct dcs_handler *h, void *ud,
                                  const struct dcs_limits *lim);

/* Prepares the reader for a new document with callback data `ud`, keeping its buffers.
 * Returns 0 or EM_ENOMEM. */
int dcs_reader_reset(struct dcs_reader *r, void *ud);

/* Parses the next `len` bytes. Returns 0, or the negative code of the first error (the
 * diagnostic says where); after an error further calls return the same code. */
int dcs_reader_feed(struct dcs_reader *r, const char *buf, size_t len);

/* Ends the document. Returns 0 if it was complete and well-formed; EM_ETRUNCATED if it
 * ended early (empty, or elements left open), which for a file still being written means
 * "wait"; any other negative code otherwise. */
int dcs_reader_finish(struct dcs_reader *r);

/* The diagnostic of the first error; valid until the next reset. */
const struct dcs_diag *dcs_reader_diag(const struct dcs_reader *r);

void dcs_reader_free(struct dcs_reader *r);

/* True once the root element's end tag has been parsed without error: the document is
 * complete and dcs_reader_finish() can only fail on trailing garbage. libxml2 may hold
 * the last bytes back until more arrive, so false does not prove the end is missing. */
bool dcs_reader_root_closed(const struct dcs_reader *r);

/* Number of open elements (the root alone gives 1). */
unsigned dcs_depth(const struct dcs_reader *r);

/* Frame `i` from the root (0) to the top (dcs_depth() - 1). */
const struct dcs_frame *dcs_frame_at(const struct dcs_reader *r, unsigned i);

/* The innermost open element. */
const struct dcs_frame *dcs_top(const struct dcs_reader *r);

/* During a start callback: the value of the attribute with namespace `uri` ("" for none)
 * and local name `local`, copied NUL-terminated into `buf` (truncated to `cap`), or NULL
 * when absent. */
const char *dcs_attr(const struct dcs_reader *r, const char *uri, const char *local, char *buf,
                     size_t cap);

/* The current line in the document (1-based). */
long dcs_line(const struct dcs_reader *r);

/* Records `code` and a printf-style reason as the diagnostic (unless one is already
 * recorded), stops the parse, and returns `code` so callers can `return dcs_fail(...)`. */
int dcs_fail(struct dcs_reader *r, int code, const char *fmt, ...) EM_PRINTF(3, 4);

/* Compiles `pattern` into `p`. The pattern string must outlive `p` (string literals).
 * Returns 0, or EM_EINVAL for an empty pattern or too many segments. */
int dcs_path_compile(struct dcs_path *p, const char *pattern);

/* True when the open elements below frame `base` (exclusive) down to the top are exactly
 * the segments of `p`. With base 0 a pattern is relative to the root element. */
bool dcs_match(const struct dcs_reader *r, unsigned base, const struct dcs_path *p);

/* Trims white space from both ends of [s, s+len) and stores the new length in *len.
 * Returns the new start. */
const char *dcs_trim(const char *s, size_t *len);

#endif
