/* em-backend consume: options and signals; the loop is consume.c. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "bus.h"
#include "consume.h"
#include "rules.h"
#include "store.h"
#include "emopt.h"

static const char consume_usage[] =
    "Usage: em-backend consume [--amqp URL] [--store URL] [OPTIONS]\n"
    "\n"
    "Reads entity events from RabbitMQ and keeps the metadata store up to date. Declares\n"
    "what it needs: the exchange em.events, the durable queue em.backend bound to it\n"
    "with '#', and the dead-letter exchange and queue em.dead. Several consumers may\n"
    "share the queue. Runs until SIGTERM or SIGINT (it finishes the batch in hand).\n"
    "\n"
    "  --amqp URL        amqp[s]://user:password@host[:port]/vhost [EM_BACKEND_AMQP]\n"
    "  --store URL       sqlite:PATH or postgresql://user@host/database [EM_BACKEND_STORE]\n"
    "  --amqp-ca FILE    CA certificate(s) for amqps://; default the system bundle\n"
    "  --amqp-cert FILE, --amqp-key FILE   a client certificate for amqps://\n"
    "  --prefetch N      unacknowledged messages the broker may send ahead; default 2000\n"
    "  --batch N         events per store transaction; default 1000 (at most --prefetch)\n"
    "  --batch-ms MS     commit a partial batch after this long; default 50\n"
    "  --idle-exit SECONDS  exit 0 once no message has come for this long (tests, catch-up)\n"
    "  -v, -vv           more logging (progress every 10 s with -v)\n"
    "  --movies BASE_URL a rule: every micrograph stored makes a `movie` job (once per\n"
    "                    micrograph) fetching its movie from BASE_URL + the micrograph's\n"
    "                    path (the acquisition share as this machine sees it:\n"
    "                    file:///mnt/epu/, smb://acq-pc/epu/); `em-backend loaders` runs\n"
    "                    them [EM_BACKEND_MOVIES]\n"
    "  --rules FILE      jobs from events, one rule a line: TYPE LOADER ARGS… with\n"
    "                    {path}, {session_id}, {micrograph_uuid}, … from the event, e.g.\n"
    "                    `micrograph movie file:///mnt/epu/ {path}`; each rule fires once\n"
    "                    per entity (README: Loaders) [EM_BACKEND_RULES]\n"
    "\n"
    "A message that is not a valid event (or one the store refuses for its own values)\n"
    "goes to em.dead unchanged, with the headers x-em-reason and x-em-routing-key, and is\n"
    "acknowledged, so it never blocks the queue (see `em-backend dead`). When the store\n"
    "fails (full, I/O, locked, busy, connection lost) or the broker does, nothing is\n"
    "dead-lettered or acknowledged: the broker delivers the messages again, and consume\n"
    "retries with back-off (0.25 s doubling to 30 s), logging once per change of state.\n"
    "Exit status: 0 stopped by a signal or --idle-exit; 1 stopped before the store could be\n"
    "opened; 2 bad usage or settings.\n";

static void on_stop(int sig)
{
    (void)sig;
    consume_request_stop();
}

enum {
    C_AMQP,
    C_STORE,
    C_CA,
    C_CERT,
    C_KEY,
    C_PREFETCH,
    C_BATCH,
    C_BATCH_MS,
    C_IDLE,
    C_MOVIES,
    C_RULES,
    C_COUNT
};
static const struct emopt_spec consume_opts[C_COUNT] = {
    [C_AMQP] = {"amqp", 0, EMOPT_VALUE, true, false, NULL},
    [C_STORE] = {"store", 0, EMOPT_VALUE, true, false, NULL},
    [C_CA] = {"amqp-ca", 0, EMOPT_VALUE, false, false, NULL},
    [C_CERT] = {"amqp-cert", 0, EMOPT_VALUE, false, false, NULL},
    [C_KEY] = {"amqp-key", 0, EMOPT_VALUE, false, false, NULL},
    [C_PREFETCH] = {"prefetch", 0, EMOPT_VALUE, false, false, NULL},
    [C_BATCH] = {"batch", 0, EMOPT_VALUE, false, false, NULL},
    [C_BATCH_MS] = {"batch-ms", 0, EMOPT_VALUE, false, false, NULL},
    [C_IDLE] = {"idle-exit", 0, EMOPT_VALUE, false, false, NULL},
    [C_MOVIES] = {"movies", 0, EMOPT_VALUE, true, false, NULL},
    [C_RULES] = {"rules", 0, EMOPT_VALUE, true, false, NULL},
};

static int consume_main(const struct emopt *o)
{
    const char *amqp = emopt_get(o, C_AMQP);
    static struct rules rules;
    char why[600];
    if (be_rules(&rules, emopt_get(o, C_MOVIES), emopt_get(o, C_RULES), why, sizeof(why)) < 0)
        return emopt_usage_error(o, "%s", why);
    store_rules = rules.n ? &rules : NULL;
    size_t nargs;
    char *const *args = emopt_args(o, &nargs);
    if (nargs)
        return emopt_usage_error(o, "%s: unknown argument (see 'em-backend help consume')",
                                 args[0]);
    long pf = 2000, bm = 1000, ms = 50, idle_s = 0;
    if (!emopt_long(o, C_PREFETCH, 1, 65535, &pf) || !emopt_long(o, C_BATCH, 1, 65535, &bm) ||
        !emopt_long(o, C_BATCH_MS, 0, 60000, &ms) || !emopt_long(o, C_IDLE, 1, 86400, &idle_s))
        return BE_USAGE;
    if (bm > pf) {
        fprintf(stderr,
                "em-backend: consume: --batch %ld is larger than --prefetch %ld: a "
                "batch could never fill\n",
                bm, pf);
        return BE_USAGE;
    }
    if (!amqp) {
        fprintf(stderr, "em-backend: consume: which broker? give --amqp amqp://… (or set "
                        "EM_BACKEND_AMQP)\n");
        return BE_USAGE;
    }
    struct consume_settings c;
    memset(&c, 0, sizeof(c));
    c.store_url = be_store_url(emopt_get(o, C_STORE));
    if (!c.store_url)
        return BE_USAGE;
    char reason[256];
    if (bus_target_parse(&c.target, amqp, emopt_get(o, C_CA), emopt_get(o, C_CERT),
                         emopt_get(o, C_KEY), reason, sizeof(reason)) < 0) {
        fprintf(stderr, "em-backend: consume: --amqp: %s\n", reason);
        return BE_USAGE;
    }
    c.prefetch = (unsigned)pf;
    c.batch_max = (unsigned)bm;
    c.batch_ms = (unsigned)ms;
    c.idle_exit_s = (double)idle_s;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    int status = consume_run(&c);
    bus_target_free(&c.target);
    return status;
}

int cmd_consume(int argc, char **argv)
{
    static const struct emopt_command c = {"em-backend", "consume", consume_usage, "EM_BACKEND_",
                                           consume_opts, C_COUNT,   consume_main};
    return emopt_run(&c, argc, argv);
}
