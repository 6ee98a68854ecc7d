/* em-synth: templates: loading (built in or --templates), {{name}} values and
 * {{#list}} sections rendered into a document. */
#include "synth_int.h"

/* ---- templates ---- */

/* .dm files are one line: drop each line's indentation and the line ends. */
static char *join_lines(const char *text)
{
    size_t n = strlen(text);
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    bool start = true;
    for (const char *p = text; *p; p++) {
        if (*p == '\n' || *p == '\r') {
            start = true;
            continue;
        }
        if (start && (*p == ' ' || *p == '\t'))
            continue;
        start = false;
        *o++ = *p;
    }
    *o = '\0';
    return out;
}

int load_templates(struct synth *s)
{
    for (int k = 0; k < T_COUNT; k++) {
        const char *builtin = NULL;
        for (const struct synth_builtin *b = synth_builtins; b->name; b++)
            if (strcmp(b->name, tnames[k]) == 0)
                builtin = b->text;
        char *text = NULL;
        if (s->o.templates) {
            char *path = fsio_join(s->o.templates, tnames[k]);
            struct fsio_buf fb = {0};
            int rc = path ? fsio_read(path, 64u << 20, &fb, NULL) : -EM_ENOMEM;
            if (rc == 0) {
                text = malloc(fb.len + 1);
                if (text) {
                    memcpy(text, fb.data, fb.len);
                    text[fb.len] = '\0';
                }
                if (!s->o.quiet)
                    fprintf(stderr, "em-synth: template %s from %s\n", tnames[k], path);
            } else if (rc != -EM_ENOENT) {
                failf(s, "%s: cannot read (%s)", path ? path : tnames[k], em_strerror(rc));
            }
            fsio_buf_free(&fb);
            free(path);
        }
        if (!text && builtin)
            text = strdup(builtin);
        if (!text) {
            failf(s, "template %s: out of memory", tnames[k]);
            return -1;
        }
        s->tm[k].real = strstr(text, "{{") == NULL;
        if (s->tm[k].real && (k == T_SESSION || k == T_ATLAS || k == T_SQUARE_DM)) {
            failf(s,
                  "%s: a real .dm file cannot be a template: its lists are rebuilt for every "
                  "square; mark it up with {{ }} like tools/templates/%s",
                  tnames[k], tnames[k]);
            free(text);
            return -1;
        }
        if (k <= T_SQUARE_DM && !s->tm[k].real) {
            char *joined = join_lines(text);
            free(text);
            text = joined;
            if (!text)
                return -1;
        }
        s->tm[k].text = text;
    }
    return s->failed ? -1 : 0;
}

/* How many times the section `name` repeats where the rendering is; sets the index
 * for item i with enter(). */
static int section_count(struct synth *s, const char *name)
{
    if (strcmp(name, "squares") == 0)
        return s->cs ? s->cs->nsquares : 0;
    if (strcmp(name, "tiles") == 0)
        return s->cs ? (s->cs->nsquares + 15) / 16 : 0;
    if (strcmp(name, "nodes") == 0) {
        int left = s->cs ? s->cs->nsquares - s->tile * 16 : 0;
        return left < 16 ? left : 16;
    }
    if (strcmp(name, "holes") == 0)
        return s->csq ? s->csq->holes_in_dm : 0;
    if (strcmp(name, "exposures") == 0)
        return s->csq && s->hole >= 0 ? s->csq->holes[s->hole].nexp : 0;
    return -1;
}

static void enter(struct synth *s, const char *name, int i)
{
    if (strcmp(name, "squares") == 0)
        s->csq = &s->cs->squares[i];
    else if (strcmp(name, "tiles") == 0)
        s->tile = i;
    else if (strcmp(name, "nodes") == 0) {
        s->node = i;
        s->csq = &s->cs->squares[s->tile * 16 + i];
    } else if (strcmp(name, "holes") == 0)
        s->hole = i;
    else if (strcmp(name, "exposures") == 0)
        s->exp = i;
}

static int render(struct synth *s, const char *p, const char *end)
{
    while (p < end) {
        const char *open = strstr(p, "{{");
        if (!open || open >= end)
            return dynbuf_add(&s->out, p, (size_t)(end - p));
        if (dynbuf_add(&s->out, p, (size_t)(open - p)) < 0)
            return -1;
        const char *close = strstr(open, "}}");
        if (!close || close >= end) {
            failf(s, "template: '{{' without '}}'");
            return -1;
        }
        char name[64];
        bool section = open[2] == '#';
        const char *nstart = open + 2 + (section ? 1 : 0);
        snprintf(name, sizeof(name), "%.*s", (int)(close - nstart), nstart);
        p = close + 2;
        char tmp[512];
        if (!section) {
            const char *v = value(s, name, tmp, sizeof(tmp));
            if (!v) {
                failf(s, "template: unknown value {{%s}}", name);
                return -1;
            }
            if (dynbuf_add(&s->out, v, strlen(v)) < 0)
                return -1;
            continue;
        }
        char endtag[80];
        snprintf(endtag, sizeof(endtag), "{{/%s}}", name);
        const char *stop = strstr(p, endtag);
        int count = section_count(s, name);
        if (!stop || stop >= end || count < 0) {
            failf(s, "template: section {{#%s}} is unknown or not closed", name);
            return -1;
        }
        struct square *keep_sq = s->csq;
        int keep[4] = {s->tile, s->node, s->hole, s->exp};
        for (int i = 0; i < count; i++) {
            enter(s, name, i);
            if (render(s, p, stop) < 0)
                return -1;
        }
        s->csq = keep_sq;
        s->tile = keep[0];
        s->node = keep[1];
        s->hole = keep[2];
        s->exp = keep[3];
        p = stop + strlen(endtag);
    }
    return 0;
}

/* Replaces the text of the first <tag>...</tag> with `v` (real files as templates). */
static void replace_element(struct dynbuf *b, const char *tag, const char *v)
{
    char open[64], close[64];
    snprintf(open, sizeof(open), "<%s>", tag);
    snprintf(close, sizeof(close), "</%s>", tag);
    char *start = strstr(b->p, open);
    if (!start)
        return;
    start += strlen(open);
    char *stop = strstr(start, close);
    if (!stop)
        return;
    size_t pre = (size_t)(start - b->p), old = (size_t)(stop - start), nv = strlen(v);
    size_t tail = b->len - pre - old;
    /* Make room first (the bytes appended are overwritten below). */
    if (nv > old && dynbuf_add(b, v, nv - old) < 0)
        return;
    memmove(b->p + pre + nv, b->p + pre + old, tail);
    memcpy(b->p + pre, v, nv);
    b->len = pre + nv + tail;
    b->p[b->len] = '\0';
}

int render_kind(struct synth *s, enum tkind k)
{
    dynbuf_reset(&s->out);
    if (s->tm[k].real) {
        if (dynbuf_add(&s->out, s->tm[k].text, strlen(s->tm[k].text)) < 0)
            return -1;
        char when[40];
        iso_time(s->clock, when, sizeof(when));
        replace_element(&s->out, "uniqueID", s->uuid);
        replace_element(&s->out, "acquisitionDateTime", when);
        return 0;
    }
    return render(s, s->tm[k].text, s->tm[k].text + strlen(s->tm[k].text));
}
