/* recording.h — the fsrecorder archive format (README "Recording format").
 *
 * A recording is one tar archive (plain, gzip or zstd, read and written with libarchive)
 * holding, in this order, segments of a JSON-lines manifest and the content they refer
 * to:
 *
 *     manifest/00000001.jsonl    header line, then one line per operation
 *     data/3                     the bytes of operation 3 (only operations with "len" > 0)
 *     data/7
 *     manifest/00000002.jsonl    the next second's operations ...
 *
 * A segment is written whole with its data right after it, at most a second after the
 * operations happened, so a recorder killed with SIGKILL leaves an archive that reads
 * back up to its last complete segment. The last operation of a finished recording is
 * "end". Readers ignore fields they do not know; an operation they do not know is
 * skipped with a warning. Paths are relative, '/'-separated UTF-8 and never leave the
 * tree (rec_path_check).
 *
 * Not thread-safe; one writer or reader per thread.
 */
#ifndef EM_RECORDING_H
#define EM_RECORDING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REC_FORMAT "em-fsrecording"
#define REC_VERSION 1
/* Limits a reader enforces on untrusted archives. */
#define REC_MAX_PATH 4096
#define REC_MAX_DEPTH 256
#define REC_MAX_SEGMENT (64u << 20) /* bytes of manifest in one segment */
#define REC_MAX_DATA (1ull << 30)   /* bytes of content in one operation */
#define REC_MAX_SIZE (1ull << 44)   /* a file size (16 TiB) */

enum rec_op_type {
    REC_MKDIR,       /* path */
    REC_CREATE,      /* path, data: a new file (or one emptied and written from the start) */
    REC_APPEND,      /* path, offset (= the old size), data */
    REC_WRITE,       /* path, offset, data, size: bytes replaced in place */
    REC_REWRITE,     /* path, data (or same: the same bytes again): truncated and written */
    REC_TRUNCATE,    /* path, size */
    REC_PLACEHOLDER, /* path, size: content not kept (images, movies); replayed as zeros */
    REC_RENAME,      /* path -> to, is_dir */
    REC_DELETE,      /* path, is_dir */
    REC_END,         /* the recording finished cleanly */
    REC_UNKNOWN      /* written by a newer fsrecorder: skipped */
};

struct rec_op {
    uint64_t n; /* 1-based position in the recording (the writer assigns it) */
    double t;   /* seconds since the recording started */
    enum rec_op_type type;
    const char *path;
    const char *to;     /* REC_RENAME */
    uint64_t offset;    /* REC_APPEND, REC_WRITE */
    uint64_t size;      /* the file's size after the operation */
    bool same;          /* REC_REWRITE with unchanged content (no data) */
    bool is_dir;        /* REC_RENAME, REC_DELETE */
    const char *sha256; /* the whole file after the operation; NULL for placeholders */
    int64_t mtime_ns;   /* the source file's mtime (ns since 1970), 0 when unknown */
    const unsigned char *data;
    size_t len;
};

const char *rec_op_name(enum rec_op_type t);

/* Checks a path from a recording: relative, '/'-separated, no empty, "." or ".."
 * components, no '\\' or ':' (which Windows would read as separators or drives), no
 * control characters, valid UTF-8, at most REC_MAX_PATH bytes and REC_MAX_DEPTH levels.
 * Returns NULL when acceptable, else the reason. */
const char *rec_path_check(const char *path);

enum rec_compression { REC_PLAIN, REC_GZIP, REC_ZSTD };

/* The compression an output name asks for: .tar, .tar.gz/.tgz, .tar.zst/.tzst.
 * Returns 0 or -1 for any other name. */
int rec_compression_for(const char *path, enum rec_compression *c);

struct rec_header {
    const char *source;       /* the recorded directory, as given */
    const char *mode;         /* "live", "snapshot" or "synth" */
    const char *placeholders; /* comma-separated suffixes, or "" */
    const char *tool;         /* "fsrecorder 0.1.0" */
};

struct rec_writer;

/* Starts a plain tar recording at `path` (created or truncated). With `durable`, every
 * flushed segment is also fdatasync'ed. Returns 0 or a negative EM_E* code, with the
 * reason in `err`. */
int rec_writer_open(const char *path, const struct rec_header *h, bool durable,
                    struct rec_writer **out, char *err, size_t errlen);

/* Adds an operation to the current segment; copies op->path, op->to, op->sha256 and the
 * data. Sets op->n. Returns 0, EM_ENOMEM or EM_EINVAL (a path rec_path_check refuses). */
int rec_writer_add(struct rec_writer *w, struct rec_op *op);

/* Bytes of manifest and data waiting in the current segment. */
size_t rec_writer_pending(const struct rec_writer *w);

/* Writes the current segment (if any) to the archive. Returns 0 or EM_EIO. */
int rec_writer_flush(struct rec_writer *w, char *err, size_t errlen);

struct rec_totals {
    uint64_t ops;  /* operations, without "end" */
    uint64_t data; /* bytes of content stored */
    uint64_t segments;
};
void rec_writer_totals(const struct rec_writer *w, struct rec_totals *t);

/* Finishes: with `end_time` >= 0 an "end" operation at that time is added, the last
 * segment written and the archive closed. Frees `w` in every case. Returns 0 or EM_EIO. */
int rec_writer_close(struct rec_writer *w, double end_time, char *err, size_t errlen);

/* Copies the recording `in` into `out` with compression `c` (streamed; `out` is written
 * beside as out.tmp and renamed when complete). Returns 0 or EM_EIO with `err`. */
int rec_pack(const char *in, const char *out, enum rec_compression c, char *err, size_t errlen);

struct rec_reader;

/* Opens a recording (any compression). Reads and checks the header line. Returns 0 or a
 * negative EM_E* code with the reason in `err` (EM_EHOSTILE, EM_EMALFORMED, EM_ENOENT,
 * EM_EIO). */
int rec_reader_open(const char *path, struct rec_reader **out, char *err, size_t errlen);

/* Header fields (strings valid until rec_reader_close; "" when absent). */
const char *rec_reader_header(const struct rec_reader *r, const char *field);
int rec_reader_version(const struct rec_reader *r);

/* The next operation, its strings and data valid until the next call. Returns 1, 0 at
 * the end of the recording, or a negative EM_E* code (hostile or malformed content; the
 * reason in rec_reader_error()). At the end, rec_reader_complete() says whether an "end"
 * operation was seen; if not, rec_reader_error() says why the archive stopped (a
 * recorder that was killed leaves a torn last segment). */
int rec_reader_next(struct rec_reader *r, struct rec_op *op);
bool rec_reader_complete(const struct rec_reader *r);

/* With `skip`, operations come without their data (op->data NULL, op->len still set):
 * a fast pass to check or count a recording. */
void rec_reader_skip_data(struct rec_reader *r, bool skip);
const char *rec_reader_error(const struct rec_reader *r);

/* Compressed bytes consumed so far and the archive's size, for progress. */
uint64_t rec_reader_position(const struct rec_reader *r);
uint64_t rec_reader_file_size(const struct rec_reader *r);
/* "plain", "gzip", "zstd", ... */
const char *rec_reader_compression(const struct rec_reader *r);

void rec_reader_close(struct rec_reader *r);

#endif
