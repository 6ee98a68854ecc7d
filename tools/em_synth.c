/* em-synth: writes a synthetic EPU visit (DESIGN §3-4, README "em-synth").
 *
 * The visit has an atlas per grid, several session directories (the last ones aborted,
 * with images but no EpuSession.dm), grid squares, foil holes and exposures, written in
 * EPU's order and manner: the atlas first; per session its EpuSession.dm and a small
 * Metadata/GridSquare_<id>.dm for every square; then per imaged square the square image,
 * and per hole its FoilHoles image, its exposures' Data manifests and then the square's
 * .dm rewritten with the hole's entry (so images come before their .dm entries and the
 * .dm grows); EpuSession.dm is rewritten as each square completes. Files are written in
 * pieces (a reader can see them half-written); a rewrite truncates first.
 *
 * The XML comes from templates (tools/templates, built in) with {{name}} values and
 * {{#list}}...{{/list}} repeated sections; .dm templates are joined into one line as
 * EPU writes them. --templates DIR replaces any of them; a real EPU image manifest
 * (no {{ }}) is used as it is, with a new uniqueID and acquisitionDateTime each time.
 *
 * Output goes to a directory, paced with --rate or as fast as possible, or with --record
 * straight into an fsrecorder recording with the same operations and timing.
 */
#include "synth_int.h"

#include "emopt.h"

void failf(struct synth *s, const char *fmt, ...)
{
    if (s->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof(s->err), fmt, ap);
    va_end(ap);
    s->failed = true;
}

static const char synth_usage[] =
    "usage: em-synth [OPTIONS] OUT_DIR\n"
    "       em-synth [OPTIONS] --record REC.tar.zst\n"
    "\n"
    "Writes a synthetic EPU visit: an atlas per grid, session directories with\n"
    "EpuSession.dm, Metadata/GridSquare_*.dm, square, foil-hole and exposure images,\n"
    "in EPU's order and write patterns.\n"
    "\n"
    "  --sessions N     complete sessions (grids) (default 2)\n"
    "  --aborted N      aborted sessions: images but no EpuSession.dm (default 1)\n"
    "  --squares N      imaged squares per session (default 3)\n"
    "  --unimaged N     further squares listed but never imaged (default 2)\n"
    "  --holes N        foil holes per imaged square (default 4)\n"
    "  --mics N         micrographs (exposures) per hole (default 2)\n"
    "  --dm-every N     rewrite a square's .dm after every N holes (default 1)\n"
    "  --rate R         pace like a microscope: R exposures per second (default: as\n"
    "                   fast as possible; in a recording the clock runs at 10/s)\n"
    "  --record REC     write an fsrecorder recording (.tar, .tar.gz, .tar.zst) instead\n"
    "  --templates DIR  take any of session.dm atlas.dm gridsquare.dm gridsquare.xml\n"
    "                   foilhole.xml micrograph.xml from DIR (real image manifests work)\n"
    "  --no-images      leave out the .jpg images\n"
    "  --seed N         ids, uuids and positions are reproducible from N (default 1)\n"
    "  --expected FILE  write the entity counts em-agent must find, as JSON\n"
    "  -q, --quiet      no progress or summary\n"
    "  -v, --log-format text|json, --version, -h/--help (or `em-synth help`)\n"
    "\n"
    "A visit of 200 squares x 50 holes x 5 micrographs is 50,000 micrographs.\n"
    "exit status: 0 success, 1 failure, 2 usage error\n";

static int usage(const char *msg)
{
    if (msg) {
        fprintf(stderr, "em-synth: %s (see 'em-synth --help')\n", msg);
        return 2;
    }
    fputs(synth_usage, stdout);
    return 0;
}

static void free_synth(struct synth *s)
{
    for (int k = 0; k < s->nsessions; k++) {
        struct session *cs = &s->sessions[k];
        for (int j = 0; j < cs->nsquares; j++) {
            struct square *sq = &cs->squares[j];
            for (int h = 0; h < sq->nholes; h++) {
                for (int m = 0; m < sq->holes[h].nexp; m++)
                    free(sq->holes[h].base_names[m]);
                free(sq->holes[h].base_names);
                free(sq->holes[h].exp_ids);
            }
            free(sq->holes);
        }
        free(cs->squares);
    }
    free(s->sessions);
    for (int k = 0; k < T_COUNT; k++)
        free(s->tm[k].text);
    for (size_t i = 0; i < s->dirs.cap; i++)
        if (s->dirs.e[i].key)
            free(s->dirs.e[i].v.p);
    hmap_free(&s->dirs);
    hmap_free(&s->written);
    dynbuf_free(&s->out);
}

