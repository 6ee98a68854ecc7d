/* consume.h — the consumer loop of `em-backend consume` (DESIGN §7–8): the bus into the
 * store, batch by batch, acknowledged only once stored.
 *
 * One thread, one AMQP connection, one store connection. Messages are read with manual
 * acks and a prefetch window and gathered into a batch; a batch is written in one store
 * transaction and only then acknowledged (in one AMQP transaction together with the
 * dead letters of the batch's undecodable messages). A crash anywhere before the ack
 * leaves the messages on the broker, which delivers them again; the store's idempotent
 * upsert makes the repeat harmless.
 */
#ifndef EM_CONSUME_H
#define EM_CONSUME_H

#include "bus.h"

struct consume_settings {
    struct bus_target target; /* borrowed */
    const char *store_url;
    unsigned prefetch, batch_max, batch_ms; /* batch_max <= prefetch */
    double idle_exit_s;                     /* 0: run until stopped */
};

/* Runs until consume_request_stop() (or the idle time). Returns BE_OK, BE_FAILED when
 * stopped before the store could be opened, or BE_USAGE when out of memory at start. */
int consume_run(const struct consume_settings *s);

/* Asks the loop to finish the batch in hand and return; async-signal-safe. */
void consume_request_stop(void);

#endif
