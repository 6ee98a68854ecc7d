/* em-backend catalog: the consolidated catalog of the datasets the loaders made, and its
 * validation report (../shared/reference/loaders-and-formats.md §4–5), from the store. */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "backend.h"
#include "em_error.h"
#include "jobs.h"
#include "store.h"

static const char catalog_usage[] =
    "Usage: em-backend catalog [--store URL] [--json] [--out DIR]\n"
    "\n"
    "The datasets in the store (loader output an agent saw and consume or ingest stored):\n"
    "each one's metadata.json record is checked against the metadata schema (required\n"
    "fields, the status and data type lists, shapes, voxel sizes, sha256), then summed up\n"
    "per source: records, valid and invalid (with the reasons), schema compliance, where\n"
    "the data's own headers disagree with the record, and the failed jobs with their\n"
    "errors.\n"
    "\n"
    "  --store URL  sqlite:PATH or postgresql://… [EM_BACKEND_STORE]\n"
    "  --json       the catalog as one JSON object on stdout (instead of text)\n"
    "  --out DIR    also write DIR/metadata_catalog_<time>.json and\n"
    "               DIR/validation_report_<time>.json\n"
    "\n"
    "Sources are the loaders' names (url, movie, idr, dvid, epfl, …); the schema's source\n"
    "list is widened to them. Exit status: 0 done (invalid records are reported, not an\n"
    "error); 1 the store cannot be read or a file cannot be written; 2 bad usage.\n";

enum { K_STORE, K_JSON, K_OUT, K_COUNT };
static const struct emopt_spec catalog_opts[K_COUNT] = {
    [K_STORE] = {"store", 0, EMOPT_VALUE, true, false, NULL},
    [K_JSON] = {"json", 0, EMOPT_FLAG, false, false, NULL},
    [K_OUT] = {"out", 0, EMOPT_VALUE, false, false, NULL},
};

static bool in_list(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(s, *list) == 0)
            return true;
    return false;
}

static void add_error(cJSON *errs, const char *fmt, ...) EM_PRINTF(2, 3);
static void add_error(cJSON *errs, const char *fmt, ...)
{
    char buf[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    cJSON_AddItemToArray(errs, cJSON_CreateString(buf));
}

static bool number_array(const cJSON *a, int lo, int hi, bool integers, double min)
{
    int n = cJSON_GetArraySize(a);
    if (!cJSON_IsArray(a) || n < lo || n > hi)
        return false;
    const cJSON *v;
    cJSON_ArrayForEach(v, a)
    {
        if (!cJSON_IsNumber(v) || v->valuedouble < min ||
            (integers && v->valuedouble != floor(v->valuedouble)))
            return false;
    }
    return true;
}

/* The schema's rules (reference §4), the source list widened to the loaders. */
static void validate(const cJSON *r, cJSON *errs)
{
    static const char *const sources[] = {"ebi", "empiar",        "epfl", "flyem", "dvid",
                                          "idr", "openorganelle", "url",  "movie", NULL};
    static const char *const statuses[] = {"pending", "processing", "saving-data", "complete",
                                           "failed",  "cancelled",  NULL};
    static const char *const types[] = {"uint8", "uint16",  "uint32",  "int8", "int16",
                                        "int32", "float32", "float64", NULL};
    static const char *const required[] = {"id", "source", "source_id", "status", "created_at"};
    if (!cJSON_IsObject(r)) {
        add_error(errs, "%s", "the record is not a JSON object");
        return;
    }
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
        if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(r, required[i])))
            add_error(errs, "'%s' is a required string", required[i]);
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(r, "source");
    if (cJSON_IsString(src) && !in_list(src->valuestring, sources))
        add_error(errs, "source '%s' is not one of the known sources", src->valuestring);
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(r, "status");
    if (cJSON_IsString(st) && !in_list(st->valuestring, statuses))
        add_error(errs, "status '%s' is not a status", st->valuestring);
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(r, "metadata");
    const cJSON *core = cJSON_GetObjectItemCaseSensitive(md, "core");
    if (!cJSON_IsObject(md) || !cJSON_IsObject(core)) {
        add_error(errs, "%s", "'metadata.core' is required");
        return;
    }
    const cJSON *desc = cJSON_GetObjectItemCaseSensitive(core, "description");
    if (!cJSON_IsString(desc) || !desc->valuestring[0])
        add_error(errs, "%s", "'metadata.core.description' is a required non-empty string");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(core, "volume_shape");
    if (shape && !number_array(shape, 2, 4, true, 1))
        add_error(errs, "%s", "'volume_shape' must be 2 to 4 integers >= 1");
    const cJSON *vox = cJSON_GetObjectItemCaseSensitive(core, "voxel_size_nm");
    if (vox && !number_array(vox, 2, 4, false, 0) && !cJSON_IsObject(vox))
        add_error(errs, "%s", "'voxel_size_nm' must be 2 to 4 numbers >= 0 or {x, y, z}");
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(core, "data_type");
    if (dt && (!cJSON_IsString(dt) || !in_list(dt->valuestring, types)))
        add_error(errs, "data_type '%s' is not one of the schema's",
                  cJSON_IsString(dt) ? dt->valuestring : "?");
    const cJSON *tech = cJSON_GetObjectItemCaseSensitive(md, "technical");
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(tech, "sha256");
    if (sha && (!cJSON_IsString(sha) || strlen(sha->valuestring) != 64 ||
                strspn(sha->valuestring, "0123456789abcdef") != 64))
        add_error(errs, "%s", "'sha256' must be 64 lowercase hex digits");
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(tech, "file_size_bytes");
    if (size && (!cJSON_IsNumber(size) || size->valuedouble < 0 ||
                 size->valuedouble != floor(size->valuedouble)))
        add_error(errs, "%s", "'file_size_bytes' must be an integer >= 0");
}

