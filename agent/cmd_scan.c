/* em-agent scan DIR */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "cli.h"
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
    "A summary goes to stderr; per-file problems are logged as warnings.\n"
    "\n"
    "Options:\n"
    "  -o, --out FILE     write the events to FILE instead of stdout\n"
    "  --agent NAME       the events' \"agent\" field (default: this host's name)\n"
    "  -j, --jobs N       parser threads (default: the number of CPUs)\n"
    "  --no-progress      no progress line, even on a terminal\n"
    "  --strict           exit 1 when any EPU file could not be parsed\n"
    "  -q, --quiet        no summary\n"
    "  -h, --help         show this help\n"
    "\n"
    "Exit status: 0 scanned; 1 with --strict, some files failed; 2 usage error, DIR is\n"
    "not a directory, or the output could not be written.\n";

/* Through the log, so that --log-format json gets JSON lines; shown unless -q, whatever
 * the level. */
static void print_summary(const char *dir, const struct scan_summary *s)
{
    uint64_t total = 0;
    for (int i = 0; i < 5; i++)
        total += s->events[i];
    em_log_write(EM_LOG_INFO,
                 "scan %s: %llu sessions, %llu atlases, %llu grid squares, %llu foil "
                 "holes, %llu micrographs (%llu events) from %zu EPU files (%.1f MB) in %.2f s",
                 dir, (unsigned long long)s->events[0], (unsigned long long)s->events[1],
                 (unsigned long long)s->events[2], (unsigned long long)s->events[3],
                 (unsigned long long)s->events[4], (unsigned long long)total, s->files_parsed,
                 (double)s->bytes / 1e6, s->seconds);
    if (s->files_failed)
        em_log_write(EM_LOG_INFO, "scan: %zu EPU files could not be parsed (see warnings)",
                     s->files_failed);
    if (s->files_skipped)
        em_log_write(EM_LOG_INFO,
                     "scan: %zu EPU files in %zu session directories without a usable "
                     "EpuSession.dm were not emitted",
                     s->files_skipped, s->sessions_skipped);
    if (s->unplaced)
        em_log_write(EM_LOG_INFO, "scan: %zu EPU-named files outside a session layout ignored",
                     s->unplaced);
}

int cmd_scan(int argc, char **argv)
{
    struct scan_options opt = {.progress = true, .out = stdout};
    const char *out_path = NULL, *dir = NULL;
    char host[256];
    bool strict = false, quiet = false;
    opt.threads = uv_available_parallelism();
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if (cli_is_help(a)) {
            fputs(scan_usage, stdout);
            return EXIT_OK;
        } else if ((strcmp(a, "-o") == 0 || strcmp(a, "--out") == 0) && has_value) {
            out_path = argv[++i];
        } else if (strcmp(a, "--agent") == 0 && has_value) {
            opt.agent = argv[++i];
        } else if ((strcmp(a, "-j") == 0 || strcmp(a, "--jobs") == 0) && has_value) {
            if (!cli_parse_jobs("scan", argv[++i], &opt.threads))
                return EXIT_USAGE;
        } else if (strcmp(a, "--no-progress") == 0) {
            opt.progress = false;
        } else if (strcmp(a, "--strict") == 0) {
            strict = true;
        } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            quiet = true;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "em-agent scan: unknown option or missing value '%s'\n%s", a,
                    scan_usage);
            return EXIT_USAGE;
        } else if (!dir) {
            dir = a;
        } else {
            fprintf(stderr, "em-agent scan: one DIR only\n%s", scan_usage);
            return EXIT_USAGE;
        }
    }
    if (!dir) {
        fprintf(stderr, "em-agent scan: expected DIR\n%s", scan_usage);
        return EXIT_USAGE;
    }
    opt.dir = dir;
    if (!opt.agent) {
        event_default_agent(host, sizeof(host));
        opt.agent = host;
    }
    opt.progress = opt.progress && !quiet && uv_guess_handle(2) == UV_TTY;
    FILE *out = stdout;
    if (out_path && !(out = fopen(out_path, "w"))) {
        fprintf(stderr, "em-agent: %s: cannot open for writing\n", out_path);
        return EXIT_USAGE;
    }
    static char outbuf[1 << 16];
    setvbuf(out, outbuf, _IOFBF, sizeof(outbuf));
    opt.out = out;
    struct scan_summary sum;
    int rc = scan_run(&opt, &sum);
    if (out != stdout && fclose(out) != 0 && rc == 0)
        rc = -EM_EIO;
    if (rc == -EM_ENOENT) {
        fprintf(stderr, "em-agent: %s: not a directory\n", dir);
        return EXIT_USAGE;
    }
    if (rc < 0) {
        fprintf(stderr, "em-agent: scan %s: %s\n", dir, em_strerror(rc));
        return EXIT_USAGE;
    }
    if (!quiet)
        print_summary(dir, &sum);
    return strict && sum.files_failed ? EXIT_BAD_INPUT : EXIT_OK;
}
