/* The parser front: picks a kind's callbacks, checks the root element, and turns the
 * reader's diagnostics into the public ones. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/xmlerror.h>

#include "em_error.h"
#include "epu_internal.h"

struct epu_parser {
    const struct epu_kind_ops *ops;
    void *state;
    struct dcs_reader *reader;
    struct dcs_handler h; /* wraps ops->h to check the root first */
    struct epu_doc *doc;
    char *path;
    bool failed;
    struct epu_diag diag;
};

static const struct epu_kind_ops *ops_of(enum epu_kind kind)
{
    switch (kind) {
    case EPU_KIND_SESSION:
        return &epu_session_ops;
    case EPU_KIND_ATLAS:
        return &epu_atlas_ops;
    case EPU_KIND_GRIDSQUARE_METADATA:
        return &epu_gridsquare_ops;
    case EPU_KIND_GRIDSQUARE_IMAGE:
        return &epu_gridsquare_image_ops;
    case EPU_KIND_FOILHOLE_IMAGE:
        return &epu_foilhole_image_ops;
    case EPU_KIND_MICROGRAPH:
        return &epu_micrograph_ops;
    default:
        return NULL;
    }
}

static const struct {
    const char *cli, *json;
} kind_names[EPU_KIND_COUNT] = {
    [EPU_KIND_SESSION] = {"session", "session"},
    [EPU_KIND_ATLAS] = {"atlas", "atlas"},
    [EPU_KIND_GRIDSQUARE_METADATA] = {"gridsquare-metadata", "gridsquare_metadata"},
    [EPU_KIND_GRIDSQUARE_IMAGE] = {"gridsquare", "gridsquare_image"},
    [EPU_KIND_FOILHOLE_IMAGE] = {"foilhole", "foilhole_image"},
    [EPU_KIND_MICROGRAPH] = {"micrograph", "micrograph"},
};

const char *epu_kind_cli_name(enum epu_kind kind)
{
    return kind > EPU_KIND_NONE && kind < EPU_KIND_COUNT ? kind_names[kind].cli : NULL;
}

const char *epu_kind_json_name(enum epu_kind kind)
{
    return kind > EPU_KIND_NONE && kind < EPU_KIND_COUNT ? kind_names[kind].json : NULL;
}

enum epu_kind epu_kind_from_cli(const char *name)
{
    for (int k = EPU_KIND_NONE + 1; k < EPU_KIND_COUNT; k++)
        if (strcmp(name, kind_names[k].cli) == 0)
            return (enum epu_kind)k;
    return EPU_KIND_NONE;
}

/* External entities and DTDs are never loaded, whatever a document asks for. */
static xmlParserInputPtr refuse_external(const char *url, const char *id, xmlParserCtxtPtr ctxt)
{
    (void)url;
    (void)id;
    (void)ctxt;
    return NULL;
}

/* libxml2 reports some errors (input conversion, I/O) only through its generic handler,
 * which writes raw lines to stderr: into the middle of a JSON log. The same errors make
 * the parse fail, and the reader reports that with the path; the raw lines are dropped. */
static void quiet(void *ctx, const char *msg, ...)
{
    (void)ctx;
    (void)msg;
}

void epu_init(void)
{
    xmlInitParser();
    xmlSetExternalEntityLoader(refuse_external);
    /* For this thread and, as the default, for every thread made later (the parse pool). */
    xmlSetGenericErrorFunc(NULL, quiet);
    xmlThrDefSetGenericErrorFunc(NULL, quiet);
}

void epu_cleanup(void)
{
    xmlCleanupParser();
}

static int wrap_start(void *ud, struct dcs_reader *r)
{
    struct epu_parser *p = ud;
    if (dcs_depth(r) == 1) {
        const struct dcs_frame *root = dcs_top(r);
        if (strcmp(root->name, p->ops->root_name) != 0)
            return dcs_fail(r, -EM_EWRONGKIND, "root element is <%s> in namespace '%s', not <%s>",
                            root->name, root->uri, p->ops->root_name);
        if (strcmp(root->uri, p->ops->root_uri) != 0)
            return dcs_fail(r, -EM_EWRONGKIND,
                            "root element <%s> is in namespace '%s', not in EPU's '%s'", root->name,
                            root->uri, p->ops->root_uri);
    }
    return p->ops->h.start ? p->ops->h.start(p->state, r) : 0;
}

