#include "em_compat.h"
#include "emopt.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "dynbuf.h"

enum { L_CLI, L_ENV, L_FILE };

#define CONFIG_MAX (1u << 20)

#ifdef _WIN32
#define LIST_SEP ';'
#else
#define LIST_SEP ':'
#endif

int emopt_init(struct emopt *o, const char *prog, const char *cmd, const char *usage,
               const char *env_prefix, const struct emopt_spec *spec, int nspec)
{
    memset(o, 0, sizeof(*o));
    o->prog = prog;
    o->cmd = cmd;
    o->usage = usage;
    o->env_prefix = env_prefix;
    o->spec = spec;
    o->nspec = nspec;
    for (int l = 0; l < EMOPT_LAYERS; l++) {
        o->val[l] = calloc((size_t)nspec + 1, sizeof(char *));
        if (!o->val[l]) {
            emopt_free(o);
            return -1;
        }
    }
    return 0;
}

void emopt_free(struct emopt *o)
{
    for (int l = 0; l < EMOPT_LAYERS; l++) {
        for (int i = 0; o->val[l] && i < o->nspec; i++)
            free(o->val[l][i]);
        free(o->val[l]);
        for (size_t i = 0; i < o->nargs[l]; i++)
            free(o->args[l][i]);
        free(o->args[l]);
        o->val[l] = NULL;
        o->args[l] = NULL;
        o->nargs[l] = o->args_cap[l] = 0;
    }
}

/* "prog: cmd: " or "prog: ". */
static void prefix(const struct emopt *o)
{
    if (o->cmd)
        fprintf(stderr, "%s: %s: ", o->prog, o->cmd);
    else
        fprintf(stderr, "%s: ", o->prog);
}

static void see_help(const struct emopt *o)
{
    if (o->cmd)
        fprintf(stderr, " (see '%s help %s')\n", o->prog, o->cmd);
    else
        fprintf(stderr, " (see '%s --help')\n", o->prog);
}

int emopt_usage_error(const struct emopt *o, const char *fmt, ...)
{
    prefix(o);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_USAGE;
}

static int set(struct emopt *o, int layer, int id, const char *v, size_t len)
{
    char *c = malloc(len + 1);
    if (!c)
        return emopt_usage_error(o, "out of memory");
    memcpy(c, v, len);
    c[len] = '\0';
    free(o->val[layer][id]);
    o->val[layer][id] = c;
    return -1;
}

static int add_arg(struct emopt *o, int layer, const char *v, size_t len)
{
    char **a = em_grow(o->args[layer], o->nargs[layer], &o->args_cap[layer], sizeof(*a), 8);
    if (!a)
        return emopt_usage_error(o, "out of memory");
    o->args[layer] = a;
    if (!(a[o->nargs[layer]] = malloc(len + 1)))
        return emopt_usage_error(o, "out of memory");
    memcpy(a[o->nargs[layer]], v, len);
    a[o->nargs[layer]++][len] = '\0';
    return -1;
}

static int find_long(const struct emopt *o, const char *name, size_t len)
{
    for (int i = 0; i < o->nspec; i++)
        if (o->spec[i].kind != EMOPT_ARGS && strlen(o->spec[i].name) == len &&
            memcmp(o->spec[i].name, name, len) == 0)
            return i;
    return -1;
}

static int find_short(const struct emopt *o, char c)
{
    for (int i = 0; i < o->nspec; i++)
        if (o->spec[i].short_name == c && o->spec[i].kind != EMOPT_ARGS)
            return i;
    return -1;
}

int emopt_argv(struct emopt *o, int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--") == 0)
            break;
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(o->usage, stdout);
            return CLI_OK;
        }
    bool only_args = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int rc;
        if (only_args || a[0] != '-' || a[1] == '\0') {
            if ((rc = add_arg(o, L_CLI, a, strlen(a))) >= 0)
                return rc;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_args = true;
            continue;
        }
        int id;
        const char *v = NULL;
        if (a[1] == '-') {
            const char *eq = strchr(a + 2, '=');
            id = find_long(o, a + 2, eq ? (size_t)(eq - a - 2) : strlen(a + 2));
            v = eq ? eq + 1 : NULL;
        } else {
            id = a[2] == '\0' ? find_short(o, a[1]) : -1;
        }
        if (id < 0) {
            prefix(o);
            fprintf(stderr, "%s: unknown option", a);
            see_help(o);
            return CLI_USAGE;
        }
        if (!v && o->spec[id].kind == EMOPT_FLAG)
            v = "yes";
        if (!v) {
            if (i + 1 >= argc)
                return emopt_usage_error(o, "--%s: needs a value", o->spec[id].name);
            v = argv[++i];
        }
        if ((rc = set(o, L_CLI, id, v, strlen(v))) >= 0)
            return rc;
    }
    return -1;
}

int emopt_env(struct emopt *o)
{
    if (!o->env_prefix)
        return -1;
    for (int i = 0; i < o->nspec; i++) {
        if (!o->spec[i].env)
            continue;
        char name[96];
        if (o->spec[i].env_name) {
            snprintf(name, sizeof(name), "%s", o->spec[i].env_name);
        } else {
            size_t n = (size_t)snprintf(name, sizeof(name), "%s", o->env_prefix);
            for (const char *p = o->spec[i].name; *p && n + 1 < sizeof(name); p++)
                name[n++] =
                    *p == '-' ? '_' : (*p >= 'a' && *p <= 'z' ? (char)(*p - 'a' + 'A') : *p);
            name[n] = '\0';
        }
        const char *v = getenv(name);
        if (!v || !*v)
            continue;
        int rc;
        if (o->spec[i].kind != EMOPT_ARGS) {
            if ((rc = set(o, L_ENV, i, v, strlen(v))) >= 0)
                return rc;
            continue;
        }
        for (const char *p = v; *p;) {
            const char *e = strchr(p, LIST_SEP);
            size_t len = e ? (size_t)(e - p) : strlen(p);
            if (len && (rc = add_arg(o, L_ENV, p, len)) >= 0)
                return rc;
            p += len + (e ? 1 : 0);
        }
    }
    return -1;
}