struct cat {
    cJSON *by_source; /* source -> {valid, invalid, error_details[]} */
    cJSON *details;   /* the validation report's detailed_results */
    cJSON *samples;   /* up to 5 valid records */
    cJSON *failed;    /* failed jobs: {id, loader, error} */
    long total, valid, invalid, parsing;
};

static cJSON *source_entry(struct cat *c, const char *source)
{
    cJSON *e = cJSON_GetObjectItemCaseSensitive(c->by_source, source);
    if (!e) {
        e = cJSON_AddObjectToObject(c->by_source, source);
        cJSON_AddNumberToObject(e, "valid", 0);
        cJSON_AddNumberToObject(e, "invalid", 0);
        cJSON_AddArrayToObject(e, "error_details");
    }
    return e;
}

static void bump(cJSON *e, const char *key)
{
    cJSON *n = cJSON_GetObjectItemCaseSensitive(e, key);
    cJSON_SetNumberValue(n, n->valuedouble + 1);
}

static int one_job(void *ctx, const struct job *j)
{
    struct cat *c = ctx;
    if (strcmp(j->status, "failed") == 0) {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddNumberToObject(f, "job", (double)j->id);
        cJSON_AddStringToObject(f, "loader", j->loader);
        cJSON_AddStringToObject(f, "error", j->last_error);
        cJSON_AddItemToArray(c->failed, f);
    }
    return 0;
}

