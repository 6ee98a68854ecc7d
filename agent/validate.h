/* validate.h — the validator behind `em-agent validate`: is a tree a complete, readable
 * EPU session or visit? It reads and parses (on the pool) and gathers findings; the
 * command (cmd_validate.c) prints them. */
#ifndef EM_VALIDATE_H
#define EM_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

#include "epu.h"
#include "tree.h"

struct finding {
    char *path;
    long line; /* 0 when not about a line */
    char *message;
};

struct session_report {
    const struct tree_session *ts;
    struct epu_doc *doc;
    char *atlas_rel;
    struct epu_doc *atlas_doc; /* borrowed from the atlas list, or owned when outside */
    bool atlas_owned;
    size_t squares_imaged, squares_with_metadata, micrographs;
};

struct validation {
    struct tree tree;
    struct finding *findings;
    size_t nfindings, cap;
    struct session_report *reports;
    struct epu_doc **atlas_docs; /* parallel to tree.atlases */
    size_t files_checked;
    int error; /* out of memory */
};

/* Checks the tree v->tree (from tree_scan) with `threads` parser threads: every file
 * read and parsed, the findings and one report per session filled in. Returns 0 or a
 * negative EM_E* code (out of memory). */
int validate_run(struct validation *v, unsigned threads);

void validation_free(struct validation *v);

#endif