static int wrap_end(void *ud, struct dcs_reader *r, const char *text, size_t len)
{
    struct epu_parser *p = ud;
    return p->ops->h.end ? p->ops->h.end(p->state, r, text, len) : 0;
}

struct epu_parser *epu_parser_new(enum epu_kind kind, const struct dcs_limits *lim)
{
    const struct epu_kind_ops *ops = ops_of(kind);
    if (!ops)
        return NULL;
    struct epu_parser *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->ops = ops;
    p->h.start = wrap_start;
    p->h.end = wrap_end;
    p->state = calloc(1, ops->state_size);
    p->reader = dcs_reader_new(&p->h, p, lim);
    if (!p->state || !p->reader || ops->init(p->state) < 0) {
        epu_parser_free(p);
        return NULL;
    }
    return p;
}

static void take_diag(struct epu_parser *p, int code)
{
    const struct dcs_diag *d = dcs_reader_diag(p->reader);
    p->failed = true;
    p->diag.code = d->code ? d->code : code;
    p->diag.line = d->line;
    memcpy(p->diag.reason, d->reason, sizeof(p->diag.reason));
    if (!p->diag.reason[0])
        snprintf(p->diag.reason, sizeof(p->diag.reason), "%s", em_strerror(code));
}

int epu_parser_begin(struct epu_parser *p, const char *path)
{
    epu_doc_free(p->doc);
    free(p->path);
    p->doc = NULL;
    p->failed = false;
    memset(&p->diag, 0, sizeof(p->diag));
    p->path = strdup(path ? path : "");
    /* The document lives in its own arena's first chunk: one allocation less, and
     * freed with the rest (em_arena.h: on the thread that allocated it, when handed back). */
    struct em_arena a;
    em_arena_init(&a, 0);
    p->doc = em_arena_alloc(&a, sizeof(*p->doc));
    if (p->doc) {
        memset(p->doc, 0, sizeof(*p->doc));
        p->doc->arena = a;
    }
    if (!p->path || !p->doc) {
        p->failed = true;
        p->diag.code = -EM_ENOMEM;
        snprintf(p->diag.reason, sizeof(p->diag.reason), "out of memory");
        return -EM_ENOMEM;
    }
    p->doc->kind = p->ops->kind;
    dcs_reader_reset(p->reader, p);
    int rc = p->ops->begin(p->state, p->doc, p->path, p->reader);
    if (rc < 0)
        take_diag(p, rc);
    return rc;
}

int epu_parser_feed(struct epu_parser *p, const void *buf, size_t len)
{
    if (p->failed)
        return p->diag.code;
    int rc = dcs_reader_feed(p->reader, buf, len);
    if (rc < 0)
        take_diag(p, rc);
    return rc;
}

bool epu_parser_complete(const struct epu_parser *p)
{
    return !p->failed && dcs_reader_root_closed(p->reader);
}

int epu_parser_finish(struct epu_parser *p, struct epu_doc **out)
{
    *out = NULL;
    if (p->failed)
        return p->diag.code;
    int rc = dcs_reader_finish(p->reader);
    if (rc == 0)
        rc = p->ops->finish(p->state, p->doc, p->reader);
    if (rc < 0) {
        take_diag(p, rc);
        return p->diag.code;
    }
    *out = p->doc;
    p->doc = NULL;
    return 0;
}

const struct epu_diag *epu_parser_diag(const struct epu_parser *p)
{
    return &p->diag;
}

void epu_parser_free(struct epu_parser *p)
{
    if (!p)
        return;
    if (p->state && p->ops)
        p->ops->fini(p->state);
    free(p->state);
    dcs_reader_free(p->reader);
    epu_doc_free(p->doc);
    free(p->path);
    free(p);
}

int epu_parse_buffer(enum epu_kind kind, const char *path, const void *buf, size_t len,
                     struct epu_doc **out, struct epu_diag *diag)
{
    *out = NULL;
    struct epu_parser *p = epu_parser_new(kind, NULL);
    if (!p) {
        if (diag) {
            diag->code = -EM_ENOMEM;
            diag->line = 0;
            snprintf(diag->reason, sizeof(diag->reason), "cannot create a parser");
        }
        return -EM_ENOMEM;
    }
    int rc = epu_parser_begin(p, path);
    if (rc == 0)
        rc = epu_parser_feed(p, buf, len);
    if (rc == 0)
        rc = epu_parser_finish(p, out);
    if (rc < 0 && diag)
        *diag = p->diag;
    epu_parser_free(p);
    return rc;
}

