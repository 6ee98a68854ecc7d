/* em-synth: the values a template asks for (ids, times, optics), and the random and
 * clock helpers behind them. */
#include "synth_int.h"

/* ---- small helpers ---- */

static uint64_t next_rand(struct synth *s)
{
    /* splitmix64: reproducible from --seed on every platform */
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double uniform(struct synth *s)
{
    return (double)(next_rand(s) >> 11) / 9007199254740992.0;
}

void new_uuid(struct synth *s)
{
    uint64_t a = next_rand(s), b = next_rand(s);
    snprintf(s->uuid, sizeof(s->uuid),
             "%08" PRIx64 "-%04" PRIx64 "-4%03" PRIx64 "-8%03" PRIx64 "-%012" PRIx64, a >> 32,
             (a >> 16) & 0xffff, a & 0xfff, (b >> 48) & 0xfff, (uint64_t)(b & 0xffffffffffffull));
}

static void clock_parts(int64_t t, struct tm *tm)
{
    time_t tt = (time_t)t;
#ifdef _WIN32
    gmtime_s(tm, &tt);
#else
    gmtime_r(&tt, tm);
#endif
}

/* 2025-03-01T08:00:00.1234567Z */
void iso_time(int64_t t, char *out, size_t n)
{
    struct tm tm;
    clock_parts(t, &tm);
    snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%07dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(t % 7) * 1428571);
}

/* 20250301_080000 */
void name_time(int64_t t, char *out, size_t n)
{
    struct tm tm;
    clock_parts(t, &tm);
    snprintf(out, n, "%04d%02d%02d_%02d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* The text of the value `name` where the rendering is. */
const char *value(struct synth *s, const char *name, char *tmp, size_t n)
{
    struct session *cs = s->cs;
    struct square *sq = s->csq;
    struct hole *h = sq && s->hole >= 0 ? &sq->holes[s->hole] : NULL;
#define IS(x) (strcmp(name, x) == 0)
#define INT(v) (snprintf(tmp, n, "%" PRId64, (int64_t)(v)), tmp)
#define DBL(v) (snprintf(tmp, n, "%.6g", (double)(v)), tmp)
    if (IS("uuid"))
        return s->uuid;
    if (IS("acquired")) {
        iso_time(s->clock, tmp, n);
        return tmp;
    }
    if (IS("started")) {
        iso_time(cs ? cs->start : s->clock, tmp, n);
        return tmp;
    }
    if (IS("computer"))
        return "SYNTH-KRIOS";
    if (IS("quality"))
        return DBL(0.5 + uniform(s) / 2);
    if (IS("defocus"))
        return DBL(-(1.0 + uniform(s) * 1.5) * 1e-6);
    if (IS("stage_x"))
        return DBL(sq ? sq->x : 0);
    if (IS("stage_y"))
        return DBL(sq ? sq->y : 0);
    if (cs) {
        if (IS("session_id"))
            return INT(cs->session_id);
        if (IS("session_name"))
            return cs->dir;
        if (IS("slot"))
            return INT(cs->index + 1);
        if (IS("imaged"))
            return INT(cs->imaged_done);
        if (IS("sample_id"))
            return INT(cs->sample_id);
        if (IS("folder_id"))
            return INT(cs->folder_id);
        if (IS("square_count"))
            return INT(cs->nsquares);
        if (IS("atlas_id"))
            return INT(cs->atlas_id);
        if (IS("atlas_name")) {
            snprintf(tmp, n, "Sample%d", cs->index + 1);
            return tmp;
        }
        if (IS("storage_path") || IS("storage_folder"))
            return "Z:\\synth";
        if (IS("atlas_path")) {
            snprintf(tmp, n, "Z:\\synth\\%s", cs->atlas_rel);
            for (char *p = tmp; *p; p++)
                if (*p == '/')
                    *p = '\\';
            return tmp;
        }
        if (IS("tile_count"))
            return INT((cs->nsquares + 15) / 16);
        if (IS("tile_id"))
            return INT(cs->atlas_id + 1 + s->tile);
        if (IS("tile_x"))
            return INT((s->tile % 4) * 1024);
        if (IS("tile_y"))
            return INT((s->tile / 4) * 1024);
        if (IS("node_count")) {
            int left = cs->nsquares - s->tile * 16;
            return INT(left < 16 ? left : 16);
        }
    }
    if (sq) {
        if (IS("gs_id"))
            return INT(sq->gs_id);
        if (IS("node_x"))
            return DBL((s->tile % 4) * 1024 + 40 + (s->node % 4) * 240);
        if (IS("node_y"))
            return DBL((s->tile / 4) * 1024 + 40 + (s->node / 4) * 240);
        if (IS("local_x"))
            return DBL(40 + (s->node % 4) * 240);
        if (IS("local_y"))
            return DBL(40 + (s->node / 4) * 240);
        if (IS("state"))
            return sq->holes_in_dm == sq->nholes && sq->imaged ? "Completed" : "Selected";
        if (IS("collection_id"))
            return INT(sq->gs_id + 500000);
        if (IS("hole_count"))
            return INT(sq->holes_in_dm);
        if (IS("image_path")) {
            snprintf(tmp, n, "Z:\\synth\\%s\\Images-Disc%d\\GridSquare_%" PRId64 "\\GridSquare.mrc",
                     cs ? cs->dir : "", sq->disc, sq->gs_id);
            return tmp;
        }
        if (IS("disc"))
            return INT(sq->disc);
    }
    if (h) {
        if (IS("fh_id"))
            return INT(h->fh_id);
        if (IS("near_bar"))
            return h->fh_id % 7 == 0 ? "true" : "false";
        if (IS("exposure_count"))
            return INT(h->nexp);
        if (IS("px"))
            return DBL(100 + (s->hole % 8) * 120);
        if (IS("py"))
            return DBL(100 + (s->hole / 8) * 120);
        if (IS("hole_x"))
            return DBL(sq->x + (s->hole % 8) * 2e-6);
        if (IS("hole_y"))
            return DBL(sq->y + (s->hole / 8) * 2e-6);
        if (IS("hole_state"))
            return "Completed";
        if (s->exp >= 0 && s->exp < h->nexp) {
            if (IS("exp_id"))
                return INT(h->exp_ids[s->exp]);
            if (IS("area_id"))
                return INT(4001 + s->exp % 4);
            if (IS("base_name"))
                return h->base_names[s->exp];
        }
    }
#undef IS
#undef INT
#undef DBL
    return NULL;
}
