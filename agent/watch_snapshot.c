#include "watch_int.h"

/* ---- the model snapshot (model.h): a restart that needs not read the tree again ----
 *
 * Per watched directory, in the state directory: `model-HASH` (the snapshot: a header
 * naming the agent and the directory, then model_save()'s records) and `model-HASH.mark`
 * (the id of the journal mark made with it: journal_mark()). A start uses the pair only
 * when the journal's last mark has that id. The model then comes from the snapshot, and
 * the files whose journal records lie after the mark are read again (watch.c never trusts
 * them): a run that did not stop cleanly processed them after the snapshot was made. So a
 * killed agent resumes from its last snapshot, made at a clean stop and every
 * --snapshot-every seconds while watching, and reads only what came after it.
 *
 * Writing one: the snapshot goes to a temporary name and is synced; its mark file is
 * removed, the snapshot renamed into place, the journal marked and committed, and only
 * then the mark file written. Cut anywhere, the pair is either the old one with its own
 * mark, or has no mark file (not used). */

#define SNAPSHOT_MAGIC WATCH_SNAPSHOT_MAGIC /* watch.h: what its format 3 changed */
#define SNAPSHOT_MAGIC_ANY "em-agent model "
#define SNAPSHOT_BUFFER ((size_t)1 << 20)

/* Opens a snapshot file with a 1 MiB stdio buffer (a visit's is 130 MB). The buffer is
 * passed, not left to stdio: glibc ignores the size of a NULL buffer and reads and writes
 * st_blksize (4 KiB on tmpfs and ext4) at a time, 32,000 system calls for one snapshot.
 * *buf is freed by the caller after fclose(). */
static FILE *open_buffered(const char *path, const char *mode, char **buf)
{
    FILE *f = fopen(path, mode);
    *buf = f ? malloc(SNAPSHOT_BUFFER) : NULL;
    if (*buf)
        setvbuf(f, *buf, _IOFBF, SNAPSHOT_BUFFER);
    return f;
}

static char *snapshot_path(const struct watch *w, const struct wroot *r, const char *suffix)
{
    char name[96];
    snprintf(name, sizeof(name), "model-%016llx%s", (unsigned long long)hash64_str(r->path),
             suffix);
    return fsio_join(w->opt->state_dir, name);
}

/* A mark's id: random (a restart of the machine must not make one again that an old mark
 * file still names), never 0. */
static uint64_t new_mark_id(void)
{
    uint64_t id = 0;
    if (uv_random(NULL, NULL, &id, sizeof(id), 0, NULL) != 0)
        id = uv_hrtime() ^ ((uint64_t)uv_os_getpid() << 40);
    return id ? id : 1;
}

/* How long a restore waits for a session or atlas file that is there but cannot be
 * parsed: EPU may be rewriting it at that moment (over a network share, for seconds).
 * Giving up means reading the whole tree. */
#define RESTORE_LOAD_WAIT_MS 3000
#define RESTORE_LOAD_STEP_MS 100

static struct epu_doc *restore_load(void *ctx, const char *rel, enum epu_kind kind,
                                    struct fsio_stat *st)
{
    struct wroot *r = ctx;
    struct epu_doc *doc = watch_on_load(ctx, rel, kind, st);
    struct fsio_stat now;
    char *full = doc ? NULL : fsio_join(r->path, rel);
    for (unsigned waited = 0; !doc && full && fsio_stat(full, &now) == 0 &&
                              waited < RESTORE_LOAD_WAIT_MS && !watch_stop_pending();
         waited += RESTORE_LOAD_STEP_MS) {
        if (waited == 0)
            em_log(EM_LOG_INFO,
                   "%s: %s cannot be read as a whole now (being written?); the snapshot "
                   "waits up to %u s for it",
                   r->path, rel, RESTORE_LOAD_WAIT_MS / 1000);
        uv_sleep(RESTORE_LOAD_STEP_MS);
        doc = watch_on_load(ctx, rel, kind, st);
    }
    free(full);
    char *path = doc ? fsio_join(r->path, rel) : NULL;
    const struct journal_file *f =
        path ? journal_file_find_path_cached(r->w->j, &r->restore_dc, path) : NULL;
    free(path);
    /* A file under the root must be one the journal knows, and either the version it
     * took in or another one, which the walk reads again since it differs from the
     * journal's (EPU rewrites EpuSession.dm all session long, so a restart during
     * acquisition finds it changed): the model takes that in as it would live (a
     * session file's new id too: model_restore()). Not a version the journal has as
     * failed. One outside the root (an atlas beside a watched session directory) is
     * simply read. */
    if (doc && strncmp(rel, "../", 3) != 0 &&
        (!f || (f->state != JFILE_DONE && watch_same_version(f, st)))) {
        epu_doc_free(doc);
        doc = NULL;
    }
    return doc;
}