/* One stored dataset (what an agent saw): its record checked and counted. */
static int one_dataset(void *ctx, int ncols, const char *const *names, const char *const *vals)
{
    (void)names;
    struct cat *c = ctx;
    if (ncols < 4)
        return 0;
    cJSON *data = vals[2] ? cJSON_Parse(vals[2]) : NULL;
    const cJSON *dir = cJSON_GetObjectItemCaseSensitive(data, "dir");
    char path[1400];
    snprintf(path, sizeof(path), "%s:%s/metadata.json", vals[3] ? vals[3] : "?",
             cJSON_IsString(dir) ? dir->valuestring : "?");
    c->total++;
    cJSON *errs = cJSON_CreateArray();
    const cJSON *rec = cJSON_GetObjectItemCaseSensitive(data, "record");
    if (rec)
        validate(rec, errs);
    else {
        add_error(errs, "%s", "the stored dataset has no record");
        c->parsing++;
    }
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(rec, "source");
    const char *source = cJSON_IsString(src) ? src->valuestring : vals[0] ? vals[0] : "unknown";
    cJSON *e = source_entry(c, source);
    bool ok = cJSON_GetArraySize(errs) == 0;
    bump(e, ok ? "valid" : "invalid");
    if (ok) {
        c->valid++;
        if (cJSON_GetArraySize(c->samples) < 5)
            cJSON_AddItemToArray(c->samples, cJSON_Duplicate(rec, true));
    } else {
        c->invalid++;
        const cJSON *msg;
        cJSON_ArrayForEach(msg, errs)
        {
            char line[2900];
            snprintf(line, sizeof(line), "%s: %s", path, msg->valuestring);
            cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(e, "error_details"),
                                 cJSON_CreateString(line));
        }
    }
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "file", path);
    cJSON_AddStringToObject(d, "source", source);
    cJSON_AddBoolToObject(d, "valid", ok);
    cJSON_AddItemToObject(d, "errors", errs);
    /* What the agent's header readers found against what the record claims. */
    const cJSON *mism = cJSON_GetObjectItemCaseSensitive(data, "mismatches");
    cJSON_AddItemToObject(d, "data_mismatches",
                          mism ? cJSON_Duplicate(mism, true) : cJSON_CreateArray());
    cJSON_AddItemToArray(c->details, d);
    cJSON_Delete(data);
    return 0;
}

static int write_json(const char *dir, const char *name, const char *stamp, const cJSON *o)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s_%s.json", dir, name, stamp);
    char *t = cJSON_Print(o);
    FILE *f = t ? fopen(path, "wb") : NULL;
    int ok = f && fputs(t, f) >= 0 && fputc('\n', f) != EOF;
    if (f && fclose(f) != 0)
        ok = 0;
    cJSON_free(t);
    if (!ok) {
        fprintf(stderr, "em-backend: catalog: %s: cannot write\n", path);
        return -EM_EIO;
    }
    fprintf(stderr, "em-backend: catalog: wrote %s\n", path);
    return 0;
}

