/* em-agent scan DIR */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "cli.h"
#include "emopt.h"
#include "cli_common.h"
#include "fsio.h"
#include "em_error.h"
#include "event.h"
#include "log.h"
#include "scan.h"

static const char scan_usage[] =
    "Usage: em-agent scan [OPTIONS] DIR\n"
    "\n"
    "Parse a finished or partial EPU session (a Supervisor_* grid directory) or a whole\n"
    "visit (the storage root holding atlas/ and the session directories) once, and print\n"
    "its final entities as JSON lines: sessions, atlases, grid squares, foil holes and\n"
    "micrographs, merged from every file that describes them and linked by EPU's ids.\n"
    "A loader's output directory (a metadata.json record, from `em-backend loaders`) is a\n"
    "dataset, with the headers of the files beside the record.\n"
    "A summary goes to stderr; per-file problems are logged as warnings.\n"
    "\n"
    "Options:\n"
    "  -o, --out FILE     write the events to FILE instead of stdout\n"
    "  --agent NAME       the events' \"agent\" field (default: this host's name)\n"
    "  -j, --jobs N       parser threads (default: the number of CPUs)\n"
    "  --no-progress      no progress line, even on a terminal\n"
    "  --strict           exit 1 when an EPU file or a directory could not be read or\n"
    "                     parsed, or DIR holds no EPU session\n"
    "  --json             the summary as one JSON object (on stderr)\n"
    "  -q, --quiet        no summary\n"
    "  -h, --help         show this help\n"
    "\n"
    "Exit status: 0 scanned; 1 DIR is not a directory, the events could not be written,\n"
    "or (with --strict) a file or directory could not be read or parsed or DIR holds no\n"
    "EPU session; 2 usage error.\n";

/* Through the log, so that --log-format json gets JSON lines; shown unless -q, whatever
 * the level. */
static void print_summary(const char *dir, const struct scan_summary *s)
{
    uint64_t total = 0;
    for (int i = 0; i < WIRE_TYPE_COUNT; i++)
        total += s->events[i];
    em_log_write(EM_LOG_INFO,
                 "scan %s: %llu sessions, %llu atlases, %llu grid squares, %llu foil "
                 "holes, %llu micrographs, %llu aborted sessions (%llu events) from %zu EPU "
                 "files (%.1f MB) in %.2f s",
                 dir, (unsigned long long)s->events[0], (unsigned long long)s->events[1],
                 (unsigned long long)s->events[2], (unsigned long long)s->events[3],
                 (unsigned long long)s->events[4], (unsigned long long)s->events[5],
                 (unsigned long long)total, s->files_parsed, (double)s->bytes / 1e6, s->seconds);
    if (s->events[WIRE_DATASET])
        em_log_write(EM_LOG_INFO, "scan: %llu loader datasets (metadata.json records)",
                     (unsigned long long)s->events[WIRE_DATASET]);
    if (s->files_failed)
        em_log_write(EM_LOG_INFO, "scan: %zu EPU files could not be read or parsed (see warnings)",
                     s->files_failed);
    if (s->dirs_failed)
        em_log_write(EM_LOG_INFO, "scan: %zu directories could not be read (see warnings)",
                     s->dirs_failed);
    if (s->files_skipped)
        em_log_write(EM_LOG_INFO,
                     "scan: %zu EPU files in %zu session directories without a usable "
                     "EpuSession.dm were not emitted (each directory is an aborted_session "
                     "event)",
                     s->files_skipped, s->sessions_skipped);
    if (s->unplaced)
        em_log_write(EM_LOG_INFO, "scan: %zu EPU-named files outside a session layout ignored",
                     s->unplaced);
}

/* The summary as one JSON object on stderr (stdout carries the events). */
static void print_summary_json(const char *dir, const struct scan_summary *s, bool no_session)
{
    static const char *const names[WIRE_TYPE_COUNT] = {
        "sessions",    "atlases",          "gridsquares", "foilholes",
        "micrographs", "aborted_sessions", "datasets",    "agents"};
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "dir", dir);
    uint64_t total = 0;
    for (int i = 0; i < WIRE_TYPE_COUNT; i++) {
        cJSON_AddNumberToObject(o, names[i], (double)s->events[i]);
        total += s->events[i];
    }
    cJSON_AddNumberToObject(o, "events", (double)total);
    cJSON_AddNumberToObject(o, "files_walked", (double)s->files_walked);
    cJSON_AddNumberToObject(o, "files_parsed", (double)s->files_parsed);
    cJSON_AddNumberToObject(o, "files_failed", (double)s->files_failed);
    cJSON_AddNumberToObject(o, "dirs_failed", (double)s->dirs_failed);
    cJSON_AddNumberToObject(o, "files_skipped", (double)s->files_skipped);
    cJSON_AddNumberToObject(o, "sessions_skipped", (double)s->sessions_skipped);
    cJSON_AddNumberToObject(o, "unplaced", (double)s->unplaced);
    cJSON_AddNumberToObject(o, "bytes", (double)s->bytes);
    cJSON_AddNumberToObject(o, "seconds", s->seconds);
    cJSON_AddBoolToObject(o, "no_session", no_session);
    char *line = cJSON_PrintUnformatted(o);
    if (line)
        fprintf(stderr, "%s\n", line);
    cJSON_free(line);
    cJSON_Delete(o);
}