static const char *restore_path(void *ctx, const char *rel)
{
    struct wroot *r = ctx;
    char *path = fsio_join(r->path, rel);
    const struct journal_file *f =
        path ? journal_file_find_path_cached(r->w->j, &r->restore_dc, path) : NULL;
    free(path);
    return f ? f->name : NULL;
}

static uint64_t restore_prefetch(void *ctx, const char *rel, int step, uint64_t token)
{
    struct wroot *r = ctx;
    if (step == 1) {
        journal_file_prefetch_token(r->w->j, token);
        return token;
    }
    char path[4096]; /* a longer one is simply not hinted */
    if (!fsio_join_into(path, sizeof(path), r->path, rel))
        return 0;
    return journal_file_prefetch_path(r->w->j, &r->prefetch_dc, path);
}

int snapshot_restore(struct watch *w, struct wroot *r)
{
    char *path = snapshot_path(w, r, ""), *markp = snapshot_path(w, r, ".mark"),
         *old_used = snapshot_path(w, r, ".used"), *old_seq = snapshot_path(w, r, ".seq");
    if (!path || !markp || !old_used || !old_seq) {
        free(path), free(markp), free(old_used), free(old_seq);
        return -EM_ENOMEM;
    }
    /* An older agent's (it named a snapshot by the journal's seq). */
    struct fsio_stat ost;
    bool older = fsio_stat(old_seq, &ost) == 0 || fsio_stat(old_used, &ost) == 0;
    remove(old_used);
    remove(old_seq);
    uint64_t id = fsio_read_number(markp);
    char *fbuf;
    FILE *f = open_buffered(path, "rb", &fbuf);
    if (!f) {
        free(path), free(markp), free(old_used), free(old_seq);
        return 0;
    }
    char head[4096], want[4096];
    snprintf(want, sizeof(want), "%s\t%s\t%s\n", SNAPSHOT_MAGIC, w->opt->agent, r->path);
    int rc = -EM_ESTATE;
    const char *why = older     ? "an em-agent before 2026-12-04 wrote it"
                      : id == 0 ? "it has no mark file: the last run could not finish it"
                                : "the journal's last mark is not its own (an older em-agent's "
                                  "journal, or a state directory put back from a copy)";
    struct journal_info ji;
    journal_info(w->j, &ji);
    if (id != 0 && id == ji.mark_id && fgets(head, sizeof(head), f)) {
        if (strcmp(head, want) == 0) {
            struct model_restore_cb cb = {restore_load, restore_path, r, restore_prefetch};
            rc = model_restore(r->model, f, &cb);
            why = rc == -EM_ESTATE ? "a session or atlas file is gone or cannot be read now, or "
                                     "a session has an id now and had none"
                                   : em_strerror(rc);
        } else if (strncmp(head, SNAPSHOT_MAGIC_ANY, strlen(SNAPSHOT_MAGIC_ANY)) == 0 &&
                   strncmp(head, SNAPSHOT_MAGIC "\t", strlen(SNAPSHOT_MAGIC) + 1) != 0) {
            why = "an older em-agent wrote it, in another format";
        } else {
            why = "it was written for another agent name or directory";
        }
    }
    fclose(f);
    free(fbuf);
    journal_dircache_free(&r->restore_dc);
    journal_dircache_free(&r->prefetch_dc);
    if (rc == 0) {
        r->restored = true;
        r->model_whole = true;
        r->snap_current = true;
        r->snap_changes = model_changes(r->model);
        if (w->files_after_mark)
            em_log(EM_LOG_INFO,
                   "%s: state restored from %s; %zu files processed after it (the last run did "
                   "not stop cleanly) are read again",
                   r->path, path, w->files_after_mark);
        else
            em_log(EM_LOG_INFO, "%s: state restored from %s", r->path, path);
    } else {
        if (watch_stop_pending()) {
            /* Given up for a stop (waiting for a session file): the pair stays as it is,
             * for the next start, unless this run marks the journal
             * (snapshot_mark_at_end()). */
            em_log(EM_LOG_INFO, "%s: snapshot %s not restored: stopping", r->path, path);
        } else {
            remove(markp);
            em_log(EM_LOG_INFO, "%s: snapshot %s not used (%s): reading the tree", r->path, path,
                   why);
        }
        struct model_callbacks cb = {
            sink_on_emit, sink_on_retract,  watch_on_load, watch_on_rescan, r, true,
            true,         sink_on_emit_text};
        model_free(r->model);
        r->model = model_new(r->path, &cb);
    }
    free(path), free(markp), free(old_used), free(old_seq);
    return r->model ? 0 : -EM_ENOMEM;
}

