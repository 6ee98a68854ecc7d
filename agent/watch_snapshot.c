#include "watch_int.h"

/* ---- the model snapshot (model.h): a restart that needs not read the tree again ----
 *
 * Per watched directory, in the state directory: `model-HASH` (the snapshot: a header
 * naming the agent and the directory, then model_save()'s records) and `model-HASH.seq`
 * (the journal's last seq when it was made). A start uses the pair only when the seq is
 * where the journal ends; it then renames the snapshot to `.used` and removes the seq, so
 * a run that does not stop cleanly leaves nothing usable. A clean stop writes a new
 * snapshot, or, when the model did not change since it was read, renames `.used` back. */

#define SNAPSHOT_MAGIC "em-agent model 2"
#define SNAPSHOT_BUFFER ((size_t)1 << 20)

static char *snapshot_path(const struct watch *w, const struct wroot *r, const char *suffix)
{
    char name[96];
    snprintf(name, sizeof(name), "model-%016llx%s", (unsigned long long)hash64_str(r->path),
             suffix);
    return fsio_join(w->opt->state_dir, name);
}

static struct epu_doc *restore_load(void *ctx, const char *rel, enum epu_kind kind,
                                    struct fsio_stat *st)
{
    struct wroot *r = ctx;
    struct epu_doc *doc = watch_on_load(ctx, rel, kind, st);
    char *path = doc ? fsio_join(r->path, rel) : NULL;
    const struct journal_file *f =
        path ? journal_file_find_path_cached(r->w->j, &r->restore_dc, path) : NULL;
    free(path);
    /* A file under the root must be the version the journal has; one outside it (an atlas
     * beside a watched session directory) is simply read. */
    if (doc && strncmp(rel, "../", 3) != 0 &&
        (!f || f->state != JFILE_DONE || !watch_same_version(f, st))) {
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

int snapshot_restore(struct watch *w, struct wroot *r)
{
    char *path = snapshot_path(w, r, ""), *used = snapshot_path(w, r, ".used"),
         *seqp = snapshot_path(w, r, ".seq");
    if (!path || !used || !seqp) {
        free(path), free(used), free(seqp);
        return -EM_ENOMEM;
    }
    remove(used); /* from a run that did not stop cleanly */
    uint64_t seq = fsio_read_number(seqp);
    remove(seqp);
    /* Renamed first, then opened: Windows renames no open file. */
    FILE *f = fsio_rename(path, used) == 0 ? fopen(used, "rb") : NULL;
    if (f) /* a visit's snapshot is 130 MB: read in 1 MiB, not 4 KiB, at a time */
        setvbuf(f, NULL, _IOFBF, SNAPSHOT_BUFFER);
    if (!f) {
        free(path), free(used), free(seqp);
        return 0;
    }
    char head[4096], want[4096];
    snprintf(want, sizeof(want), "%s\t%s\t%s\n", SNAPSHOT_MAGIC, w->opt->agent, r->path);
    int rc = -EM_ESTATE;
    const char *why = "it was written by another run";
    struct journal_info ji;
    journal_info(w->j, &ji);
    if (seq == ji.loaded_seq && seq != 0 && fgets(head, sizeof(head), f) &&
        strcmp(head, want) == 0) {
        struct model_restore_cb cb = {restore_load, restore_path, r};
        rc = model_restore(r->model, f, &cb);
        why = rc == -EM_ESTATE ? "a session or atlas file changed since" : em_strerror(rc);
    }
    fclose(f);
    journal_dircache_free(&r->restore_dc);
    if (rc == 0) {
        r->restored = true;
        em_log(EM_LOG_INFO, "%s: state restored from %s", r->path, path);
    } else {
        remove(used);
        em_log(EM_LOG_INFO, "%s: snapshot %s not used (%s): reading the tree", r->path, path, why);
        struct model_callbacks cb = {
            sink_on_emit, sink_on_retract,  watch_on_load, watch_on_rescan, r, true,
            true,         sink_on_emit_text};
        model_free(r->model);
        r->model = model_new(r->path, &cb);
    }
    free(path), free(used), free(seqp);
    return r->model ? 0 : -EM_ENOMEM;
}

/* Writes `path` through a temporary name: `fill` writes the content, then it is synced
 * and renamed over `path`. Returns 0 or a negative EM_E*. */
int snapshot_write_synced(const char *path, const char *tmp, int (*fill)(FILE *f, void *ctx),
                          void *ctx)
{
    FILE *f = fopen(tmp, "wb");
    if (f)
        setvbuf(f, NULL, _IOFBF, SNAPSHOT_BUFFER);
    int rc = f ? fill(f, ctx) : em_from_errno(errno);
    if (f && fclose(f) != 0 && rc == 0)
        rc = -EM_EIO;
    if (rc == 0)
        rc = fsio_sync_path(tmp);
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

/* Writes each root's snapshot at a clean end (or keeps the one read, when the model did
 * not change), then its seq. */
void snapshot_save_all(struct watch *w)
{
    for (size_t i = 0; i < w->nroots; i++) {
        struct wroot *r = &w->roots[i];
        char *path = snapshot_path(w, r, ""), *tmp = snapshot_path(w, r, ".tmp"),
             *used = snapshot_path(w, r, ".used"), *seqp = snapshot_path(w, r, ".seq"),
             *seqtmp = snapshot_path(w, r, ".seq.tmp");
        int rc = path && tmp && used && seqp && seqtmp ? 0 : -EM_ENOMEM;
        bool kept =
            rc == 0 && r->restored && model_changes(r->model) == 0 && fsio_rename(used, path) == 0;
        if (rc == 0 && !kept) {
            rc = snapshot_write_synced(path, tmp, fill_snapshot, r);
            remove(used);
        }
        if (rc == 0) {
            char text[32];
            snprintf(text, sizeof(text), "%llu\n", (unsigned long long)journal_last_seq(w->j));
            rc = snapshot_write_synced(seqp, seqtmp, snapshot_fill_text, text);
        }
        if (rc < 0)
            em_log(EM_LOG_WARN, "%s: no snapshot written (%s): the next start reads the tree",
                   r->path, em_strerror(rc));
        free(path), free(tmp), free(used), free(seqp), free(seqtmp);
    }
}
