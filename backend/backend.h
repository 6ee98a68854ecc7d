/* backend.h — em-backend's commands (DESIGN §1) and the little they share.
 *
 * Each command takes its arguments after the command name and returns the process exit
 * status: 0 success, 1 done but some input was rejected (or a run that failed), 2 bad
 * usage or a store/bus that cannot be used.
 */
#ifndef EM_BACKEND_H
#define EM_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "emopt.h"

/* Exit statuses, the same for every program: 0 success; 1 bad input or a failed run
 * (some events rejected, a store or broker that fails, a file that cannot be read);
 * 2 usage or settings (the reason is printed). */
enum { BE_OK = 0, BE_REJECTS = 1, BE_FAILED = 1, BE_USAGE = 2 };

int cmd_ingest(int argc, char **argv);
int cmd_consume(int argc, char **argv);
int cmd_query(int argc, char **argv);
int cmd_dead(int argc, char **argv);
int cmd_job(int argc, char **argv);
int cmd_catalog(int argc, char **argv);
int cmd_serve(int argc, char **argv);

/* The store URL (--store or $EM_BACKEND_STORE, through emopt); says which are missing
 * and returns NULL when it is. */
const char *be_store_url(const char *opt);

struct stall_rule;
/* The stall rule (views.h) from the options `factor`, `min` and `idle` of `o` (query and
 * serve). Returns 0, or EM_EUSAGE (the option's error printed). */
int be_stall_rule(const struct emopt *o, int factor, int min, int idle, struct stall_rule *r);

/* Seconds on the monotonic clock (intervals, never dates). */
double be_mono_s(void);

struct rules;
/* The rules of consume and ingest: `--movies BASE_URL` (may be NULL) and the rules file
 * (may be NULL). Returns 0, or EM_EUSAGE with the reason in `why`. */
int be_rules(struct rules *r, const char *movies, const char *file, char *why, size_t cap);

#endif
