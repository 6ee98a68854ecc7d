/* em-backend job: loader jobs by hand (add, list, show, cancel, retry). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "backend.h"
#include "cli_common.h"
#include "em_error.h"
#include "jobs.h"
#include "loaders.h"
#include "store.h"

static const char job_usage[] =
    "Usage: em-backend job add LOADER ARGS... [--max-attempts N] [--wait] [--store URL]\n"
    "       em-backend job list [--status STATUS] [--json] [--store URL]\n"
    "       em-backend job show ID [--store URL]\n"
    "       em-backend job cancel ID [--store URL]\n"
    "       em-backend job retry ID [--wait] [--store URL]\n"
    "\n"
    "Loader jobs in the store; `em-backend loaders` runs them.\n"
    "\n"
    "  add       a pending job for LOADER with its arguments; prints its id. Loaders:\n"
    "              url URL...   fetch each URL (http, https, ftp, sftp, file) into\n"
    "                           OUT/url/<dataset>/, verified (size; sha256 recorded;\n"
    "                           `URL#sha256=HEX` also checks the digest)\n"
    "              movie BASE_URL PATH\n"
    "                           the movie beside the micrograph manifest PATH (relative\n"
    "                           to BASE_URL, the acquisition share): PATH without .xml\n"
    "                           and _Fractions.tiff, _Fractions.mrc, _EER.eer, .tiff,\n"
    "                           .eer or .mrc, the first that exists; never deleted there\n"
    "              idr IMAGE    an IDR image: its name from the API, then the file\n"
    "              dvid SERVER UUID INSTANCE X0,Y0,Z0,DX,DY,DZ\n"
    "                           a DVID subvolume (X first): `info`, then `raw`, its size\n"
    "                           checked (DX·DY·DZ·bytes per voxel)\n"
    "              epfl [URL]   the EPFL CA1 hippocampus volume (5 nm voxels)\n"
    "  list      every job (or those with --status): id, loader, status, attempts,\n"
    "            bytes, error; --json: one JSON object per job\n"
    "  show      one job as a JSON object\n"
    "  cancel    a pending or running job is cancelled (its runner stops within its\n"
    "            lease renewal, a few seconds)\n"
    "  retry     a failed or cancelled job is pending again, its attempts reset\n"
    "\n"
    "  --store URL        sqlite:PATH or postgresql://… [EM_BACKEND_STORE]\n"
    "  --max-attempts N   attempts before a job fails (transient failures are retried\n"
    "                     with back-off); default 5\n"
    "  --status STATUS    pending, processing, saving-data, complete, failed, cancelled\n"
    "  --wait             add, retry: then wait until a runner (`em-backend loaders`) has\n"
    "                     fetched the job's files (saving-data or complete: exit 0), or\n"
    "                     the job failed or was cancelled (exit 1, its error on stderr);\n"
    "                     progress on a terminal. Interrupting the wait leaves the job to\n"
    "                     its runner.\n"
    "\n"
    "Exit status: 0 done; 1 the store failed, the job does not exist or is not in a state\n"
    "that allows it, or (--wait) it failed or was cancelled; 2 bad usage.\n";

enum { J_STORE, J_JSON, J_MAX, J_STATUS, J_WAIT, J_COUNT };
static const struct emopt_spec job_opts[J_COUNT] = {
    [J_STORE] = {"store", 0, EMOPT_VALUE, true, false, NULL},
    [J_JSON] = {"json", 0, EMOPT_FLAG, false, false, NULL},
    [J_MAX] = {"max-attempts", 0, EMOPT_VALUE, false, false, NULL},
    [J_STATUS] = {"status", 0, EMOPT_VALUE, false, false, NULL},
    [J_WAIT] = {"wait", 0, EMOPT_FLAG, false, false, NULL},
};

static int print_line(void *ctx, const struct job *j)
{
    bool json = *(bool *)ctx;
    if (json) {
        cJSON *o = job_to_json(j);
        char *t = o ? cJSON_PrintUnformatted(o) : NULL;
        if (t)
            printf("%s\n", t);
        cJSON_free(t);
        cJSON_Delete(o);
        return t ? 0 : -EM_ENOMEM;
    }
    char bytes[64];
    if (j->bytes_total >= 0)
        snprintf(bytes, sizeof(bytes), "%" PRId64 "/%" PRId64, j->bytes_done, j->bytes_total);
    else
        snprintf(bytes, sizeof(bytes), "%" PRId64, j->bytes_done);
    const cJSON *first = cJSON_GetArrayItem(j->params, 0);
    printf("%-6" PRId64 " %-8s %-11s %d/%-3d %-21s %s%s%s\n", j->id, j->loader, j->status,
           j->attempts, j->max_attempts, bytes, cJSON_IsString(first) ? first->valuestring : "",
           j->last_error[0] ? "  error: " : "", j->last_error);
    return 0;
}

/* --wait: until job `id` leaves pending and processing. BE_OK (its files are fetched),
 * BE_FAILED (it failed, was cancelled or is gone: said on stderr), or EM_EIO. */
