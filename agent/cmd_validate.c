/* em-agent validate DIR: the command (options and printing); the checks are validate.c. */
#include "validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "cli.h"
#include "emopt.h"
#include "em_error.h"
#include "epu.h"
#include "fsio.h"
#include "tree.h"

static const char validate_usage[] =
    "Usage: em-agent validate [--json] [-j N] DIR\n"
    "\n"
    "Check a grid (session) directory or a whole visit:\n"
    "  - every session directory has an EpuSession.dm that parses;\n"
    "  - it has Metadata/ and at least one Images-Disc<N>/ directory;\n"
    "  - every imaged square has its Metadata/GridSquare_<gs>.dm;\n"
    "  - every exposure's foil hole is listed in its square's .dm;\n"
    "  - the atlas named by the session's AtlasId can be found and parses;\n"
    "  - every EPU file parses and every other .xml/.dm file is well-formed.\n"
    "\n"
    "Options:\n"
    "  --json       print one JSON object instead of text\n"
    "  -j, --jobs N parser threads (default: the number of CPUs)\n"
    "  -h, --help   show this help\n"
    "\n"
    "A directory that cannot be read is a finding (\"cannot read the directory: permission\n"
    "denied\"), and so is a DIR that holds no EPU session.\n"
    "\n"
    "Exit status: 0 valid; 1 findings, or DIR cannot be read; 2 usage error.\n";

static void print_text(const struct validation *v, const char *dir)
{
    for (size_t i = 0; i < v->tree.session_count; i++) {
        const struct session_report *r = &v->reports[i];
        printf("session %s", r->ts->dir);
        if (r->doc)
            printf(" (id %lld): %zu squares listed", (long long)r->doc->u.session.session_id.v,
                   r->doc->u.session.gridsquare_count);
        else
            printf(": no usable EpuSession.dm");
        printf(", %zu with metadata, %zu imaged, %zu micrographs", r->squares_with_metadata,
               r->squares_imaged, r->micrographs);
        if (r->atlas_doc)
            printf("; atlas %s (id %lld)", r->atlas_rel,
                   (long long)r->atlas_doc->u.atlas.atlas_id.v);
        printf("\n");
    }
    for (size_t i = 0; i < v->nfindings; i++) {
        const struct finding *f = &v->findings[i];
        if (f->line > 0)
            printf("finding: %s:%ld: %s\n", f->path, f->line, f->message);
        else
            printf("finding: %s: %s\n", f->path, f->message);
    }
    if (v->nfindings)
        printf("%s: %zu finding%s (%zu files checked)\n", dir, v->nfindings,
               v->nfindings == 1 ? "" : "s", v->files_checked);
    else
        printf("%s: valid (%zu files checked)\n", dir, v->files_checked);
}

static int print_json(const struct validation *v, const char *dir)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "dir", dir);
    cJSON_AddBoolToObject(o, "valid", v->nfindings == 0);
    cJSON_AddNumberToObject(o, "files_checked", (double)v->files_checked);
    cJSON *sessions = cJSON_AddArrayToObject(o, "sessions");
    for (size_t i = 0; i < v->tree.session_count; i++) {
        const struct session_report *r = &v->reports[i];
        cJSON *s = cJSON_CreateObject();
        cJSON_AddItemToArray(sessions, s);
        cJSON_AddStringToObject(s, "path", r->ts->dir);
        if (r->doc) {
            cJSON_AddNumberToObject(s, "session_id", (double)r->doc->u.session.session_id.v);
            cJSON_AddStringToObject(s, "name", r->doc->u.session.name);
            cJSON_AddNumberToObject(s, "squares_listed",
                                    (double)r->doc->u.session.gridsquare_count);
        } else {
            cJSON_AddNullToObject(s, "session_id");
            cJSON_AddNullToObject(s, "name");
            cJSON_AddNullToObject(s, "squares_listed");
        }
        cJSON_AddNumberToObject(s, "squares_with_metadata", (double)r->squares_with_metadata);
        cJSON_AddNumberToObject(s, "squares_imaged", (double)r->squares_imaged);
        cJSON_AddNumberToObject(s, "micrographs", (double)r->micrographs);
        if (r->atlas_doc) {
            cJSON_AddStringToObject(s, "atlas", r->atlas_rel);
            cJSON_AddNumberToObject(s, "atlas_id", (double)r->atlas_doc->u.atlas.atlas_id.v);
        } else {
            cJSON_AddNullToObject(s, "atlas");
            cJSON_AddNullToObject(s, "atlas_id");
        }
    }
    cJSON *findings = cJSON_AddArrayToObject(o, "findings");
    for (size_t i = 0; i < v->nfindings; i++) {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddItemToArray(findings, f);
        cJSON_AddStringToObject(f, "path", v->findings[i].path);
        if (v->findings[i].line > 0)
            cJSON_AddNumberToObject(f, "line", (double)v->findings[i].line);
        else
            cJSON_AddNullToObject(f, "line");
        cJSON_AddStringToObject(f, "message", v->findings[i].message);
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text)
        return -EM_ENOMEM;
    printf("%s\n", text);
    cJSON_free(text);
    return 0;
}

enum { V_JSON, V_JOBS, V_COUNT };
static const struct emopt_spec validate_opts[V_COUNT] = {
    [V_JSON] = {"json", 0, EMOPT_FLAG, false, false, NULL},
    [V_JOBS] = {"jobs", 'j', EMOPT_VALUE, false, false, NULL},
};

static int validate_dir(const struct emopt *opt)
{
    bool json = emopt_yes(opt, V_JSON);
    long threads = (long)uv_available_parallelism();
    size_t nargs;
    char *const *args = emopt_args(opt, &nargs);
    if (!emopt_long(opt, V_JOBS, 1, 64, &threads))
        return EXIT_USAGE;
    if (nargs == 0)
        return emopt_usage_error(opt, "which directory? (see 'em-agent help validate')");
    if (nargs > 1)
        return emopt_usage_error(opt, "%s: one DIR only (see 'em-agent help validate')", args[1]);
    const char *dir = args[0];
    struct validation v = {0};
    int rc = tree_scan(dir, &v.tree);
    if (rc < 0) {
        struct fsio_stat st;
        fprintf(stderr, "em-agent: %s: %s\n", dir,
                rc == -EM_ENOENT && fsio_stat(dir, &st) == 0 ? "not a directory" : em_strerror(rc));
        tree_free(&v.tree);
        return EXIT_BAD_INPUT;
    }
    rc = validate_run(&v, (unsigned)threads);
    if (rc == 0)
        rc = json ? print_json(&v, dir) : (print_text(&v, dir), 0);
    int status = rc < 0 || v.nfindings ? EXIT_BAD_INPUT : EXIT_OK;
    if (rc < 0)
        fprintf(stderr, "em-agent: %s: %s\n", dir, em_strerror(rc));
    if (fflush(stdout) != 0)
        status = EXIT_BAD_INPUT;
    validation_free(&v);
    return status;
}

int cmd_validate(int argc, char **argv)
{
    static const struct emopt_command c = {"em-agent",    "validate", validate_usage, NULL,
                                           validate_opts, V_COUNT,    validate_dir};
    return emopt_run(&c, argc, argv);
}
