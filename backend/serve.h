/* serve.h — what the parts of `em-backend serve` share (not an interface for others):
 *   serve.c      options, the daemon, connections, the monitor thread
 *   serve_api.c  routes: the page's files, /health, /metrics, the JSON API, the events
 *   serve_image.c the images behind the maps, read from --image-root
 *   serve_web.c  (generated) the page's files, built into the binary
 */
#ifndef EM_SERVE_H
#define EM_SERVE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

#include "bus.h"
#include "store.h"
#include "views.h"

/* One TCP connection's state: its own store connection (a store belongs to one thread,
 * and each connection has its thread). */
struct serve_conn {
    struct store *store;
};

/* What serve_check_stalls() last saw of a session. */
struct stall_seen {
    char session_id[24];
    char name[160], agent[160], since[32];
    double threshold_s;
    bool stalled;
    bool unsent; /* an alert the bus has not taken yet */
    bool present;
};

struct serve {
    const char *store_url;
    char store_redacted[512];
    char token[512];
    size_t token_len; /* 0: no token required */
    struct stall_rule stall;
    char **image_roots; /* --image-root, resolved (none: no images served) */
    size_t nimage_roots;
    struct bus_target bus;
    bool have_bus;
    double started;
    /* live updates: `gen` grows at every commit seen; streams wait on `cond` */
    pthread_mutex_t mu;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    uint64_t gen;
    bool stopping;
    /* counters (atomics) */
    uint64_t requests, streams, alerts_sent;
    /* stalls, as the monitor last saw them (under stall_mu) */
    pthread_mutex_t stall_mu;
    struct stall_seen *seen;
    size_t nseen, seen_cap;
    /* /api/v1/sessions, as last answered: every page asks for it at every change, and it
     * counts a whole visit; served again while no commit was seen and it is younger than
     * a second (states that change with time stay within a second) */
    pthread_mutex_t cache_mu;
    char *sessions_json;
    size_t sessions_len;
    uint64_t sessions_gen;
    double sessions_at; /* monotonic */
    bool sessions_busy; /* a request is making it anew */
    uint64_t cache_hits;
    /* the bus connection for alerts (monitor thread only) */
    void *amqp; /* amqp_connection_state_t */
};

/* A page file built into the binary. */
struct web_file {
    const char *path, *type;
    const unsigned char *data;
    size_t len;
};
extern const struct web_file serve_web_files[]; /* ends with {NULL} */

enum MHD_Result serve_route(struct serve *sv, struct serve_conn *sc, struct MHD_Connection *c,
                            const char *url, const char *method);

/* The connection's store, opened at its first use; NULL with a reason. After a query
 * fails with EM_EIO, serve_store_failed() drops it so that the next request reconnects. */
struct store *serve_store(struct serve *sv, struct serve_conn *sc, char *reason, size_t cap);
void serve_store_failed(struct serve_conn *sc);

/* --image-root's list ("DIR" or "DIR:DIR:…") as real paths of existing directories. */
int serve_image_roots(const char *list, char ***roots, size_t *n, char *why, size_t cap);
void serve_image_roots_free(char **roots, size_t n);

/* Opens the JPEG at `rel` (a path relative to an agent's watched root, from the store)
 * below the first image root that has it. Returns 0 with an open descriptor and its
 * size, or the HTTP status to answer with (400 a path that could climb out, 404 none or
 * not a JPEG) and the reason. */
int serve_image_open(char *const *roots, size_t nroots, const char *rel, int *fd, uint64_t *size,
                     char *why, size_t cap);

/* Whether `given` is the token (always true without one); constant time. */
bool serve_token_ok(const struct serve *sv, const char *given);

/* The wall clock, in seconds (the monotonic one: be_mono_s()). */
double serve_now(void);

/* Wakes every event stream (a commit was seen). */
void serve_wake(struct serve *sv);

/* Monitor thread: evaluates the sessions, logs and sends alerts for those that became
 * stalled or resumed. */
void serve_check_stalls(struct serve *sv, struct store *s, double now);
void serve_alerts_close(struct serve *sv);

#endif
