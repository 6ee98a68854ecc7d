#include "dcs.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/xmlerror.h>

#include "em_error.h"

/* One remembered z:Id leaf: its text lives in refs_text at [off, off + len). */
struct dcs_ref {
    long long id; /* -1 marks an empty slot */
    size_t off;
    size_t len;
};

struct dcs_reader {
    const struct dcs_handler *h;
    void *ud;
    struct dcs_limits lim;
    xmlParserCtxtPtr ctxt;
    xmlSAXHandler sax;

    struct dcs_frame *frames; /* lim.max_depth entries */
    unsigned depth;

    char *text; /* text of the innermost leaf being read */
    size_t text_len;
    size_t text_cap;

    struct dcs_ref *refs; /* open-addressing table, power-of-two size */
    size_t refs_cap;
    size_t refs_count;
    char *refs_text;
    size_t refs_text_len;
    size_t refs_text_cap;
    size_t ref_text_out; /* bytes handed out through z:Ref so far */

    /* A byte-level look at start tags ahead of libxml2, to count attributes. */
    enum { SCAN_TEXT, SCAN_LT, SCAN_TAG, SCAN_QUOTE, SCAN_OTHER } scan;
    unsigned char scan_quote;
    unsigned scan_attrs;

    const xmlChar **attrs; /* during a start callback only */
    int nattrs;

    size_t fed;
    int first_byte; /* first byte that is not white space or a BOM, or -1 */
    int last_byte;  /* last byte that is not white space, or -1 */
    bool failed_in_finish;
    bool started;     /* any byte fed: the push context exists */
    bool finished;    /* dcs_reader_finish ran */
    bool root_closed; /* the root element's end tag was seen */
    bool failed;
    bool in_finish; /* errors raised while terminating mean "ended early" */
    struct dcs_diag diag;
};

static void reader_record(struct dcs_reader *r, int code, long line, const char *reason, size_t len)
{
    if (r->failed)
        return;
    r->failed = true;
    r->failed_in_finish = r->in_finish;
    r->diag.code = code;
    r->diag.line = line;
    if (len >= sizeof(r->diag.reason))
        len = sizeof(r->diag.reason) - 1;
    memcpy(r->diag.reason, reason, len);
    r->diag.reason[len] = '\0';
    /* libxml2 messages end with a newline and start with a capital letter. */
    while (len > 0 && (r->diag.reason[len - 1] == '\n' || r->diag.reason[len - 1] == ' '))
        r->diag.reason[--len] = '\0';
    if (r->diag.reason[0] >= 'A' && r->diag.reason[0] <= 'Z' && r->diag.reason[1] >= 'a' &&
        r->diag.reason[1] <= 'z')
        r->diag.reason[0] = (char)(r->diag.reason[0] - 'A' + 'a');
    if (r->ctxt)
        xmlStopParser(r->ctxt);
}

long dcs_line(const struct dcs_reader *r)
{
    if (r->started && r->ctxt && r->ctxt->input)
        return (long)r->ctxt->input->line;
    return 0;
}

