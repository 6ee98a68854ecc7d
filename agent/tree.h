/* tree.h — what an EPU directory holds, found by walking it once (DESIGN §3).
 *
 * tree_scan() walks a visit (storage root) or a single session directory, classifies
 * every file by its path and groups EPU files by session directory and grid square.
 * Session directories are recognised by EpuSession.dm, Metadata/ or Images-Disc<N>/,
 * so aborted sessions without EpuSession.dm are found too. Paths are stored relative to
 * the root with '/' separators. Lists are sorted by name, so a square's images come
 * oldest first (their names end in _<date>_<time>).
 */
#ifndef EM_TREE_H
#define EM_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "epu.h"

struct strvec {
    char **v;
    size_t n, cap;
};

/* Appends a copy of `s`. Returns 0 or EM_ENOMEM. */
int strvec_push(struct strvec *sv, const char *s);
void strvec_sort(struct strvec *sv);
void strvec_free(struct strvec *sv);

struct tree_square {
    int64_t gridsquare_id;
    char *metadata;            /* Metadata/GridSquare_<gs>.dm, or NULL */
    struct strvec images;      /* Images-Disc*\/GridSquare_<gs>/GridSquare_<date>_<time>.xml */
    struct strvec foilholes;   /* .../FoilHoles/FoilHole_<fh>_<date>_<time>.xml */
    struct strvec micrographs; /* .../Data/FoilHole_<fh>_Data_..._<date>_<time>.xml */
};

struct tree_session {
    char *dir;    /* relative to the root; "." for the root itself */
    char *epu_dm; /* <dir>/EpuSession.dm, or NULL (aborted session) */
    bool has_metadata;
    unsigned images_discs;       /* Images-Disc<N> directories seen */
    struct tree_square *squares; /* ascending gridsquare_id after tree_scan */
    size_t square_count;
    size_t square_cap;
};

struct tree {
    char *root;
    struct tree_session *sessions; /* in walk order (sorted names) */
    size_t session_count;
    size_t session_cap;
    struct strvec atlases;        /* .../Atlas/Atlas.dm */
    struct strvec other_xml;      /* other .xml and .dm files (tiles, Sample.dm, ...) */
    struct strvec unplaced;       /* EPU files outside any session layout */
    size_t files;                 /* regular files seen */
    size_t dirs;                  /* directories walked */
    size_t dirs_failed;           /* directories that could not be listed (each logged) */
    struct strvec unreadable;     /* those directories, relative to the root */
    struct strvec unreadable_why; /* and why, in the same order ("permission denied") */
};

/* Whether `rel` is one of the unreadable directories or lies below one. */
bool tree_under_unreadable(const struct tree *t, const char *rel);

/* Walks `root`. Returns 0, EM_ENOENT (root missing or not a directory), EM_EIO or
 * EM_ENOMEM. Unreadable subdirectories are skipped with a warning in the log. You own
 * the result: tree_free(). */
int tree_scan(const char *root, struct tree *t);
void tree_free(struct tree *t);

/* Number of EPU files (session, metadata and image manifests) placed in sessions. */
size_t tree_session_files(const struct tree_session *s);

/* Finds the Atlas.dm that a session's AtlasId names. `atlas_id_path` is EPU's Windows
 * path and `storage_path` the session's storage folder; the part after the storage
 * folder is looked for beside the session directory and under the root, then ever
 * shorter tails of the path (DESIGN §3). Returns a new path relative to the root (it may
 * start with "../" when the atlas lies outside it), or NULL when none exists. */
char *tree_find_atlas(const struct tree *t, const struct tree_session *s, const char *atlas_id_path,
                      const char *storage_path);

/* The same for a session directory `session_dir` relative to `root`. */
char *tree_find_atlas_at(const char *root, const char *session_dir, const char *atlas_id_path,
                         const char *storage_path);

/* Where an EPU file belongs, from its path alone. */
struct tree_loc {
    enum epu_kind kind;    /* EPU_KIND_NONE: not an EPU file */
    char *session_dir;     /* session directory (you own it), for session, .dm and images */
    int64_t gridsquare_id; /* for .dm and images */
    bool unplaced;         /* an EPU name outside any session layout */
};

/* Classifies `rel` (relative, '/'-separated). Returns 0 or EM_ENOMEM. */
int tree_locate(const char *rel, struct tree_loc *loc);

/* A new string: `rel` joined to the root. */
char *tree_abs(const struct tree *t, const char *rel);

#endif