static int catalog_main(const struct emopt *o)
{
    size_t nargs;
    emopt_args(o, &nargs);
    if (nargs)
        return emopt_usage_error(o, "no arguments (see 'em-backend help catalog')");
    const char *url = be_store_url(emopt_get(o, K_STORE));
    if (!url)
        return BE_USAGE;
    struct store *s;
    char reason[512];
    int rc = store_open_readonly(url, &s, reason, sizeof(reason)); /* a typo makes no store */
    if (rc < 0) {
        fprintf(stderr, "em-backend: %s\n", reason);
        return rc == -EM_EUSAGE ? BE_USAGE : BE_FAILED;
    }
    struct cat c = {cJSON_CreateObject(),
                    cJSON_CreateArray(),
                    cJSON_CreateArray(),
                    cJSON_CreateArray(),
                    0,
                    0,
                    0,
                    0};
    rc = store_query(s,
                     "SELECT loader, dataset_id, data, agent FROM dataset WHERE deleted = 0 "
                     "ORDER BY loader, dataset_id",
                     0, NULL, one_dataset, &c, reason, sizeof(reason));
    if (rc == 0)
        rc = jobs_list(s, "failed", one_job, &c, reason, sizeof(reason));
    store_close(s);
    if (rc < 0) {
        fprintf(stderr, "em-backend: catalog: %s\n", rc == -EM_EIO ? reason : em_strerror(rc));
        return BE_FAILED;
    }
    char now[40], stamp[40];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%d_%H%M%S", &tm);
    double rate = c.total ? round(10000.0 * (double)c.valid / (double)c.total) / 100 : 100;
    cJSON *validation = cJSON_CreateObject();
    cJSON_AddNumberToObject(validation, "total_files", (double)c.total);
    cJSON_AddNumberToObject(validation, "valid_files", (double)c.valid);
    cJSON_AddNumberToObject(validation, "invalid_files", (double)c.invalid);
    cJSON_AddNumberToObject(validation, "validation_rate", rate);
    cJSON_AddItemToObject(validation, "errors_by_source", c.by_source);
    cJSON *cat = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(cat, "metadata");
    cJSON_AddStringToObject(meta, "generated_at", now);
    cJSON_AddStringToObject(meta, "schema_version", "1.0");
    cJSON *sum = cJSON_AddObjectToObject(cat, "summary");
    cJSON_AddNumberToObject(sum, "total_files", (double)c.total);
    cJSON_AddNumberToObject(sum, "processed_files", (double)(c.total - c.parsing));
    cJSON_AddNumberToObject(sum, "validation_errors", (double)c.invalid);
    cJSON_AddNumberToObject(sum, "parsing_errors", (double)c.parsing);
    cJSON *found = cJSON_AddArrayToObject(sum, "sources_found");
    for (const cJSON *e = c.by_source->child; e; e = e->next)
        cJSON_AddItemToArray(found, cJSON_CreateString(e->string));
    cJSON_AddItemToObject(cat, "validation", cJSON_Duplicate(validation, true));
    cJSON_AddItemToObject(cat, "valid_records_sample", c.samples);
    cJSON_AddItemToObject(cat, "failed_jobs", cJSON_Duplicate(c.failed, true));
    cJSON_AddNumberToObject(cat, "schema_compliance_rate", rate);
    cJSON *report = cJSON_CreateObject();
    cJSON_AddStringToObject(report, "generated_at", now);
    cJSON_AddItemToObject(report, "summary", validation);
    cJSON_AddItemToObject(report, "detailed_results", c.details);
    int status = BE_OK;
    if (emopt_get(o, K_OUT) &&
        (write_json(emopt_get(o, K_OUT), "metadata_catalog", stamp, cat) < 0 ||
         write_json(emopt_get(o, K_OUT), "validation_report", stamp, report) < 0))
        status = BE_FAILED;
    if (emopt_yes(o, K_JSON)) {
        char *text = cJSON_PrintUnformatted(cat);
        if (text)
            printf("%s\n", text);
        cJSON_free(text);
    } else {
        printf("%ld dataset record%s, %ld valid, %ld invalid (schema compliance %.2f %%); %d "
               "failed job%s\n",
               c.total, c.total == 1 ? "" : "s", c.valid, c.invalid, rate,
               cJSON_GetArraySize(c.failed), cJSON_GetArraySize(c.failed) == 1 ? "" : "s");
        for (const cJSON *e = c.by_source->child; e; e = e->next) {
            printf("  %-14s %d valid, %d invalid\n", e->string,
                   cJSON_GetObjectItemCaseSensitive(e, "valid")->valueint,
                   cJSON_GetObjectItemCaseSensitive(e, "invalid")->valueint);
            const cJSON *d;
            cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(e, "error_details"))
                printf("      invalid: %s\n", d->valuestring);
        }
        const cJSON *f;
        cJSON_ArrayForEach(f, c.failed) printf(
            "  failed job %d (%s): %s\n", cJSON_GetObjectItemCaseSensitive(f, "job")->valueint,
            cJSON_GetObjectItemCaseSensitive(f, "loader")->valuestring,
            cJSON_GetObjectItemCaseSensitive(f, "error")->valuestring);
        const cJSON *d;
        cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(report, "detailed_results"))
        {
            const cJSON *m;
            cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(d, "data_mismatches"))
                printf("  the data disagrees: %s: %s\n",
                       cJSON_GetObjectItemCaseSensitive(d, "file")->valuestring, m->valuestring);
        }
    }
    cJSON_Delete(cat);
    cJSON_Delete(report);
    cJSON_Delete(c.failed);
    return fflush(stdout) == 0 ? status : BE_FAILED;
}

int cmd_catalog(int argc, char **argv)
{
    static const struct emopt_command c = {"em-backend", "catalog", catalog_usage, "EM_BACKEND_",
                                           catalog_opts, K_COUNT,   catalog_main};
    return emopt_run(&c, argc, argv);
}