int dcs_fail(struct dcs_reader *r, int code, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    size_t len = (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1;
    reader_record(r, code, dcs_line(r), buf, len);
    return code;
}

/* libxml2 reports errors here (per parser context, so threads do not interfere). */
static void on_xml_error(void *ud, xmlErrorPtr err)
{
    struct dcs_reader *r = ud;
    if (!err || err->level == XML_ERR_WARNING || err->level == XML_ERR_NONE)
        return;
    int code = -EM_EMALFORMED;
    switch (err->code) {
    case XML_ERR_DOCUMENT_EMPTY:
    case XML_ERR_DOCUMENT_END:
    case XML_ERR_TAG_NOT_FINISHED:
    case XML_ERR_LTSLASH_REQUIRED:
        /* Only at the end of input do these mean "not all there yet". */
        if (r->in_finish)
            code = -EM_ETRUNCATED;
        break;
    default:
        break;
    }
    const char *msg = err->message ? err->message : "xml error";
    reader_record(r, code, err->line, msg, strlen(msg));
}

static void on_doctype(void *ud, const xmlChar *name, const xmlChar *ext_id, const xmlChar *sys_id)
{
    (void)name;
    (void)ext_id;
    (void)sys_id;
    dcs_fail(ud, -EM_EHOSTILE, "document declares a DOCTYPE, which EPU never writes (rejected)");
}

/* Values of attributes are not NUL-terminated: [begin, end). */
static bool attr_is(const xmlChar *begin, const xmlChar *end, const char *want)
{
    size_t n = (size_t)(end - begin);
    return strlen(want) == n && memcmp(begin, want, n) == 0;
}

static long long attr_int(const xmlChar *begin, const xmlChar *end)
{
    long long v = 0;
    if (begin == end || end - begin > 18)
        return -1;
    for (const xmlChar *p = begin; p < end; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
    }
    return v;
}

static void on_start(void *ud, const xmlChar *localname, const xmlChar *prefix, const xmlChar *uri,
                     int nb_namespaces, const xmlChar **namespaces, int nb_attributes,
                     int nb_defaulted, const xmlChar **attributes)
{
    (void)prefix;
    (void)nb_namespaces;
    (void)namespaces;
    (void)nb_defaulted;
    struct dcs_reader *r = ud;
    if (r->failed)
        return;
    if (r->depth >= r->lim.max_depth) {
        dcs_fail(r, -EM_ELIMIT, "elements nested deeper than %u levels", r->lim.max_depth);
        return;
    }
    if (r->depth > 0)
        r->frames[r->depth - 1].has_children = true;
    struct dcs_frame *f = &r->frames[r->depth++];
    f->name = (const char *)localname;
    f->uri = uri ? (const char *)uri : "";
    f->zid = -1;
    f->zref = -1;
    f->nil = false;
    f->has_children = false;
    f->key_set = false;
    for (int i = 0; i < nb_attributes; i++) {
        const xmlChar **a = attributes + i * 5;
        const char *aname = (const char *)a[0];
        const char *auri = a[2] ? (const char *)a[2] : "";
        if (strcmp(auri, DCS_NS_XSI) == 0 && strcmp(aname, "nil") == 0)
            f->nil = attr_is(a[3], a[4], "true");
        else if (strcmp(auri, DCS_NS_SER) == 0 && strcmp(aname, "Id") == 0)
            f->zid = attr_int(a[3], a[4]);
        else if (strcmp(auri, DCS_NS_SER) == 0 && strcmp(aname, "Ref") == 0)
            f->zref = attr_int(a[3], a[4]);
    }
    r->text_len = 0;
    if (r->h->start) {
        r->attrs = attributes;
        r->nattrs = nb_attributes;
        int rc = r->h->start(r->ud, r);
        r->attrs = NULL;
        r->nattrs = 0;
        if (rc < 0)
            dcs_fail(r, rc, "%s", em_strerror(rc));
    }
}

static void on_characters(void *ud, const xmlChar *ch, int len)
{
    struct dcs_reader *r = ud;
    if (r->failed || r->depth == 0 || len <= 0)
        return;
    /* Text of elements that have children is never used. */
    if (r->frames[r->depth - 1].has_children)
        return;
    size_t n = (size_t)len;
    if (n > r->lim.max_text - r->text_len) {
        dcs_fail(r, -EM_ELIMIT, "text of <%s> longer than %zu bytes", r->frames[r->depth - 1].name,
                 r->lim.max_text);
        return;
    }
    if (r->text_len + n + 1 > r->text_cap) {
        size_t cap = r->text_cap ? r->text_cap : 256;
        while (cap < r->text_len + n + 1)
            cap *= 2;
        char *p = realloc(r->text, cap);
        if (!p) {
            dcs_fail(r, -EM_ENOMEM, "out of memory reading text");
            return;
        }
        r->text = p;
        r->text_cap = cap;
    }
    memcpy(r->text + r->text_len, ch, n);
    r->text_len += n;
}

static size_t ref_slot(long long id, size_t cap)
{
    uint64_t h = (uint64_t)id * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 32) & (cap - 1);
}

static const struct dcs_ref *ref_find(const struct dcs_reader *r, long long id)
{
    if (r->refs_cap == 0)
        return NULL;
    for (size_t i = ref_slot(id, r->refs_cap);; i = (i + 1) & (r->refs_cap - 1)) {
        if (r->refs[i].id == id)
            return &r->refs[i];
        if (r->refs[i].id < 0)
            return NULL;
    }
}

