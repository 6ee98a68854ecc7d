/* fsrec.h — the commands of fsrecorder (fsrecorder.c parses the command line). Each
 * returns the process's exit code: 0 success, 1 failure (reason on stderr), 2 usage. */
#ifndef EM_FSREC_H
#define EM_FSREC_H

#include <stdbool.h>

#define FSREC_DEFAULT_PLACEHOLDERS "jpg,jpeg,png,mrc,mrcs,tif,tiff,eer,gain"

struct record_options {
    const char *dir;
    const char *out;
    bool snapshot;    /* record a finished tree in mtime order, then stop */
    unsigned chunks;  /* --snapshot: write each file in this many pieces */
    double chunk_gap; /* --snapshot: seconds between pieces */
    const char *placeholders;
    unsigned sample_ms; /* how often a growing file is looked at */
    double duration;    /* stop after this many seconds (0: at SIGINT/SIGTERM) */
    bool quiet;
};

struct replay_options {
    const char *rec;
    const char *dir;
    double speed;   /* 1: real time */
    double max_gap; /* < 0: no cap */
    bool burst;
    bool force;  /* write into a non-empty directory */
    bool verify; /* compare the result with the recording afterwards */
    bool quiet;
};

int fsrec_record(const struct record_options *o);
int fsrec_replay(const struct replay_options *o);
int fsrec_verify(const char *rec, const char *dir, bool quiet, bool json);
int fsrec_info(const char *rec, bool json, bool ops);
int fsrec_pack(const char *in, const char *out);

#endif