/* The numbers first, in the order of their limits in main(). */
enum {
    Y_SESSIONS,
    Y_ABORTED,
    Y_SQUARES,
    Y_UNIMAGED,
    Y_HOLES,
    Y_MICS,
    Y_DM_EVERY,
    Y_SEED,
    Y_RATE,
    Y_RECORD,
    Y_TEMPLATES,
    Y_EXPECTED,
    Y_NO_IMAGES,
    Y_COUNT
};
static const struct emopt_spec synth_opts[Y_COUNT] = {
    [Y_SESSIONS] = {"sessions", 0, EMOPT_VALUE, false, false, NULL},
    [Y_ABORTED] = {"aborted", 0, EMOPT_VALUE, false, false, NULL},
    [Y_SQUARES] = {"squares", 0, EMOPT_VALUE, false, false, NULL},
    [Y_UNIMAGED] = {"unimaged", 0, EMOPT_VALUE, false, false, NULL},
    [Y_HOLES] = {"holes", 0, EMOPT_VALUE, false, false, NULL},
    [Y_MICS] = {"mics", 0, EMOPT_VALUE, false, false, NULL},
    [Y_DM_EVERY] = {"dm-every", 0, EMOPT_VALUE, false, false, NULL},
    [Y_SEED] = {"seed", 0, EMOPT_VALUE, false, false, NULL},
    [Y_RATE] = {"rate", 0, EMOPT_VALUE, false, false, NULL},
    [Y_RECORD] = {"record", 0, EMOPT_VALUE, false, false, NULL},
    [Y_TEMPLATES] = {"templates", 0, EMOPT_VALUE, false, false, NULL},
    [Y_EXPECTED] = {"expected", 0, EMOPT_VALUE, false, false, NULL},
    [Y_NO_IMAGES] = {"no-images", 0, EMOPT_FLAG, false, false, NULL},
};