static int refs_grow(struct dcs_reader *r)
{
    size_t cap = r->refs_cap ? r->refs_cap * 2 : 64;
    struct dcs_ref *t = malloc(cap * sizeof(*t));
    if (!t)
        return -EM_ENOMEM;
    for (size_t i = 0; i < cap; i++)
        t[i].id = -1;
    for (size_t i = 0; i < r->refs_cap; i++) {
        if (r->refs[i].id < 0)
            continue;
        size_t j = ref_slot(r->refs[i].id, cap);
        while (t[j].id >= 0)
            j = (j + 1) & (cap - 1);
        t[j] = r->refs[i];
    }
    free(r->refs);
    r->refs = t;
    r->refs_cap = cap;
    return 0;
}

/* Remembers the text of a z:Id leaf for later z:Ref elements. */
static int ref_store(struct dcs_reader *r, long long id, const char *text, size_t len)
{
    if (ref_find(r, id))
        return 0; /* ids are unique in a valid document; keep the first */
    /* z:Id values are unique in serializer output; a repeated one keeps its first text,
     * so a hostile run of one id cannot turn the table into one long probe chain. */
    if (ref_find(r, id))
        return 0;
    if (len + 1 > r->lim.max_refs_bytes - r->refs_text_len)
        return dcs_fail(r, -EM_ELIMIT, "more than %zu bytes of z:Id text", r->lim.max_refs_bytes);
    if ((r->refs_count + 1) * 2 > r->refs_cap && refs_grow(r) < 0)
        return dcs_fail(r, -EM_ENOMEM, "out of memory storing z:Id %lld", id);
    if (r->refs_text_len + len + 1 > r->refs_text_cap) {
        size_t cap = r->refs_text_cap ? r->refs_text_cap : 1024;
        while (cap < r->refs_text_len + len + 1)
            cap *= 2;
        char *p = realloc(r->refs_text, cap);
        if (!p)
            return dcs_fail(r, -EM_ENOMEM, "out of memory storing z:Id %lld", id);
        r->refs_text = p;
        r->refs_text_cap = cap;
    }
    if (len > 0)
        memcpy(r->refs_text + r->refs_text_len, text, len);
    r->refs_text[r->refs_text_len + len] = '\0'; /* handed out in place by z:Ref */
    size_t i = ref_slot(id, r->refs_cap);
    while (r->refs[i].id >= 0)
        i = (i + 1) & (r->refs_cap - 1);
    r->refs[i] = (struct dcs_ref){.id = id, .off = r->refs_text_len, .len = len};
    r->refs_text_len += len + 1;
    r->refs_count++;
    return 0;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

const char *dcs_trim(const char *s, size_t *len)
{
    size_t n = *len;
    while (n > 0 && is_space(*s)) {
        s++;
        n--;
    }
    while (n > 0 && is_space(s[n - 1]))
        n--;
    *len = n;
    return s;
}

static void on_end(void *ud, const xmlChar *localname, const xmlChar *prefix, const xmlChar *uri)
{
    (void)localname;
    (void)prefix;
    (void)uri;
    struct dcs_reader *r = ud;
    if (r->failed || r->depth == 0)
        return;
    struct dcs_frame *f = &r->frames[r->depth - 1];
    const char *text = NULL;
    size_t len = 0;
    if (!f->has_children) {
        if (f->zref >= 0) {
            const struct dcs_ref *ref = ref_find(r, f->zref);
            if (ref) {
                /* The text is handed out where it is stored (no copy), and the total
                 * handed out is bounded, so many refs to one long value stay cheap. */
                if (ref->len > r->lim.max_ref_text - r->ref_text_out) {
                    dcs_fail(r, -EM_ELIMIT, "z:Ref elements repeat more than %zu bytes of text",
                             r->lim.max_ref_text);
                    return;
                }
                r->ref_text_out += ref->len;
                text = r->refs_text + ref->off;
                len = ref->len;
            }
        } else if (!f->nil) {
            if (r->text_cap == 0) {
                r->text = malloc(256);
                if (!r->text) {
                    dcs_fail(r, -EM_ENOMEM, "out of memory reading text");
                    return;
                }
                r->text_cap = 256;
            }
            len = r->text_len;
            size_t skip = (size_t)(dcs_trim(r->text, &len) - r->text);
            char *t = r->text + skip;
            t[len] = '\0';
            text = t;
            if (f->zid >= 0 && ref_store(r, f->zid, text, len) < 0)
                return;
        }
        if (text && r->depth >= 2 && strcmp(f->name, "Key") == 0 && len < DCS_KEY_MAX) {
            struct dcs_frame *parent = &r->frames[r->depth - 2];
            memcpy(parent->key, text, len + 1);
            parent->key_set = true;
        }
    }
    if (r->h->end) {
        int rc = r->h->end(r->ud, r, text, len);
        if (rc < 0) {
            dcs_fail(r, rc, "%s", em_strerror(rc));
            return;
        }
    }
    r->depth--;
    if (r->depth == 0)
        r->root_closed = true;
    r->text_len = 0;
}

struct dcs_reader *dcs_reader_new(const struct dcs_handler *h, void *ud,
                                  const struct dcs_limits *lim)
{
    static const struct dcs_limits defaults = DCS_LIMITS_DEFAULT;
    struct dcs_reader *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->h = h;
    r->ud = ud;
    r->lim = lim ? *lim : defaults;
    r->first_byte = r->last_byte = -1;
    if (r->lim.max_depth == 0)
        r->lim.max_depth = 1;
    r->frames = calloc(r->lim.max_depth, sizeof(*r->frames));
    if (!r->frames) {
        free(r);
        return NULL;
    }
    memset(&r->sax, 0, sizeof(r->sax));
    r->sax.initialized = XML_SAX2_MAGIC;
    r->sax.startElementNs = on_start;
    r->sax.endElementNs = on_end;
    r->sax.characters = on_characters;
    r->sax.cdataBlock = on_characters;
    r->sax.internalSubset = on_doctype;
    r->sax.externalSubset = on_doctype;
    r->sax.serror = on_xml_error;
    return r;
}

static void refs_clear(struct dcs_reader *r)
{
    for (size_t i = 0; i < r->refs_cap; i++)
        r->refs[i].id = -1;
    r->refs_count = 0;
    r->refs_text_len = 0;
    r->ref_text_out = 0;
}

int dcs_reader_reset(struct dcs_reader *r, void *ud)
{
    r->ud = ud;
    r->depth = 0;
    r->text_len = 0;
    r->fed = 0;
    r->first_byte = r->last_byte = -1;
    r->scan = SCAN_TEXT;
    r->scan_attrs = 0;
    r->failed_in_finish = false;
    r->failed = false;
    r->finished = false;
    r->root_closed = false;
    r->in_finish = false;
    memset(&r->diag, 0, sizeof(r->diag));
    refs_clear(r);
    /* Every document gets a new libxml2 push context. xmlCtxtResetPush() keeps state
     * it should clear: after a document that began with a byte-order mark, or one that
     * ended early, the next document fails with "Document is empty" (libxml2 2.9.14). */
    if (r->ctxt && r->started) {
        xmlFreeParserCtxt(r->ctxt);
        r->ctxt = NULL;
    }
    r->started = false;
    return 0;
}

static int reader_begin(struct dcs_reader *r)
{
    if (!r->ctxt) {
        r->ctxt = xmlCreatePushParserCtxt(&r->sax, r, NULL, 0, NULL);
        if (!r->ctxt)
            return dcs_fail(r, -EM_ENOMEM, "cannot create an xml parser");
        /* No network, no entity substitution, no DTD loading: none of those options
         * are set, and XML_PARSE_NONET forbids network access outright. XML_PARSE_HUGE
         * lifts libxml2's own fixed limits (10 MB on one line: "Huge input lookup"),
         * which a native single-line square .dm passes at about 2,450 holes; our limits
         * (dcs_limits: document size, depth, text, z:Id memory, attributes) apply
         * instead, the same in scan and watch. */
        xmlCtxtUseOptions(r->ctxt, XML_PARSE_NONET | XML_PARSE_NOCDATA | XML_PARSE_HUGE);
    }
    r->started = true;
    return 0;
}

static bool space_or_bom(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0xEF || c == 0xBB || c == 0xBF;
}

/* Remembers the first and last meaningful bytes, which tell an unfinished document
 * (starts with '<', does not yet end with '>') from one that is not XML at all. */
static void note_bytes(struct dcs_reader *r, const unsigned char *p, size_t len)
{
    for (size_t i = 0; r->first_byte < 0 && i < len; i++)
        if (!space_or_bom(p[i]))
            r->first_byte = p[i];
    for (size_t i = len; i-- > 0;) {
        if (!space_or_bom(p[i])) {
            r->last_byte = p[i];
            break;
        }
    }
}

/* Counts the attributes of each start tag before libxml2 sees it (an '=' outside quotes
 * in a tag is one attribute or namespace declaration). Comments, processing instructions
 * and declarations are skipped to their '>' — a hostile one can only make the count
 * larger, never hide a tag. Linear in the input and resumable across chunks. */
static const unsigned char tag_special[256] = {['"'] = 1, ['\''] = 1, ['='] = 1, ['>'] = 1};

static int count_attrs(struct dcs_reader *r, const unsigned char *p, size_t len)
{
    const unsigned char *end = p + len;
    while (p < end) {
        /* Text, quoted values and declarations are skipped with memchr: most bytes. */
        if (r->scan == SCAN_TEXT || r->scan == SCAN_QUOTE || r->scan == SCAN_OTHER) {
            int want = r->scan == SCAN_TEXT ? '<' : r->scan == SCAN_QUOTE ? r->scan_quote : '>';
            const unsigned char *hit = memchr(p, want, (size_t)(end - p));
            if (!hit)
                return 0;
            p = hit + 1;
            r->scan = r->scan == SCAN_TEXT ? SCAN_LT : r->scan == SCAN_QUOTE ? SCAN_TAG : SCAN_TEXT;
            continue;
        }
        unsigned char c = *p++;
        if (r->scan == SCAN_LT) {
            r->scan_attrs = 0;
            r->scan = (c == '!' || c == '?' || c == '/') ? SCAN_OTHER : SCAN_TAG;
            continue;
        }
        /* SCAN_TAG: names and spaces are passed over a table lookup at a time. */
        if (!tag_special[c]) {
            while (p < end && !tag_special[*p])
                p++;
            continue;
        }
        if (c == '"' || c == '\'') {
            r->scan_quote = c;
            r->scan = SCAN_QUOTE;
        } else if (c == '=') {
            if (++r->scan_attrs > r->lim.max_attrs)
                return dcs_fail(r, -EM_ELIMIT, "an element has more than %u attributes",
                                r->lim.max_attrs);
        } else if (c == '>') {
            r->scan = SCAN_TEXT;
        }
    }
    return 0;
}

int dcs_reader_feed(struct dcs_reader *r, const char *buf, size_t len)
{
    if (r->failed)
        return r->diag.code;
    if (r->finished)
        return dcs_fail(r, -EM_ESTATE, "document already finished");
    if (len > r->lim.max_doc_bytes - r->fed)
        return dcs_fail(r, -EM_ELIMIT, "document larger than %zu bytes", r->lim.max_doc_bytes);
    if (!r->started && reader_begin(r) < 0)
        return r->diag.code;
    r->fed += len;
    note_bytes(r, (const unsigned char *)buf, len);
    /* Pieces of 4 MiB: libxml2 looks ahead within what it was given, and each piece is
     * checked for attribute floods before libxml2 sees it. */
    while (len > 0 && !r->failed) {
        size_t n = len > (4u << 20) ? (4u << 20) : len;
        if (count_attrs(r, (const unsigned char *)buf, n) < 0)
            break;
        int rc = xmlParseChunk(r->ctxt, buf, (int)n, 0);
        if (rc != 0 && !r->failed)
            dcs_fail(r, -EM_EMALFORMED, "xml error %d", rc);
        buf += n;
        len -= n;
    }
    return r->failed ? r->diag.code : 0;
}

int dcs_reader_finish(struct dcs_reader *r)
{
    if (r->failed)
        return r->diag.code;
    if (r->finished)
        return 0;
    if (!r->started && reader_begin(r) < 0)
        return r->diag.code;
    if (r->first_byte < 0) {
        r->finished = true;
        return dcs_fail(r, -EM_ETRUNCATED, "document is empty");
    }
    r->in_finish = true;
    int rc = xmlParseChunk(r->ctxt, NULL, 0, 1);
    r->in_finish = false;
    r->finished = true;
    if (!r->failed && (rc != 0 || !r->ctxt->wellFormed))
        dcs_fail(r, -EM_EMALFORMED, "document is not well-formed");
    if (!r->failed && r->depth != 0)
        dcs_fail(r, -EM_ETRUNCATED, "document ends inside <%s>", r->frames[r->depth - 1].name);
    if (r->failed && r->failed_in_finish) {
        /* What libxml2 (or a callback) only saw at the end of input is about an unfinished
         * document if it began like XML and does not end like XML. */
        if (r->first_byte == '<' && (r->last_byte != '>' || r->diag.code == -EM_ETRUNCATED)) {
            char buf[sizeof(r->diag.reason) + 32];
            if (strncmp(r->diag.reason, "document e", 10) != 0) {
                snprintf(buf, sizeof(buf), "document ends early (%.200s)", r->diag.reason);
                size_t n = strlen(buf) < sizeof(r->diag.reason) - 1 ? strlen(buf)
                                                                    : sizeof(r->diag.reason) - 1;
                memcpy(r->diag.reason, buf, n);
                r->diag.reason[n] = '\0';
            }
            r->diag.code = -EM_ETRUNCATED;
        } else if (r->first_byte != '<') {
            r->diag.code = -EM_EMALFORMED;
            snprintf(r->diag.reason, sizeof(r->diag.reason), "content is not XML");
        }
    }
    return r->failed ? r->diag.code : 0;
}

const struct dcs_diag *dcs_reader_diag(const struct dcs_reader *r)
{
    return &r->diag;
}

void dcs_reader_free(struct dcs_reader *r)
{
    if (!r)
        return;
    if (r->ctxt)
        xmlFreeParserCtxt(r->ctxt);
    free(r->frames);
    free(r->text);
    free(r->refs);
    free(r->refs_text);
    free(r);
}

unsigned dcs_depth(const struct dcs_reader *r)
{
    return r->depth;
}

const struct dcs_frame *dcs_frame_at(const struct dcs_reader *r, unsigned i)
{
    return i < r->depth ? &r->frames[i] : NULL;
}

const struct dcs_frame *dcs_top(const struct dcs_reader *r)
{
    return r->depth ? &r->frames[r->depth - 1] : NULL;
}

const char *dcs_attr(const struct dcs_reader *r, const char *uri, const char *local, char *buf,
                     size_t cap)
{
    if (!r->attrs || cap == 0)
        return NULL;
    for (int i = 0; i < r->nattrs; i++) {
        const xmlChar **a = r->attrs + i * 5;
        const char *auri = a[2] ? (const char *)a[2] : "";
        if (strcmp((const char *)a[0], local) != 0 || strcmp(auri, uri) != 0)
            continue;
        size_t n = (size_t)(a[4] - a[3]);
        if (n >= cap)
            n = cap - 1;
        memcpy(buf, a[3], n);
        buf[n] = '\0';
        return buf;
    }
    return NULL;
}

int dcs_path_compile(struct dcs_path *p, const char *pattern)
{
    p->n = 0;
    const char *s = pattern;
    if (!s || !*s)
        return -EM_EINVAL;
    while (*s) {
        if (p->n == DCS_PATH_MAX)
            return -EM_EINVAL;
        const char *end = strchr(s, '/');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        struct dcs_seg *g = &p->seg[p->n++];
        g->name = s;
        g->len = len;
        g->prefix = false;
        g->key = NULL;
        g->keylen = 0;
        const char *eq = memchr(s, '=', len);
        if (eq) {
            g->len = (size_t)(eq - s);
            g->key = eq + 1;
            g->keylen = len - g->len - 1;
        } else if (len > 0 && s[len - 1] == '*') {
            g->len = len - 1;
            g->prefix = true;
        }
        if (g->len == 0)
            return -EM_EINVAL;
        s += len;
        if (*s == '/')
            s++;
    }
    return 0;
}

static bool seg_match(const struct dcs_seg *g, const struct dcs_frame *f)
{
    if (strncmp(f->name, g->name, g->len) != 0)
        return false;
    if (!g->prefix && f->name[g->len] != '\0')
        return false;
    if (!g->key)
        return true;
    if (!f->key_set)
        return false;
    size_t klen = strlen(f->key);
    if (g->keylen > 0 && g->key[0] == '*') /* `Name=*suffix`: the key ends with suffix */
        return klen >= g->keylen - 1 &&
               memcmp(f->key + klen - (g->keylen - 1), g->key + 1, g->keylen - 1) == 0;
    return klen == g->keylen && memcmp(f->key, g->key, g->keylen) == 0;
}

bool dcs_match(const struct dcs_reader *r, unsigned base, const struct dcs_path *p)
{
    if (r->depth != base + 1 + p->n)
        return false;
    /* Compare from the innermost element, where patterns differ most. */
    for (unsigned i = p->n; i-- > 0;) {
        if (!seg_match(&p->seg[i], &r->frames[base + 1 + i]))
            return false;
    }
    return true;
}

bool dcs_reader_root_closed(const struct dcs_reader *r)
{
    return r->root_closed && !r->failed;
}