/* Writes `path` through a temporary name: `fill` writes the content, then it is synced
 * and renamed over `path`. Returns 0 or a negative EM_E*. */
int snapshot_write_synced(const char *path, const char *tmp, int (*fill)(FILE *f, void *ctx),
                          void *ctx)
{
    return snapshot_write_synced_then(path, tmp, fill, ctx, NULL);
}

int snapshot_write_synced_then(const char *path, const char *tmp, int (*fill)(FILE *f, void *ctx),
                               void *ctx, const char *drop)
{
    char *fbuf;
    FILE *f = open_buffered(tmp, "wb", &fbuf);
    int rc = f ? fill(f, ctx) : em_from_errno(errno);
    if (f && fclose(f) != 0 && rc == 0)
        rc = -EM_EIO;
    free(fbuf);
    if (rc == 0)
        rc = fsio_sync_path(tmp);
    if (rc == 0 && drop && remove(drop) != 0 && errno != ENOENT)
        rc = em_from_errno(errno);
    if (rc == 0)
        rc = fsio_rename(tmp, path); /* replacing it, on Windows too */
    if (rc < 0)
        remove(tmp);
    return rc;
}

int snapshot_fill_text(FILE *f, void *ctx)
{
    return fputs(ctx, f) < 0 ? -EM_EIO : 0;
}

static int fill_snapshot(FILE *f, void *ctx)
{
    struct wroot *r = ctx;
    fprintf(f, "%s\t%s\t%s\n", SNAPSHOT_MAGIC, r->w->opt->agent, r->path);
    return model_save(r->model, f);
}

static bool snapshot_current(const struct wroot *r)
{
    return r->snap_current && model_changes(r->model) == r->snap_changes;
}

/* Writes root r's snapshot (synced), removing its mark file just before it replaces the
 * old one. */
static int write_content(struct watch *w, struct wroot *r)
{
    char *path = snapshot_path(w, r, ""), *tmp = snapshot_path(w, r, ".tmp"),
         *markp = snapshot_path(w, r, ".mark");
    int rc = path && tmp && markp ? 0 : -EM_ENOMEM;
    uint64_t changes = model_changes(r->model);
    r->snap_current = false; /* from now on, until it is written whole */
    if (rc == 0)
        rc = snapshot_write_synced_then(path, tmp, fill_snapshot, r, markp);
    if (rc == 0) {
        r->snap_current = true;
        r->snap_changes = changes;
    }
    free(path), free(tmp), free(markp);
    return rc;
}

/* Writes root r's mark file: its snapshot holds the journal up to mark `id`. */
static int write_mark(struct watch *w, struct wroot *r, uint64_t id)
{
    char *markp = snapshot_path(w, r, ".mark"), *tmp = snapshot_path(w, r, ".mark.tmp");
    int rc = markp && tmp ? 0 : -EM_ENOMEM;
    if (rc == 0) {
        char text[32];
        snprintf(text, sizeof(text), "%llu\n", (unsigned long long)id);
        rc = snapshot_write_synced(markp, tmp, snapshot_fill_text, text);
    }
    if (rc < 0)
        r->snap_current = false; /* written again, with a mark, next time */
    free(markp), free(tmp);
    return rc;
}