int main(int argc, char **argv)
{
    int early = cli_globals("em-synth", EM_VERSION, &argc, argv);
    if (early >= 0)
        return early;
    if (argc == 2 && strcmp(argv[1], "help") == 0)
        return usage(NULL);
    struct synth *s = calloc(1, sizeof(*s));
    if (!s)
        return 1;
    struct options *o = &s->o;
    *o = (struct options){.sessions = 2,
                          .aborted = 1,
                          .squares = 3,
                          .unimaged = 2,
                          .holes = 4,
                          .mics = 2,
                          .dm_every = 1,
                          .seed = 1,
                          .quiet = cli_quiet,
                          .images = true};
    int rc = 2;
    struct emopt eo;
    if (emopt_init(&eo, "em-synth", NULL, synth_usage, NULL, synth_opts, Y_COUNT) < 0) {
        free(s);
        return 1;
    }
    rc = emopt_argv(&eo, argc - 1, argv + 1);
    if (rc >= 0)
        goto out;
    rc = 2;
    long v[Y_SEED + 1] = {0};
    static const long lim[Y_SEED + 1][2] = {
        [Y_SESSIONS] = {0, 99},   [Y_ABORTED] = {0, 99},      [Y_SQUARES] = {0, 5000},
        [Y_UNIMAGED] = {0, 5000}, [Y_HOLES] = {1, 2000},      [Y_MICS] = {1, 100},
        [Y_DM_EVERY] = {1, 2000}, [Y_SEED] = {0, 2147483647},
    };
    for (int i = 0; i <= Y_SEED; i++)
        if (!emopt_long(&eo, i, lim[i][0], lim[i][1], &v[i]))
            goto out;
    int *const dst[Y_SEED] = {
        [Y_SESSIONS] = &o->sessions, [Y_ABORTED] = &o->aborted, [Y_SQUARES] = &o->squares,
        [Y_UNIMAGED] = &o->unimaged, [Y_HOLES] = &o->holes,     [Y_MICS] = &o->mics,
        [Y_DM_EVERY] = &o->dm_every};
    for (int i = 0; i < Y_SEED; i++)
        if (emopt_get(&eo, i))
            *dst[i] = (int)v[i];
    if (emopt_get(&eo, Y_SEED))
        o->seed = (uint64_t)v[Y_SEED];
    if (!emopt_positive(&eo, Y_RATE, &o->rate))
        goto out;
    o->record = emopt_get(&eo, Y_RECORD);
    o->templates = emopt_get(&eo, Y_TEMPLATES);
    o->expected = emopt_get(&eo, Y_EXPECTED);
    o->images = !emopt_yes(&eo, Y_NO_IMAGES);
    size_t nargs;
    char *const *args = emopt_args(&eo, &nargs);
    if (nargs > 1) {
        rc = usage("one output directory");
        goto out;
    }
    o->out = nargs ? args[0] : NULL;
    if (!o->out == !o->record) {
        rc = usage("give an output directory or --record REC");
        goto out;
    }
    rc = 1;
    s->rng = o->seed;
    dynbuf_init(&s->out, 1u << 30);
    s->clock = 1740816000; /* 2025-03-01T08:00:00Z */
    progress_init(&s->prog, o->quiet);
    if (load_templates(s) < 0)
        goto report;
    plan(s);
    if (s->failed)
        goto report;
    if (o->record) {
        enum rec_compression comp;
        if (rec_compression_for(o->record, &comp) < 0) {
            rc = usage("--record: the name must end in .tar, .tar.gz, .tgz, .tar.zst or .tzst");
            goto out;
        }
        char part[REC_MAX_PATH + 8];
        snprintf(part, sizeof(part), "%s.part", o->record);
        struct rec_header h = {.source = "em-synth",
                               .mode = "synth",
                               .placeholders = FSREC_DEFAULT_PLACEHOLDERS,
                               .tool = "em-synth " EM_VERSION};
        if (rec_writer_open(part, &h, false, &s->wr, s->err, sizeof(s->err)) < 0) {
            s->failed = true;
            goto report;
        }
        write_visit(s);
        int crc = rec_writer_close(s->wr, s->t, s->err, sizeof(s->err));
        s->wr = NULL;
        if (crc < 0)
            s->failed = true;
        else if (!s->failed && comp == REC_PLAIN && rename(part, o->record) < 0)
            failf(s, "%s: %s", o->record, cli_strerror(errno));
        else if (!s->failed && comp != REC_PLAIN) {
            if (rec_pack(part, o->record, comp, s->err, sizeof(s->err)) < 0)
                s->failed = true;
            remove(part);
        }
    } else {
        struct fsio_stat st;
        struct fsio_entry *ents;
        size_t count = 0;
        if (fsio_stat(o->out, &st) == 0 && fsio_list(o->out, &ents, &count) == 0) {
            fsio_entries_free(ents, count);
            if (count) {
                fprintf(stderr, "em-synth: %s is not empty; give a new or empty directory\n",
                        o->out);
                goto out;
            }
        }
        uv_fs_t req;
        int mrc = uv_fs_mkdir(NULL, &req, o->out, 0755, NULL);
        uv_fs_req_cleanup(&req);
        if (mrc < 0 && mrc != UV_EEXIST) {
            failf(s, "%s: cannot create: %s", o->out, uv_strerror(mrc));
            goto report;
        }
        s->start_ns = uv_hrtime();
        write_visit(s);
    }
    progress_done(&s->prog);
report:
    if (s->failed) {
        fprintf(stderr, "em-synth: %s\n", s->err);
        goto out;
    }
    /* As tests/e2e/fold.py counts prints them: keys sorted, types without entities left out
     * (only aborted_session can be 0 here). */
    char counts[320], aborted[64] = "";
    if (s->counts[5])
        snprintf(aborted, sizeof(aborted), "\"aborted_session\": %" PRIu64 ", ", s->counts[5]);
    snprintf(counts, sizeof(counts),
             "{%s\"atlas\": %" PRIu64 ", \"foilhole\": %" PRIu64 ", \"gridsquare\": %" PRIu64
             ", \"micrograph\": %" PRIu64 ", \"session\": %" PRIu64 "}",
             aborted, s->counts[0], s->counts[3], s->counts[2], s->counts[4], s->counts[1]);
    if (o->expected) {
        FILE *f = fopen(o->expected, "w");
        if (!f || fprintf(f, "%s\n", counts) < 0 || fclose(f) != 0) {
            fprintf(stderr, "em-synth: %s: %s\n", o->expected, cli_strerror(errno));
            goto out;
        }
    }
    if (!o->quiet)
        fprintf(stderr, "em-synth: %" PRIu64 " writes (%.1f MB of XML) to %s: %s\n", s->files,
                (double)s->bytes / 1e6, o->record ? o->record : o->out, counts);
    rc = 0;
out:
    emopt_free(&eo);
    free_synth(s);
    free(s);
    return rc;
}
