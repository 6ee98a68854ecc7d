/* wire.h — the one definition of the entity event as it travels (DESIGN §5, §7).
 *
 * The agent writes events and the backend reads them; both take the names, version and
 * limits from here, so the two cannot drift apart. An event is one JSON object:
 * {"v":1,"seq":N,"agent":A,"type":T,"op":"upsert"|"delete","key":{...},"data":{...}|null,
 *  "source":{"path":P,"size":S,"mtime":M},"emitted_at":E}
 * On the bus it is published to the topic exchange WIRE_EXCHANGE with the routing key
 * "<agent>.<type>.<op>" and the message id "<agent>:<seq>" (the consumer's idempotence key).
 */
#ifndef EM_WIRE_H
#define EM_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define WIRE_VERSION 1

/* The largest event line the system takes: a larger one is refused where it is made and
 * is poison where it is received. Real events are a few kB. */
#define WIRE_MAX_BYTES (8u << 20)

/* aborted_session: a session directory holding EPU files but no usable EpuSession.dm (EPU
 * aborted the grid, or its session file cannot be read). It has no session id, so its
 * files are not emitted; the event says that the directory is there, keyed by its path
 * relative to the watched (or scanned) directory.
 *
 * dataset: a loader's output directory (agent/dataset.h), keyed by the loader and the
 * record's id.
 *
 * agent: an agent's heartbeat (DESIGN §12), keyed by the agent's name: what it watches
 * and how it is doing. Not made from files, so `scan` never emits one and the entity
 * export leaves it out; the store keeps the newest per agent. */
enum wire_type {
    WIRE_SESSION,
    WIRE_ATLAS,
    WIRE_GRIDSQUARE,
    WIRE_FOILHOLE,
    WIRE_MICROGRAPH,
    WIRE_ABORTED_SESSION,
    WIRE_DATASET,
    WIRE_AGENT,
    WIRE_TYPE_COUNT
};

enum wire_op { WIRE_UPSERT, WIRE_DELETE, WIRE_OP_COUNT };

/* "session", "atlas", "gridsquare", "foilhole", "micrograph", "aborted_session", "dataset",
 * "agent";
 * "unknown" for anything else. */
const char *wire_type_name(enum wire_type t);

/* The type named `name`, or -1. */
int wire_type_from_name(const char *name);

/* "upsert" or "delete" ("unknown" for anything else). */
const char *wire_op_name(enum wire_op op);

/* Writes "<agent>.<type>.<op>" into buf. Returns 0, or -1 when it does not fit. */
int wire_routing_key(char *buf, size_t cap, const char *agent, const char *type, const char *op);

/* Writes "<agent>:<seq>" into buf. Returns 0, or -1 when it does not fit. */
int wire_message_id(char *buf, size_t cap, const char *agent, uint64_t seq);

#endif