static void no_snapshot(const struct wroot *r, int rc)
{
    em_log(EM_LOG_WARN, "%s: no snapshot written (%s): a start after this run reads the tree",
           r->path, em_strerror(rc));
}

/* While watching: the last pair may still serve, and it is tried again. */
static void no_snapshot_now(const struct watch *w, const struct wroot *r, int rc)
{
    em_log(EM_LOG_WARN,
           "%s: no snapshot written (%s); tried again in %g s (a start after a crash reads "
           "more files meanwhile)",
           r->path, em_strerror(rc), w->opt->snapshot_s);
}

/* Removes root r's mark file: its snapshot no longer goes with the journal's mark. */
static void drop_mark(struct watch *w, struct wroot *r)
{
    char *markp = snapshot_path(w, r, ".mark");
    if (markp)
        remove(markp);
    free(markp);
}

uint64_t snapshot_mark_at_end(struct watch *w)
{
    bool due = journal_files_after_mark(w->j) > 0;
    for (size_t i = 0; i < w->nroots; i++)
        if (w->roots[i].model_whole && !snapshot_current(&w->roots[i])) {
            /* Its snapshot is rewritten after the mark: until then it holds less than the
             * mark says, so its mark file goes first. */
            drop_mark(w, &w->roots[i]);
            due = true;
        }
    if (!due)
        return 0; /* every snapshot and mark file is as it should be (a root not whole: its
                     old pair, which nothing came after) */
    for (size_t i = 0; i < w->nroots; i++)
        if (!w->roots[i].model_whole)
            drop_mark(w, &w->roots[i]); /* the journal's mark moves on without it */
    uint64_t id = new_mark_id();
    int rc = journal_mark_final(w->j, id);
    if (rc < 0) {
        for (size_t i = 0; i < w->nroots; i++)
            no_snapshot(&w->roots[i], rc);
        return 0;
    }
    return id;
}

void snapshot_save_all(struct watch *w, uint64_t id)
{
    if (!id)
        return;
    for (size_t i = 0; i < w->nroots; i++) {
        struct wroot *r = &w->roots[i];
        if (!r->model_whole) {
            em_log(EM_LOG_INFO,
                   "%s: no snapshot written (the tree was not read to its end in this run): "
                   "the next start reads it",
                   r->path);
            continue;
        }
        int rc = snapshot_current(r) ? 0 : write_content(w, r);
        if (rc == 0)
            rc = write_mark(w, r, id);
        if (rc < 0)
            no_snapshot(r, rc);
    }
}

int snapshot_save_now(struct watch *w)
{
    for (size_t i = 0; i < w->nroots; i++)
        if (!w->roots[i].lost && model_dirty(w->roots[i].model))
            return -EM_ESTATE;
    bool due = journal_files_after_mark(w->j) > 0;
    int rc = 0;
    for (size_t i = 0; i < w->nroots; i++) {
        struct wroot *r = &w->roots[i];
        if (!r->model_whole) {
            drop_mark(w, r); /* not walked whole yet (unreadable): none for it */
            continue;
        }
        if (snapshot_current(r))
            continue;
        due = true;
        int wrc = write_content(w, r);
        if (wrc < 0) {
            no_snapshot_now(w, r, wrc);
            rc = wrc;
        }
    }
    /* One not written: no mark either, so the others' old pairs stay usable. */
    if (!due || rc < 0)
        return rc;
    uint64_t id = new_mark_id();
    int mrc = journal_mark(w->j, id);
    if (mrc == 0)
        mrc = journal_commit(w->j);
    if (mrc < 0) {
        em_log(EM_LOG_WARN,
               "%s: cannot mark the journal for the snapshots (%s); tried again in %g s",
               journal_path(w->j), em_strerror(mrc), w->opt->snapshot_s);
        return mrc;
    }
    for (size_t i = 0; i < w->nroots; i++) {
        struct wroot *r = &w->roots[i];
        int wrc = r->snap_current ? write_mark(w, r, id) : 0;
        if (wrc < 0) {
            no_snapshot_now(w, r, wrc);
            rc = wrc;
        }
    }
    return rc;
}