static int wait_job(struct store *s, int64_t id, char *reason, size_t cap)
{
    /* Changes from here on wake the wait (PostgreSQL: LISTEN before the first look). */
    if (store_wait_change(s, 0, reason, cap) < 0)
        return -EM_EIO;
    bool tty = isatty(2) && !cli_quiet, warned = false;
    double since = be_mono_s();
    int status = BE_FAILED;
    for (;;) {
        struct job j = {0};
        int rc = jobs_get(s, id, &j, reason, cap);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            fprintf(stderr, "%sem-backend: job %" PRId64 ": gone from the store\n",
                    tty ? "\r\033[K" : "", id);
            break;
        }
        bool fetched = strcmp(j.status, "saving-data") == 0 || strcmp(j.status, "complete") == 0;
        if (fetched || strcmp(j.status, "failed") == 0 || strcmp(j.status, "cancelled") == 0) {
            if (tty)
                fprintf(stderr, "\r\033[K");
            if (fetched)
                status = BE_OK;
            else
                fprintf(stderr, "em-backend: job %" PRId64 " %s%s%s\n", id, j.status,
                        j.last_error[0] ? ": " : "", j.last_error);
            job_free(&j);
            break;
        }
        if (!warned && strcmp(j.status, "pending") == 0 && be_mono_s() - since >= 10) {
            fprintf(stderr,
                    "%sem-backend: job %" PRId64 " still pending after 10 s: is a runner "
                    "(em-backend loaders --store %s) running?\n",
                    tty ? "\r\033[K" : "", id, s->redacted);
            warned = true;
        }
        if (tty) {
            if (j.bytes_total > 0)
                fprintf(stderr, "\r\033[Kjob %" PRId64 ": %s, %.1f of %.1f MB (%.0f %%)", id,
                        j.status, (double)j.bytes_done / 1e6, (double)j.bytes_total / 1e6,
                        100.0 * (double)j.bytes_done / (double)j.bytes_total);
            else
                fprintf(stderr, "\r\033[Kjob %" PRId64 ": %s, %.1f MB", id, j.status,
                        (double)j.bytes_done / 1e6);
        }
        job_free(&j);
        /* Runners renew their jobs every second: a change; a second at most otherwise. */
        if (store_wait_change(s, 1000, reason, cap) < 0)
            return -EM_EIO;
    }
    return status;
}

static bool parse_id(const char *text, int64_t *id)
{
    char *end;
    long long v = text ? strtoll(text, &end, 10) : 0;
    if (!text || end == text || *end || v <= 0) {
        fprintf(stderr, "em-backend: job: %s: not a job id\n", text ? text : "(none)");
        return false;
    }
    *id = v;
    return true;
}

