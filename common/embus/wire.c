#include "wire.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const char *const type_names[WIRE_TYPE_COUNT] = {"session",  "atlas",      "gridsquare",
                                                        "foilhole", "micrograph", "aborted_session",
                                                        "dataset",  "agent"};

static const char *const op_names[WIRE_OP_COUNT] = {"upsert", "delete"};

const char *wire_type_name(enum wire_type t)
{
    return (unsigned)t < WIRE_TYPE_COUNT ? type_names[t] : "unknown";
}

int wire_type_from_name(const char *name)
{
    for (int t = 0; t < WIRE_TYPE_COUNT; t++)
        if (strcmp(name, type_names[t]) == 0)
            return t;
    return -1;
}

const char *wire_op_name(enum wire_op op)
{
    return (unsigned)op < WIRE_OP_COUNT ? op_names[op] : "unknown";
}

int wire_routing_key(char *buf, size_t cap, const char *agent, const char *type, const char *op)
{
    int n = snprintf(buf, cap, "%s.%s.%s", agent, type, op);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int wire_message_id(char *buf, size_t cap, const char *agent, uint64_t seq)
{
    int n = snprintf(buf, cap, "%s:%" PRIu64, agent, seq);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}
