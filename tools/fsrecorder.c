/* fsrecorder: records what a writer does to a directory tree and replays it exactly
 * (DESIGN §9, README "fsrecorder"). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsrec.h"
#include "cli_common.h"
#include "emopt.h"
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

enum { R_SNAPSHOT, R_PLACEHOLDERS, R_DURATION, R_SAMPLE_MS, R_CHUNKS, R_CHUNK_GAP, R_COUNT };
static const struct emopt_spec record_opts[R_COUNT] = {
    [R_SNAPSHOT] = {"snapshot", 0, EMOPT_FLAG, false, false, NULL},
    [R_PLACEHOLDERS] = {"placeholders", 0, EMOPT_VALUE, false, false, NULL},
    [R_DURATION] = {"duration", 0, EMOPT_VALUE, false, false, NULL},
    [R_SAMPLE_MS] = {"sample-ms", 0, EMOPT_VALUE, false, false, NULL},
    [R_CHUNKS] = {"chunks", 0, EMOPT_VALUE, false, false, NULL},
    [R_CHUNK_GAP] = {"chunk-gap", 0, EMOPT_VALUE, false, false, NULL},
};

static int record_main(const struct emopt *eo)
{
    struct record_options o = {
        .placeholders = FSREC_DEFAULT_PLACEHOLDERS, .chunk_gap = 0.01, .quiet = cli_quiet};
    long sample_ms = 0, chunks = 0;
    if (!emopt_seconds(eo, R_DURATION, 0, 1e9, &o.duration) ||
        !emopt_long(eo, R_SAMPLE_MS, 1, 60000, &sample_ms) ||
        !emopt_long(eo, R_CHUNKS, 1, 1000000, &chunks) ||
        !emopt_seconds(eo, R_CHUNK_GAP, 0, 86400, &o.chunk_gap))
        return 2;
    o.sample_ms = (unsigned)sample_ms;
    o.chunks = (unsigned)chunks;
    o.snapshot = emopt_yes(eo, R_SNAPSHOT);
    if (emopt_get(eo, R_PLACEHOLDERS))
        o.placeholders = emopt_get(eo, R_PLACEHOLDERS);
    size_t n;
    char *const *pos = emopt_args(eo, &n);
    if (n != 2)
        return usage("record takes DIR and OUT");
    if ((o.chunks > 1) && !o.snapshot)
        return usage("--chunks only applies to --snapshot");
    o.dir = pos[0];
    o.out = pos[1];
    return fsrec_record(&o);
}

enum { P_SPEED, P_MAX_GAP, P_EXACT, P_BURST, P_FORCE, P_NO_VERIFY, P_COUNT };
static const struct emopt_spec replay_opts[P_COUNT] = {
    [P_SPEED] = {"speed", 0, EMOPT_VALUE, false, false, NULL},
    [P_MAX_GAP] = {"max-gap", 0, EMOPT_VALUE, false, false, NULL},
    [P_EXACT] = {"exact", 0, EMOPT_FLAG, false, false, NULL},
    [P_BURST] = {"burst", 0, EMOPT_FLAG, false, false, NULL},
    [P_FORCE] = {"force", 0, EMOPT_FLAG, false, false, NULL},
    [P_NO_VERIFY] = {"no-verify", 0, EMOPT_FLAG, false, false, NULL},
};

static int replay_main(const struct emopt *eo)
{
    struct replay_options o = {.speed = 1, .max_gap = 1, .verify = true, .quiet = cli_quiet};
    if (!emopt_positive(eo, P_SPEED, &o.speed) ||
        !emopt_seconds(eo, P_MAX_GAP, 0, 86400, &o.max_gap))
        return 2;
    if (emopt_yes(eo, P_EXACT)) {
        if (emopt_get(eo, P_SPEED) || emopt_get(eo, P_MAX_GAP))
            return usage("--exact is real time with no cap: not with --speed or --max-gap");
        o.speed = 1;
        o.max_gap = -1;
    }
    o.burst = emopt_yes(eo, P_BURST);
    o.force = emopt_yes(eo, P_FORCE);
    o.verify = !emopt_yes(eo, P_NO_VERIFY);
    size_t n;
    char *const *pos = emopt_args(eo, &n);
    if (n != 2)
        return usage("replay takes REC and DIR");
    o.rec = pos[0];
    o.dir = pos[1];
    return fsrec_replay(&o);
}

enum { F_JSON, F_OPS, F_COUNT };
static const struct emopt_spec verify_opts[] = {
    [F_JSON] = {"json", 0, EMOPT_FLAG, false, false, NULL},
};
static const struct emopt_spec info_opts[F_COUNT] = {
    [F_JSON] = {"json", 0, EMOPT_FLAG, false, false, NULL},
    [F_OPS] = {"ops", 0, EMOPT_FLAG, false, false, NULL},
};

static int verify_main(const struct emopt *eo)
{
    size_t n;
    char *const *pos = emopt_args(eo, &n);
    if (n != 2)
        return usage("verify takes [-q] [--json] REC DIR");
    return fsrec_verify(pos[0], pos[1], cli_quiet, emopt_yes(eo, F_JSON));
}

static int info_main(const struct emopt *eo)
{
    size_t n;
    char *const *pos = emopt_args(eo, &n);
    if (n != 1)
        return usage("info takes [--json] [--ops] REC");
    return fsrec_info(pos[0], emopt_yes(eo, F_JSON), emopt_yes(eo, F_OPS));
}

static int pack_main(const struct emopt *eo)
{
    size_t n;
    char *const *pos = emopt_args(eo, &n);
    if (n != 2)
        return usage("pack takes IN and OUT");
    return fsrec_pack(pos[0], pos[1]);
}

static const struct {
    const char *name;
    const struct emopt_spec *spec;
    int nspec;
    int (*run)(const struct emopt *);
} commands[] = {
    {"record", record_opts, R_COUNT, record_main},
    {"replay", replay_opts, P_COUNT, replay_main},
    {"verify", verify_opts, 1, verify_main},
    {"info", info_opts, F_COUNT, info_main},
    {"pack", NULL, 0, pack_main},
};

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
    for (size_t c = 0; c < sizeof(commands) / sizeof(commands[0]); c++) {
        if (strcmp(cmd, commands[c].name) != 0)
            continue;
        struct emopt_command ec = {
            "fsrecorder",   cmd, usage_text, NULL, commands[c].spec, commands[c].nspec,
            commands[c].run};
        return emopt_run(&ec, argc - 2, argv + 2);
    }
    fprintf(stderr, "fsrecorder: %s: unknown command (see 'fsrecorder --help')\n", cmd);
    return 2;
}