enum { S_OUT, S_AGENT, S_JOBS, S_NO_PROGRESS, S_STRICT, S_JSON, S_COUNT };
static const struct emopt_spec scan_opts[S_COUNT] = {
    [S_OUT] = {"out", 'o', EMOPT_VALUE, false, false, NULL},
    [S_AGENT] = {"agent", 0, EMOPT_VALUE, false, false, NULL},
    [S_JOBS] = {"jobs", 'j', EMOPT_VALUE, false, false, NULL},
    [S_NO_PROGRESS] = {"no-progress", 0, EMOPT_FLAG, false, false, NULL},
    [S_STRICT] = {"strict", 0, EMOPT_FLAG, false, false, NULL},
    [S_JSON] = {"json", 0, EMOPT_FLAG, false, false, NULL},
};

static int scan_main(const struct emopt *eo)
{
    struct scan_options opt = {.progress = true, .out = stdout};
    char host[256];
    bool quiet = cli_quiet;
    long jobs = (long)uv_available_parallelism();
    size_t nargs;
    char *const *args = emopt_args(eo, &nargs);
    if (!emopt_long(eo, S_JOBS, 1, 64, &jobs))
        return EXIT_USAGE;
    if (nargs == 0)
        return emopt_usage_error(eo, "which directory? (see 'em-agent help scan')");
    if (nargs > 1)
        return emopt_usage_error(eo, "%s: one DIR only (see 'em-agent help scan')", args[1]);
    const char *dir = args[0], *out_path = emopt_get(eo, S_OUT);
    bool strict = emopt_yes(eo, S_STRICT), json = emopt_yes(eo, S_JSON);
    opt.threads = (unsigned)jobs;
    opt.agent = emopt_get(eo, S_AGENT);
    opt.progress = !emopt_yes(eo, S_NO_PROGRESS);
    opt.dir = dir;
    if (!opt.agent) {
        event_default_agent(host, sizeof(host));
        opt.agent = host;
    }
    opt.progress = opt.progress && !quiet && uv_guess_handle(2) == UV_TTY;
    FILE *out = stdout;
    if (out_path && !(out = fopen(out_path, "wb"))) { /* binary: LF line ends on Windows too */
        fprintf(stderr, "em-agent: %s: cannot open for writing: %s\n", out_path,
                em_strerror(em_from_errno(errno)));
        return EXIT_BAD_INPUT;
    }
    static char outbuf[1 << 16];
    setvbuf(out, outbuf, _IOFBF, sizeof(outbuf));
    opt.out = out;
    struct scan_summary sum;
    int rc = scan_run(&opt, &sum);
    if (out != stdout && fclose(out) != 0 && rc == 0)
        rc = em_from_errno(errno);
    if (rc == -EM_ENOENT && !sum.output_failed) {
        struct fsio_stat st;
        fprintf(stderr, "em-agent: %s: %s\n", dir,
                fsio_stat(dir, &st) == 0 ? "not a directory" : em_strerror(rc));
        return EXIT_BAD_INPUT;
    }
    if (rc == -EM_EPIPE && sum.output_failed && !out_path)
        return EXIT_BAD_INPUT; /* the reader went away (| head): nothing to report */
    if (rc < 0) {
        fprintf(stderr, "em-agent: %s: %s\n",
                sum.output_failed ? (out_path ? out_path : "standard output") : dir,
                em_strerror(rc));
        return EXIT_BAD_INPUT;
    }
    bool no_session =
        sum.events[0] == 0 && sum.sessions_skipped == 0 && sum.events[WIRE_DATASET] == 0;
    if (no_session)
        em_log(EM_LOG_WARN, "%s: no EPU session here (no EpuSession.dm below it)", dir);
    if (json)
        print_summary_json(dir, &sum, no_session);
    else if (!quiet)
        print_summary(dir, &sum);
    return strict && (sum.files_failed || sum.dirs_failed || no_session) ? EXIT_BAD_INPUT : EXIT_OK;
}

int cmd_scan(int argc, char **argv)
{
    static const struct emopt_command c = {"em-agent", "scan",  scan_usage, NULL,
                                           scan_opts,  S_COUNT, scan_main};
    return emopt_run(&c, argc, argv);
}
