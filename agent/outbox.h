/* outbox.h — the durable queue of events waiting for the bus (DESIGN §5–7).
 *
 * The outbox is the directory `outbox/` in the state directory: segment files named by
 * the seq of their first event (20 digits, ".jsonl"), each holding whole event lines in
 * seq order, and `confirmed`, the highest seq the broker has confirmed. The loop thread
 * appends (struct outbox_writer); the publisher thread reads from the first unconfirmed
 * event and deletes a segment once every event in it is confirmed (struct
 * outbox_reader). Memory stays bounded however long the broker is away: the queue is on
 * disk and the reader holds one buffer of lines.
 *
 * Crash safety: the writer appends whole lines with one write per batch and cuts a torn
 * last line on open; `confirmed` is replaced by rename, and when it lags after a crash
 * some confirmed events are published again with their original seq (the consumer
 * de-duplicates by agent and seq). Only the newest segment is ever appended to, and the
 * reader never deletes the newest segment, so the two threads share no file they both
 * write.
 */
#ifndef EM_OUTBOX_H
#define EM_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dynbuf.h"

#define OUTBOX_SEGMENT_MAX (4u << 20) /* a new segment starts past this size */
#define OUTBOX_LINE_MAX (16u << 20)   /* longer lines are corrupt */

struct outbox_writer {
    char *dir;
    int fd; /* the newest segment, or -1 before the first write */
    uint64_t seg_bytes;
    uint64_t last_seq;    /* the last seq in the outbox (or confirmed), 0 when unknown */
    uint64_t confirmed;   /* as read at open */
    uint64_t in_segments; /* the last seq found in the segments at open, 0 when none */
    size_t nsegments;     /* segments found at open */
    bool fsync;
};

/* Opens (creating) `state_dir`/outbox for writing: cuts a torn last line of the newest
 * segment and finds the last seq. Returns 0 or a negative EM_E* code with a reason.
 * Loop thread. */
int outbox_open(struct outbox_writer *o, const char *state_dir, bool fsync, char *reason,
                size_t cap);

/* Appends `len` bytes of whole lines, whose seqs run from `first_seq` to `last_seq`.
 * Starts a new segment (named `first_seq`) when the current one is full. Returns 0 or
 * EM_EIO (nothing is appended then, except possibly a torn tail that the next open cuts). */
int outbox_write(struct outbox_writer *o, char *buf, size_t len, uint64_t first_seq,
                 uint64_t last_seq);

/* Forgets the confirmed mark (it was found ahead of what was journaled), so that every
 * event still in the outbox is published again. Before the publisher starts. Returns 0
 * or a negative EM_E* code. */
int outbox_forget_confirmed(struct outbox_writer *o);

void outbox_close(struct outbox_writer *o);

struct outbox_done {
    uint64_t first, last; /* the segment's name and its last seq */
};

struct outbox_reader {
    char *dir;
    uint64_t confirmed, saved; /* the highest confirmed seq; the one in the file */
    uint64_t cur;              /* the name of the segment being read (or last read) */
    bool have_cur;             /* false before the first segment */
    int fd;                    /* -1 when none is open */
    uint64_t last;             /* the last seq returned */
    uint64_t seg_last;         /* the last seq read from the current segment */
    struct outbox_done *done;  /* segments read to the end, not yet deleted */
    size_t ndone, done_cap;
    struct dynbuf buf; /* bytes read, from `pos` on not yet returned */
    size_t pos;
    uint64_t skipped; /* corrupt lines skipped */
    bool skipping;    /* inside a line over OUTBOX_LINE_MAX: dropped up to its newline */
};

/* Opens the outbox of `state_dir` for reading from the first unconfirmed event.
 * Returns 0 or a negative EM_E* code. Publisher thread (like all reader calls). */
int outbox_reader_open(struct outbox_reader *r, const char *state_dir);

/* Starts reading again from the first unconfirmed event (after a reconnection). */
void outbox_reader_rewind(struct outbox_reader *r);

/* The next event line: 1 and *line, *len (valid until the next call) and *seq; 0 when
 * nothing more is there yet; EM_EIO when a segment cannot be read. Lines without a
 * readable seq are skipped with a warning. */
int outbox_reader_next(struct outbox_reader *r, char **line, size_t *len, uint64_t *seq);

/* Records that the broker confirmed every event up to `seq` and deletes segments that
 * are wholly confirmed. */
void outbox_reader_confirm(struct outbox_reader *r, uint64_t seq);

/* Writes `confirmed` if it changed since the last save. Returns 0 or EM_EIO. */
int outbox_reader_save(struct outbox_reader *r);

void outbox_reader_close(struct outbox_reader *r);

/* Counts the events of `state_dir`'s outbox not yet confirmed by the broker, and their
 * first and last seq (0 when none). Reads the segments; changes nothing. Returns 0 or a
 * negative EM_E* code. Any thread that does not also read the outbox. */
int outbox_count_waiting(const char *state_dir, uint64_t *n, uint64_t *first, uint64_t *last);

/* The seq of an event line ({"v":1,"seq":N,...}), or 0 when it has none. */
uint64_t outbox_line_seq(const char *line, size_t len);

#endif
