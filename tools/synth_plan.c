/* em-synth: the plan of the visit and the order EPU writes it in. */
#include "synth_int.h"

/* ---- the visit ---- */

static void write_kind(struct synth *s, enum tkind k, const char *rel, int pieces)
{
    if (s->failed || render_kind(s, k) < 0)
        return;
    sink_file(s, rel, s->out.p, s->out.len, pieces);
}

void plan(struct synth *s)
{
    const struct options *o = &s->o;
    s->nsessions = o->sessions + o->aborted;
    s->sessions = calloc((size_t)s->nsessions, sizeof(*s->sessions));
    if (!s->sessions) {
        failf(s, "out of memory");
        return;
    }
    s->next_id = 5000000;
    char when[32];
    name_time(s->clock, when, sizeof(when));
    snprintf(s->atlas_run, sizeof(s->atlas_run), "atlas/Supervisor_%s_synth_Atlas", when);
    /* Each session starts after the previous one's acquisition time. */
    int64_t per_square = 20 + (int64_t)o->holes * (5 + 3 * (int64_t)o->mics);
    int64_t sclock = s->clock + 120 * (o->sessions + o->aborted) + 600;
    for (int k = 0; k < s->nsessions && !s->failed; k++) {
        struct session *cs = &s->sessions[k];
        cs->index = k;
        cs->aborted = k >= o->sessions;
        cs->start = sclock;
        sclock += 600 + per_square * (k >= o->sessions ? 1 : o->squares);
        name_time(cs->start, when, sizeof(when));
        snprintf(cs->dir, sizeof(cs->dir), "Supervisor_%s_%d_grid%d%s", when, k + 1, k + 1,
                 cs->aborted ? "_aborted" : "_EPU");
        cs->session_id = s->next_id++;
        cs->sample_id = s->next_id++;
        cs->folder_id = s->next_id++;
        /* An aborted grid got as far as one square with one hole. */
        int imaged = cs->aborted ? 1 : o->squares;
        cs->nsquares = cs->aborted ? 1 : o->squares + o->unimaged;
        cs->atlas_id = s->next_id;
        s->next_id += 1 + (cs->nsquares + 15) / 16; /* the atlas and its tiles */
        snprintf(cs->atlas_rel, sizeof(cs->atlas_rel), "%s/Sample%d/Atlas/Atlas.dm", s->atlas_run,
                 k + 1);
        cs->squares = calloc((size_t)cs->nsquares, sizeof(*cs->squares));
        if (!cs->squares) {
            failf(s, "out of memory");
            return;
        }
        for (int j = 0; j < cs->nsquares; j++) {
            struct square *sq = &cs->squares[j];
            sq->gs_id = s->next_id++;
            sq->imaged = j < imaged;
            sq->disc = j % 5 == 4 ? 2 : 1; /* some squares on a second disc */
            sq->x = (uniform(s) - 0.5) * 1e-3;
            sq->y = (uniform(s) - 0.5) * 1e-3;
            if (!sq->imaged)
                continue;
            sq->nholes = cs->aborted ? 1 : o->holes;
            sq->holes = calloc((size_t)sq->nholes, sizeof(*sq->holes));
            if (!sq->holes) {
                failf(s, "out of memory");
                return;
            }
            for (int h = 0; h < sq->nholes; h++) {
                struct hole *hl = &sq->holes[h];
                hl->fh_id = s->next_id++;
                hl->nexp = cs->aborted ? 1 : o->mics;
                hl->exp_ids = calloc((size_t)hl->nexp + 1, sizeof(*hl->exp_ids));
                hl->base_names = calloc((size_t)hl->nexp + 1, sizeof(*hl->base_names));
                if (!hl->exp_ids || !hl->base_names) {
                    failf(s, "out of memory");
                    return;
                }
                for (int m = 0; m < hl->nexp; m++)
                    hl->exp_ids[m] = s->next_id++;
                s->mics_total += (uint64_t)hl->nexp;
            }
        }
        if (cs->aborted)
            s->counts[5]++; /* it has a square: em-agent lists the directory as aborted */
        if (!cs->aborted) {
            s->counts[1]++;
            s->counts[2] += (uint64_t)cs->nsquares;
            s->counts[3] += (uint64_t)o->squares * (uint64_t)o->holes;
            s->counts[4] += (uint64_t)o->squares * (uint64_t)o->holes * (uint64_t)o->mics;
        }
        s->counts[0]++;
    }
}

