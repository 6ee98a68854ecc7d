/* publisher.h — the agent's bus publisher (DESIGN §7): a thread that owns the AMQP
 * connection and sends what the outbox holds.
 *
 * The loop thread appends events to the outbox (outbox.h) and calls publisher_notify().
 * The publisher thread reads the outbox from the first unconfirmed event and publishes
 * each line to the exchange em.events with routing key <agent>.<type>.<op>, persistent,
 * content type application/json, message id <agent>:<seq>, `mandatory` set. The channel
 * is in confirm mode with at most `window` messages unconfirmed; an event leaves the
 * outbox only when the broker has confirmed it and routed it to a queue. A message the
 * broker returns (no queue bound yet), a nack, or a lost connection make the thread
 * reconnect with back-off and publish again from the first unconfirmed event, in order.
 *
 * The thread reports to the loop through a uv_async handle: the callback runs on the
 * loop thread whenever the connection state or the confirmed seq changes, and once more
 * after the thread has finished.
 */
#ifndef EM_PUBLISHER_H
#define EM_PUBLISHER_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "bus.h"

struct publisher;

struct publisher_options {
    const struct bus_target *target; /* borrowed until publisher_free() */
    const char *state_dir;           /* the outbox's parent */
    const char *agent;
    unsigned window;    /* unconfirmed messages in flight; 0 means 1000 */
    double retry_max_s; /* the longest back-off between connection attempts; 0 means 30 */
    int heartbeat_s;    /* AMQP heartbeat; 0 means 30 */
};

struct publisher_stats {
    uint64_t confirmed; /* the highest seq confirmed (persisted in the outbox) */
    uint64_t published; /* messages sent, including repeats after reconnecting */
    uint64_t acked;     /* messages confirmed in this run */
    uint64_t connects;  /* successful connections */
    bool connected;
    bool finished; /* the thread has ended */
    bool failed;   /* it ended because the outbox could not be read */
};

/* Called on the loop thread when something changed. */
typedef void (*publisher_cb)(struct publisher *p, void *ctx);

/* Opens the outbox for reading and starts the thread. Loop thread. Returns 0 and *out,
 * or a negative EM_E* code. */
int publisher_start(uv_loop_t *loop, const struct publisher_options *o, publisher_cb cb, void *ctx,
                    struct publisher **out);

/* Tells the thread that the outbox holds events up to `seq`. Loop thread. */
void publisher_notify(struct publisher *p, uint64_t seq);

/* Asks the thread to end: it keeps publishing until everything up to the last notified
 * seq is confirmed or `drain_s` seconds have passed, then closes the connection. The
 * callback then reports `finished`. Loop thread. */
void publisher_stop(struct publisher *p, double drain_s);

/* A snapshot of the thread's state. Any thread. */
void publisher_stats(struct publisher *p, struct publisher_stats *s);

/* Waits for the thread (stop it first), closes the async handle (the loop must run once
 * more for its close callback, which frees the publisher). Loop thread. */
void publisher_free(struct publisher *p);

#endif