cJSON *epu_doc_to_json(const struct epu_doc *doc)
{
    const struct epu_kind_ops *ops = ops_of(doc->kind);
    cJSON *out = cJSON_CreateObject();
    if (!ops || !out || !cJSON_AddStringToObject(out, "kind", epu_kind_json_name(doc->kind)) ||
        ops->to_json(doc, out) < 0) {
        cJSON_Delete(out);
        return NULL;
    }
    return out;
}

void epu_doc_free(struct epu_doc *doc)
{
    if (!doc)
        return;
    struct em_arena a = doc->arena; /* the document is in it */
    em_arena_free(&a);
}

static bool name_is(const char *base, const char *end, const char *want)
{
    return (size_t)(end - base) == strlen(want) && memcmp(base, want, (size_t)(end - base)) == 0;
}

/* GridSquare_<digits><suffix> as the whole component [s, end). */
static bool gridsquare_name(const char *s, const char *end, const char *suffix)
{
    const char *p = s;
    size_t n = strlen("GridSquare_");
    if ((size_t)(end - p) < n || memcmp(p, "GridSquare_", n) != 0)
        return false;
    p += n;
    const char *digits = p;
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    return p > digits && name_is(p, end, suffix);
}

static bool gridsquare_image_name(const char *s, const char *end)
{
    /* GridSquare_<8 digits>_<6 digits>.xml, or _<4 digits> for the time (EPU 1.x) */
    size_t n = strlen("GridSquare_");
    size_t len = (size_t)(end - s);
    if ((len != n + 8 + 1 + 6 + 4 && len != n + 8 + 1 + 4 + 4) || memcmp(s, "GridSquare_", n) != 0)
        return false;
    size_t time_digits = len - n - 8 - 1 - 4;
    const char *p = s + n;
    for (size_t i = 0; i < 9 + time_digits; i++, p++)
        if (i == 8 ? *p != '_' : (*p < '0' || *p > '9'))
            return false;
    return name_is(p, end, ".xml");
}

enum epu_kind epu_classify_path(const char *path)
{
    const char *end = path + strlen(path);
    const char *base = end;
    while (base > path && base[-1] != '/' && base[-1] != '\\')
        base--;
    int64_t a, b;
    /* By the name's first letter: every file of a walk is classified. */
    switch (*base) {
    case 'E':
        return name_is(base, end, "EpuSession.dm") ? EPU_KIND_SESSION : EPU_KIND_NONE;
    case 'A':
        if (name_is(base, end, "Atlas.dm")) {
            const char *pend = base > path ? base - 1 : base;
            const char *pbase = pend;
            while (pbase > path && pbase[-1] != '/' && pbase[-1] != '\\')
                pbase--;
            return name_is(pbase, pend, "Atlas") ? EPU_KIND_ATLAS : EPU_KIND_NONE;
        }
        return EPU_KIND_NONE;
    case 'G':
        if (gridsquare_name(base, end, ".dm"))
            return EPU_KIND_GRIDSQUARE_METADATA;
        return gridsquare_image_name(base, end) ? EPU_KIND_GRIDSQUARE_IMAGE : EPU_KIND_NONE;
    case 'F':
        if (epu_name_micrograph_in(base, end, &a, &b))
            return EPU_KIND_MICROGRAPH;
        return epu_name_foilhole_in(base, end, &a) ? EPU_KIND_FOILHOLE_IMAGE : EPU_KIND_NONE;
    default:
        return EPU_KIND_NONE;
    }
}

int epu_check_wellformed(const void *buf, size_t len, struct epu_diag *diag)
{
    static const struct dcs_handler none = {NULL, NULL};
    struct dcs_reader *r = dcs_reader_new(&none, NULL, NULL);
    if (!r)
        return -EM_ENOMEM;
    int rc = dcs_reader_feed(r, buf, len);
    if (rc == 0)
        rc = dcs_reader_finish(r);
    if (rc < 0 && diag) {
        const struct dcs_diag *d = dcs_reader_diag(r);
        diag->code = d->code;
        diag->line = d->line;
        memcpy(diag->reason, d->reason, sizeof(diag->reason));
    }
    dcs_reader_free(r);
    return rc;
}