static void write_square(struct synth *s, struct session *cs, struct square *sq)
{
    char rel[REC_MAX_PATH], when[32];
    char sqdir[512];
    snprintf(sqdir, sizeof(sqdir), "%s/Images-Disc%d/GridSquare_%" PRId64, cs->dir, sq->disc,
             sq->gs_id);
    char dm[512];
    snprintf(dm, sizeof(dm), "%s/Metadata/GridSquare_%" PRId64 ".dm", cs->dir, sq->gs_id);
    s->csq = sq;
    s->hole = -1;
    s->exp = -1;
    /* The square image at square magnification. */
    s->clock += 20;
    new_uuid(s);
    name_time(s->clock, when, sizeof(when));
    snprintf(rel, sizeof(rel), "%s/GridSquare_%s.xml", sqdir, when);
    write_kind(s, T_SQUARE_IMG, rel, 2);
    snprintf(rel, sizeof(rel), "%s/GridSquare_%s.jpg", sqdir, when);
    sink_image(s, rel, 4096);
    int every = s->o.dm_every > 0 ? s->o.dm_every : 1;
    for (int h = 0; h < sq->nholes && !s->failed; h++) {
        struct hole *hl = &sq->holes[h];
        s->hole = -1;
        s->clock += 5;
        new_uuid(s);
        name_time(s->clock, when, sizeof(when));
        snprintf(rel, sizeof(rel), "%s/FoilHoles/FoilHole_%" PRId64 "_%s.xml", sqdir, hl->fh_id,
                 when);
        s->hole = h;
        write_kind(s, T_HOLE_IMG, rel, 2);
        snprintf(rel, sizeof(rel), "%s/FoilHoles/FoilHole_%" PRId64 "_%s.jpg", sqdir, hl->fh_id,
                 when);
        sink_image(s, rel, 2048);
        for (int m = 0; m < hl->nexp && !s->failed; m++) {
            s->clock += 3;
            name_time(s->clock, when, sizeof(when));
            char base[128];
            snprintf(base, sizeof(base), "FoilHole_%" PRId64 "_Data_%d_%d_%s", hl->fh_id,
                     4001 + m % 4, m + 1, when);
            hl->base_names[m] = strdup(base);
            if (!hl->base_names[m]) {
                failf(s, "out of memory");
                return;
            }
            new_uuid(s);
            s->exp = m;
            snprintf(rel, sizeof(rel), "%s/Data/%s.xml", sqdir, base);
            write_kind(s, T_MIC, rel, 2);
            snprintf(rel, sizeof(rel), "%s/Data/%s.jpg", sqdir, base);
            sink_image(s, rel, 3072);
            s->mics_done++;
            sink_wait(s, s->o.rate > 0 ? 1.0 / s->o.rate : 0.1);
            char detail[96];
            snprintf(detail, sizeof(detail), "%" PRIu64 "/%" PRIu64 " micrographs", s->mics_done,
                     s->mics_total);
            progress_show(&s->prog, "em-synth", s->mics_done, s->mics_total, detail, false);
        }
        s->exp = -1;
        /* The hole's entry reaches the square's .dm after its images: rewritten, larger. */
        if ((h + 1) % every == 0 || h + 1 == sq->nholes) {
            sq->holes_in_dm = h + 1;
            s->hole = -1;
            write_kind(s, T_SQUARE_DM, dm, 3);
        }
    }
    s->csq = NULL;
}

void write_visit(struct synth *s)
{
    /* The atlas of every grid in the cassette comes first. */
    for (int k = 0; k < s->nsessions && !s->failed; k++) {
        struct session *cs = &s->sessions[k];
        s->cs = cs;
        s->clock += 120;
        write_kind(s, T_ATLAS, cs->atlas_rel, 3);
    }
    for (int k = 0; k < s->nsessions && !s->failed; k++) {
        struct session *cs = &s->sessions[k];
        s->cs = cs;
        s->csq = NULL;
        s->hole = s->exp = -1;
        s->clock = cs->start > s->clock ? cs->start : s->clock;
        char rel[REC_MAX_PATH];
        if (cs->aborted) {
            /* Images were taken, but the session file was never saved. */
            write_square(s, cs, &cs->squares[0]);
            continue;
        }
        snprintf(rel, sizeof(rel), "%s/EpuSession.dm", cs->dir);
        write_kind(s, T_SESSION, rel, 2);
        for (int j = 0; j < cs->nsquares && !s->failed; j++) {
            struct square *sq = &cs->squares[j];
            s->csq = sq;
            char dm[512];
            snprintf(dm, sizeof(dm), "%s/Metadata/GridSquare_%" PRId64 ".dm", cs->dir, sq->gs_id);
            write_kind(s, T_SQUARE_DM, dm, 1);
        }
        s->csq = NULL;
        for (int j = 0; j < cs->nsquares && !s->failed; j++) {
            if (!cs->squares[j].imaged)
                continue;
            write_square(s, cs, &cs->squares[j]);
            cs->imaged_done++;
            s->csq = NULL;
            write_kind(s, T_SESSION, rel, 2); /* rewritten as squares complete */
        }
    }
}
