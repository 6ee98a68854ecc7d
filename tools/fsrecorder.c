/* fsrecorder: records what a writer does to a directory tree and replays it exactly
 * (DESIGN §9, README "fsrecorder"). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsrec.h"
#include "cli_common.h"
#include "log.h"

static const char usage_text[] =
    "usage: fsrecorder COMMAND [OPTIONS] ARGS\n"
    "\n"
    "  record DIR OUT        record DIR, then every change in it until Ctrl-C/SIGTERM\n"
    "  record --snapshot DIR OUT   record a finished tree in acquisition (mtime) order\n"
    "  replay REC DIR        write the recording into DIR with its timing\n"
    "  verify REC DIR        check DIR against the recording's final state (-q: only\n"
    "                        differences; --json: the counts as one JSON object)\n"
    "  info REC              what a recording holds\n"
    "  pack IN OUT           copy a recording with other compression (e.g. a .part left\n"
    "                        by a recorder that was killed)\n"
    "\n"
    "record options:\n"
    "  --placeholders LIST   suffixes stored as size only (default " FSREC_DEFAULT_PLACEHOLDERS
    ";\n"
    "                        'none' keeps everything)\n"
    "  --duration S          stop by itself after S seconds\n"
    "  --sample-ms N         how often a file being written is looked at (default 25)\n"
    "  --chunks N            --snapshot: write each file in N pieces, as a writer would\n"
    "  --chunk-gap S         --snapshot: seconds between pieces (default 0.01)\n"
    "  -q, --quiet           no progress or summary\n"
    "  OUT ends in .tar, .tar.gz/.tgz or .tar.zst/.tzst; while recording the archive grows\n"
    "  as OUT.part (plain tar, readable at any moment), packed into OUT at the end.\n"
    "\n"
    "replay options (default: real time, gaps capped at 1 s):\n"
    "  --speed X             X times faster than recorded\n"
    "  --max-gap S           cap each wait at S seconds\n"
    "  --exact               real time with no cap\n"
    "  --burst               no waiting at all\n"
    "  --force               write into a directory that is not empty\n"
    "  --no-verify           skip the comparison with the recording afterwards\n"
    "  -q, --quiet           no progress or summary\n"
    "\n"
    "info options: --json (machine-readable), --ops (list every operation)\n"
    "\n"
    "global options (before or after the command): -v, -q, --log-format text|json,\n"
    "--version, -h; `fsrecorder help COMMAND` shows this help\n"
    "\n"
    "exit status: 0 success, 1 failure (the reason on stderr), 2 usage error\n";

static int usage(const char *msg)
{
    if (msg)
        fprintf(stderr, "fsrecorder: %s (see 'fsrecorder --help')\n", msg);
    else
        fputs(usage_text, stderr);
    return 2;
}

static int number(const char *opt, const char *s, double min, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < min) {
        fprintf(stderr, "fsrecorder: %s: '%s' is not a number >= %g\n", opt, s, min);
        return -1;
    }
    *out = v;
    return 0;
}

static int cmd_record(int argc, char **argv)
{
    struct record_options o = {
        .placeholders = FSREC_DEFAULT_PLACEHOLDERS, .chunk_gap = 0.01, .quiet = cli_quiet};
    const char *pos[2];
    int npos = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        double v;
        bool has = i + 1 < argc;
        if (strcmp(a, "--snapshot") == 0) {
            o.snapshot = true;
        } else if ((strcmp(a, "-q") == 0) || strcmp(a, "--quiet") == 0) {
            o.quiet = true;
        } else if (strcmp(a, "--placeholders") == 0 && has) {
            o.placeholders = argv[++i];
        } else if (strcmp(a, "--duration") == 0 && has) {
            if (number(a, argv[++i], 0, &o.duration) < 0)
                return 2;
        } else if (strcmp(a, "--sample-ms") == 0 && has) {
            if (number(a, argv[++i], 1, &v) < 0 || v > 60000)
                return usage("--sample-ms takes 1 to 60000");
            o.sample_ms = (unsigned)v;
        } else if (strcmp(a, "--chunks") == 0 && has) {
            if (number(a, argv[++i], 1, &v) < 0 || v > 1e6)
                return usage("--chunks takes 1 to 1000000");
            o.chunks = (unsigned)v;
        } else if (strcmp(a, "--chunk-gap") == 0 && has) {
            if (number(a, argv[++i], 0, &o.chunk_gap) < 0)
                return 2;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr,
                    "fsrecorder: record: %s: unknown option or missing value (see 'fsrecorder "
                    "--help')\n",
                    a);
            return 2;
        } else if (npos < 2) {
            pos[npos++] = a;
        } else {
            return usage("record takes DIR and OUT");
        }
    }
    if (npos != 2)
        return usage("record takes DIR and OUT");
    if ((o.chunks > 1) && !o.snapshot)
        return usage("--chunks only applies to --snapshot");
    o.dir = pos[0];
    o.out = pos[1];
    return fsrec_record(&o);
}

static int cmd_replay(int argc, char **argv)
{
    struct replay_options o = {.speed = 1, .max_gap = 1, .verify = true, .quiet = cli_quiet};
    const char *pos[2];
    int npos = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (strcmp(a, "--speed") == 0 && has) {
            if (number(a, argv[++i], 1e-6, &o.speed) < 0)
                return 2;
        } else if (strcmp(a, "--max-gap") == 0 && has) {
            if (number(a, argv[++i], 0, &o.max_gap) < 0)
                return 2;
        } else if (strcmp(a, "--exact") == 0) {
            o.speed = 1;
            o.max_gap = -1;
        } else if (strcmp(a, "--burst") == 0) {
            o.burst = true;
        } else if (strcmp(a, "--force") == 0) {
            o.force = true;
        } else if (strcmp(a, "--no-verify") == 0) {
            o.verify = false;
        } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            o.quiet = true;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr,
                    "fsrecorder: replay: %s: unknown option or missing value (see 'fsrecorder "
                    "--help')\n",
                    a);
            return 2;
        } else if (npos < 2) {
            pos[npos++] = a;
        } else {
            return usage("replay takes REC and DIR");
        }
    }
    if (npos != 2)
        return usage("replay takes REC and DIR");
    o.rec = pos[0];
    o.dir = pos[1];
    return fsrec_replay(&o);
}

int main(int argc, char **argv)
{
    int early = cli_globals("fsrecorder", EM_VERSION, &argc, argv);
    if (early >= 0)
        return early;
    if (argc < 2)
        return usage("which command? (record, replay, verify, info, pack)");
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_text, stdout);
            return 0;
        }
    if (strcmp(cmd, "record") == 0)
        return cmd_record(argc - 2, argv + 2);
    if (strcmp(cmd, "replay") == 0)
        return cmd_replay(argc - 2, argv + 2);
    if (strcmp(cmd, "verify") == 0) {
        bool json = false;
        const char *pos[2];
        int npos = 0;
        for (int i = 2; i < argc; i++) {
            if (strcmp(argv[i], "--json") == 0)
                json = true;
            else if (argv[i][0] != '-' && npos < 2)
                pos[npos++] = argv[i];
            else
                return usage("verify takes [-q] [--json] REC DIR");
        }
        if (npos != 2)
            return usage("verify takes [-q] [--json] REC DIR");
        return fsrec_verify(pos[0], pos[1], cli_quiet, json);
    }
    if (strcmp(cmd, "info") == 0) {
        bool json = false, ops = false;
        const char *rec = NULL;
        for (int i = 2; i < argc; i++) {
            if (strcmp(argv[i], "--json") == 0)
                json = true;
            else if (strcmp(argv[i], "--ops") == 0)
                ops = true;
            else if (!rec && argv[i][0] != '-')
                rec = argv[i];
            else
                return usage("info takes [--json] [--ops] REC");
        }
        if (!rec)
            return usage("info takes REC");
        return fsrec_info(rec, json, ops);
    }
    if (strcmp(cmd, "pack") == 0) {
        if (argc != 4)
            return usage("pack takes IN and OUT");
        return fsrec_pack(argv[2], argv[3]);
    }
    fprintf(stderr, "fsrecorder: %s: unknown command (see 'fsrecorder --help')\n", cmd);
    return 2;
}
