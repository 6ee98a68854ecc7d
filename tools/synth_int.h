/* synth_int.h — what the parts of em-synth share:
 *   em_synth.c        options and main
 *   synth_plan.c      the plan of the visit and the order EPU writes it in
 *   synth_template.c  templates and rendering
 *   synth_values.c    the values templates ask for
 *   synth_sink.c      a directory or a recording
 */
#ifndef EM_SYNTH_INT_H
#define EM_SYNTH_INT_H

#include "em_compat.h"
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "dynbuf.h"
#include "em_error.h"
#include "fsio.h"
#include "hash.h"
#include "hmap.h"
#include "cli_common.h"
#include "log.h"
#include "progress.h"
#include "recording.h"
#include "sha256.h"
#include "fsrec.h"
#include "synth.h"

enum tkind { T_SESSION, T_ATLAS, T_SQUARE_DM, T_SQUARE_IMG, T_HOLE_IMG, T_MIC, T_COUNT };
static const char *const tnames[T_COUNT] = {"session.dm",     "atlas.dm",     "gridsquare.dm",
                                            "gridsquare.xml", "foilhole.xml", "micrograph.xml"};

struct options {
    const char *out;
    const char *record;
    const char *templates;
    const char *expected;
    int sessions, aborted, squares, unimaged, holes, mics, dm_every;
    uint64_t seed;
    double rate; /* exposures per second; 0: as fast as possible */
    bool images, quiet;
};

struct tmpl {
    char *text;
    bool real; /* a real EPU file without {{ }}: only uniqueID and the time change */
};

struct hole {
    int64_t fh_id;
    int64_t *exp_ids;
    char **base_names;
    int nexp;
};

struct square {
    int64_t gs_id;
    bool imaged;
    int disc;
    double x, y;
    struct hole *holes;
    int nholes;
    int holes_in_dm; /* entries the .dm holds so far */
};

struct session {
    int index;
    bool aborted;
    char dir[128];
    int64_t session_id, sample_id, folder_id, atlas_id;
    char atlas_rel[256];
    struct square *squares;
    int nsquares;
    int imaged_done;
    int64_t start; /* the microscope's clock when the session starts */
};

struct synth {
    struct options o;
    struct tmpl tm[T_COUNT];
    uint64_t rng;
    int64_t next_id;
    int64_t clock; /* the microscope's clock, seconds since 1970 (names and timestamps) */
    char atlas_run[128];
    struct session *sessions;
    int nsessions;
    /* where the rendering is: values come from these */
    struct session *cs;
    struct square *csq;
    int tile, node, hole, exp;
    char uuid[40];
    struct dynbuf out;
    /* the sink */
    struct rec_writer *wr;
    struct hmap dirs;
    struct hmap written; /* files written once already (hash of path -> 1) */
    double t;            /* seconds of the schedule */
    uint64_t start_ns;
    uint64_t files, bytes, mics_done, mics_total;
    uint64_t counts[6]; /* atlas, session, gridsquare, foilhole, micrograph, aborted_session */
    struct progress prog;
    char err[600];
    bool failed;
};

void failf(struct synth *s, const char *fmt, ...) EM_PRINTF(2, 3);
void iso_time(int64_t t, char *out, size_t n);
int load_templates(struct synth *s);
void name_time(int64_t t, char *out, size_t n);
void new_uuid(struct synth *s);
void plan(struct synth *s);
int render_kind(struct synth *s, enum tkind k);
void sink_file(struct synth *s, const char *rel, const char *data, size_t len, int pieces);
void sink_image(struct synth *s, const char *rel, size_t size);
void sink_wait(struct synth *s, double seconds);
double uniform(struct synth *s);
const char *value(struct synth *s, const char *name, char *tmp, size_t n);
void write_visit(struct synth *s);

#endif