static bool blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* [*s, *e) without the blanks around it. */
static void trim(const char **s, const char **e)
{
    while (*s < *e && blank(**s))
        (*s)++;
    while (*e > *s && blank((*e)[-1]))
        (*e)--;
}

static int file_line(struct emopt *o, const char *path, int lineno, const char *p, const char *end)
{
    trim(&p, &end);
    if (p == end || *p == '#')
        return -1;
    const char *eq = memchr(p, '=', (size_t)(end - p));
    if (!eq)
        return emopt_usage_error(o, "%s:%d: expected 'key = value'", path, lineno);
    const char *k = p, *ke = eq, *v = eq + 1, *ve = end;
    trim(&k, &ke);
    trim(&v, &ve);
    size_t klen = (size_t)(ke - k);
    for (int i = 0; i < o->nspec; i++) {
        if (o->spec[i].no_file || strlen(o->spec[i].name) != klen ||
            memcmp(o->spec[i].name, k, klen) != 0)
            continue;
        if (o->spec[i].kind == EMOPT_ARGS)
            return add_arg(o, L_FILE, v, (size_t)(ve - v));
        return set(o, L_FILE, i, v, (size_t)(ve - v));
    }
    return emopt_usage_error(o, "%s:%d: unknown setting '%.*s'", path, lineno, (int)klen, k);
}

int emopt_file(struct emopt *o, const char *path)
{
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    size_t len = 0;
    int err = 0;
    if (f) {
        text = malloc(CONFIG_MAX + 1);
        if (!text)
            err = ENOMEM;
        else
            len = fread(text, 1, CONFIG_MAX + 1, f);
        if (!err && ferror(f))
            err = errno ? errno : EIO;
        if (!err && len > CONFIG_MAX)
            err = EFBIG;
        fclose(f);
    } else {
        err = errno;
    }
    if (err) {
        free(text);
        fprintf(stderr, "%s: %s: cannot read the config file: %s\n", o->prog, path,
                cli_strerror(err));
        return CLI_USAGE;
    }
    int rc = -1, lineno = 0;
    for (const char *p = text, *end = text + len; p < end && rc < 0;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        rc = file_line(o, path, ++lineno, p, le);
        p = nl ? nl + 1 : end;
    }
    free(text);
    return rc;
}

const char *emopt_get(const struct emopt *o, int id)
{
    for (int l = 0; l < EMOPT_LAYERS; l++)
        if (o->val[l] && o->val[l][id])
            return o->val[l][id];
    return NULL;
}

bool emopt_yes(const struct emopt *o, int id)
{
    const char *v = emopt_get(o, id);
    return v && (strcmp(v, "1") == 0 || strcmp(v, "yes") == 0 || strcmp(v, "true") == 0 ||
                 strcmp(v, "on") == 0);
}

char *const *emopt_args(const struct emopt *o, size_t *n)
{
    for (int l = 0; l < EMOPT_LAYERS; l++)
        if (o->nargs[l]) {
            *n = o->nargs[l];
            return o->args[l];
        }
    *n = 0;
    return NULL;
}

bool emopt_long(const struct emopt *o, int id, long lo, long hi, long *out)
{
    const char *v = emopt_get(o, id);
    if (!v)
        return true;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *end || errno || x < lo || x > hi) {
        emopt_usage_error(o, "--%s takes a number from %ld to %ld, not '%s'", o->spec[id].name, lo,
                          hi, v);
        return false;
    }
    *out = x;
    return true;
}

/* A number in [lo, hi]; what == NULL: above lo (and finite), "a positive number". */
static bool real(const struct emopt *o, int id, double lo, double hi, double *out, const char *what)
{
    const char *v = emopt_get(o, id);
    if (!v)
        return true;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (end == v || *end || errno || !em_isfinite(x) || x < lo || x > hi || (!what && !(x > lo))) {
        if (what)
            emopt_usage_error(o, "--%s takes %s from %g to %g, not '%s'", o->spec[id].name, what,
                              lo, hi, v);
        else
            emopt_usage_error(o, "--%s takes a positive number, not '%s'", o->spec[id].name, v);
        return false;
    }
    *out = x;
    return true;
}

bool emopt_seconds(const struct emopt *o, int id, double lo, double hi, double *out)
{
    return real(o, id, lo, hi, out, "seconds");
}

bool emopt_double(const struct emopt *o, int id, double lo, double hi, double *out)
{
    return real(o, id, lo, hi, out, "a number");
}

bool emopt_positive(const struct emopt *o, int id, double *out)
{
    return real(o, id, 0, HUGE_VAL, out, NULL);
}

int emopt_run(const struct emopt_command *c, int argc, char **argv)
{
    struct emopt o;
    if (emopt_init(&o, c->prog, c->cmd, c->usage, c->env_prefix, c->spec, c->nspec) < 0)
        return CLI_FAILED;
    int status = emopt_argv(&o, argc, argv);
    if (status < 0)
        status = emopt_env(&o);
    if (status < 0)
        status = c->run(&o);
    emopt_free(&o);
    return status;
}