static int job_main(const struct emopt *o)
{
    size_t nargs;
    char *const *args = emopt_args(o, &nargs);
    if (nargs < 1)
        return emopt_usage_error(o, "which? add, list, show, cancel or retry");
    const char *verb = args[0];
    bool json = emopt_yes(o, J_JSON);
    long max_attempts = 5;
    if (!emopt_long(o, J_MAX, 1, 1000, &max_attempts))
        return BE_USAGE;
    int64_t id = 0;
    bool add = strcmp(verb, "add") == 0, list = strcmp(verb, "list") == 0;
    bool wait = emopt_yes(o, J_WAIT);
    if (wait && !add && strcmp(verb, "retry") != 0)
        return emopt_usage_error(o, "--wait goes with add or retry");
    if (add) {
        if (nargs < 2)
            return emopt_usage_error(o, "add LOADER ARGS...: which loader, and what to load?");
        char why[256];
        if (loader_check(args[1], (const char *const *)args + 2, nargs - 2, why, sizeof(why)) < 0) {
            fprintf(stderr, "em-backend: job add: %s\n", why);
            return BE_USAGE;
        }
    } else if (list) {
        if (nargs > 1)
            return emopt_usage_error(o, "list takes no argument");
    } else if (strcmp(verb, "show") == 0 || strcmp(verb, "cancel") == 0 ||
               strcmp(verb, "retry") == 0) {
        if (nargs != 2 || !parse_id(args[1], &id))
            return BE_USAGE;
    } else {
        return emopt_usage_error(o, "%s: unknown (add, list, show, cancel, retry)", verb);
    }
    const char *url = be_store_url(emopt_get(o, J_STORE));
    if (!url)
        return BE_USAGE;
    struct store *s;
    char reason[512];
    /* Reading jobs opens the store read-only: a mistyped path makes no empty store. */
    bool reading = list || strcmp(verb, "show") == 0;
    int rc = reading ? store_open_readonly(url, &s, reason, sizeof(reason))
                     : store_open(url, false, &s, reason, sizeof(reason));
    if (rc < 0) {
        fprintf(stderr, "em-backend: %s\n", reason);
        return rc == -EM_EUSAGE ? BE_USAGE : BE_FAILED;
    }
    int status = BE_OK;
    if (add) {
        cJSON *params = cJSON_CreateArray();
        for (size_t i = 2; params && i < nargs; i++)
            cJSON_AddItemToArray(params, cJSON_CreateString(args[i]));
        rc = params ? jobs_add(s, args[1], params, NULL, (int)max_attempts, &id, reason,
                               sizeof(reason))
                    : -EM_ENOMEM;
        cJSON_Delete(params);
        if (rc == 0)
            printf("%" PRId64 "\n", id);
    } else if (list) {
        rc = jobs_list(s, emopt_get(o, J_STATUS), print_line, &json, reason, sizeof(reason));
    } else if (strcmp(verb, "show") == 0) {
        struct job j;
        rc = jobs_get(s, id, &j, reason, sizeof(reason));
        if (rc == 1) {
            cJSON *jo = job_to_json(&j);
            char *t = jo ? cJSON_Print(jo) : NULL;
            if (t)
                printf("%s\n", t);
            cJSON_free(t);
            cJSON_Delete(jo);
            job_free(&j);
        } else if (rc == 0) {
            fprintf(stderr, "em-backend: job %" PRId64 ": no such job\n", id);
            status = BE_FAILED;
        }
    } else {
        bool cancel = strcmp(verb, "cancel") == 0;
        rc = cancel ? jobs_cancel(s, id, reason, sizeof(reason))
                    : jobs_retry(s, id, reason, sizeof(reason));
        if (rc == 1) {
            printf("job %" PRId64 ": %s\n", id, cancel ? "cancelled" : "pending again");
            rc = 0;
        } else if (rc == 0) {
            struct job j = {0};
            int got = jobs_get(s, id, &j, reason, sizeof(reason));
            if (got == 1)
                fprintf(stderr, "em-backend: job %" PRId64 " is %s: %s\n", id, j.status,
                        cancel ? "only a pending or running job can be cancelled"
                               : "only a failed or cancelled job can be retried");
            else if (got == 0)
                fprintf(stderr, "em-backend: job %" PRId64 ": no such job\n", id);
            job_free(&j);
            status = BE_FAILED;
        }
    }
    if (wait && rc == 0 && status == BE_OK) { /* a job added, or pending again */
        fflush(stdout);                       /* its id or line before the wait */
        rc = wait_job(s, id, reason, sizeof(reason));
        if (rc > 0) {
            status = rc;
            rc = 0;
        }
    }
    store_close(s);
    if (rc < 0) {
        fprintf(stderr, "em-backend: job: %s\n", rc == -EM_EIO ? reason : em_strerror(rc));
        return BE_FAILED;
    }
    return fflush(stdout) == 0 ? status : BE_FAILED;
}

int cmd_job(int argc, char **argv)
{
    static const struct emopt_command c = {"em-backend", "job",   job_usage, "EM_BACKEND_",
                                           job_opts,     J_COUNT, job_main};
    return emopt_run(&c, argc, argv);
}
