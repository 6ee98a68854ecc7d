/* pfor.h — a loop over [0, n) run by the calling thread and one helper thread together.
 *
 * A restart's walk stats every file of a visit (600,000 fstatat calls, most of its time,
 * in the kernel): the loop thread and a helper stat one directory's files side by side,
 * taking chunks of indexes from a shared counter, and pfor_run() returns when all are
 * done. The helper sleeps between loops; a loop it has not woken up for in time is
 * simply finished by the caller alone.
 */
#ifndef EM_PFOR_H
#define EM_PFOR_H

#include <stdbool.h>
#include <stddef.h>

struct pfor;

/* Calls fn(ctx, from, to) over [from, to) ranges covering [0, n). */
typedef void (*pfor_fn)(void *ctx, size_t from, size_t to);

/* Starts the helper thread. NULL when out of memory or no thread could start: pfor_run()
 * then runs every loop on the caller's thread alone. */
struct pfor *pfor_start(void);

/* Runs fn over [0, n) in chunks of `chunk` indexes on this thread and the helper. `fn`
 * must be safe to run on two threads at once for different ranges. */
void pfor_run(struct pfor *p, size_t n, size_t chunk, pfor_fn fn, void *ctx);

/* The same loop in two halves, so the caller can do other work meanwhile: pfor_begin()
 * hands [0, n) to the helper and returns at once; pfor_finish() runs what the helper has
 * not taken yet and returns when every range is done. Nothing else may use `p` between
 * the two. Returns false, having started nothing, when there is no helper or the loop is
 * one chunk: call pfor_run() (or fn) then. */
bool pfor_begin(struct pfor *p, size_t n, size_t chunk, pfor_fn fn, void *ctx);
void pfor_finish(struct pfor *p);

/* Ranges the helper ran so far (a test's and a figure's; read between loops). */
size_t pfor_helped(const struct pfor *p);

/* Stops and joins the helper (NULL is fine). */
void pfor_stop(struct pfor *p);

#endif
