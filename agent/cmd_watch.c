/* em-agent: watch: options from the command line, the environment and a config file.
 *
 * Every option has a config-file key (its long name without the dashes) and an
 * environment variable (EM_AGENT_ and the name in upper case with '_' for '-').
 * The command line wins over the environment, which wins over the file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "em_compat.h"
#include "bus.h"
#include "cli.h"
#include "cli_common.h"
#include "em_error.h"
#include "emopt.h"
#include "event.h"
#include "fsio.h"
#include "hash.h"
#include "log.h"
#include "watch.h"
#include "watcher.h"

static const char watch_usage[] =
    "Usage: em-agent watch [OPTIONS] DIR...\n"
    "\n"
    "Follow EPU output live and print every entity change once, as JSON lines (the event\n"
    "stream of `scan`). DIR is a storage root (a visit) or a session directory; sessions\n"
    "and atlases created later under it are followed too. Start it before, during or\n"
    "after EPU's run: the final entities are those `scan` gives on the final tree.\n"
    "Loader output directories (em-backend loaders --out DIR) are followed the same way:\n"
    "each metadata.json record is a dataset entity.\n"
    "\n"
    "Options (config-file key / environment variable in brackets):\n"
    "  -o, --out FILE         append events to FILE instead of stdout [out / EM_AGENT_OUT]\n"
    "  --agent NAME           the events' agent name; default: the host name\n"
    "                         [agent / EM_AGENT_AGENT]\n"
    "  --state-dir DIR        journal, seq and lock; default $STATE_DIRECTORY (the\n"
    "                         service's), else one per agent name and set of DIRs:\n"
    "                         ~/.local/state/em-agent/AGENT-HASH ($XDG_STATE_HOME too)\n"
    "                         [state-dir / EM_AGENT_STATE_DIR]\n"
    "  --from-start           emit the current state of every entity again, with new seqs\n"
    "                         (stores take them as updates); without it a restart emits\n"
    "                         only what changed since the last run\n"
    "  -j, --jobs N           parser threads for walks (default: the number of CPUs)\n"
    "                         [jobs / EM_AGENT_JOBS]\n"
    "  --poll SECONDS         poll instead of change notifications (network shares)\n"
    "                         [poll / EM_AGENT_POLL]\n"
    "  --rescan SECONDS       also walk everything this often, as insurance; default 0 (off)\n"
    "                         [rescan / EM_AGENT_RESCAN]\n"
    "  --settle MS            quiet time before a file counts as written, where the system\n"
    "                         has no close event (Windows); default 1000 [settle]\n"
    "  --change-buffer KIB    Windows: change notifications held per watched directory\n"
    "                         between two reads; default 64 (the most a network share\n"
    "                         takes); when a burst overflows it the tree is walked again\n"
    "                         (\"notifications lost\" in the log) [change-buffer]\n"
    "  --summary SECONDS      log a summary line this often; default 10 with -v, else off\n"
    "                         [summary / EM_AGENT_SUMMARY]\n"
    "  --metrics-file FILE    write Prometheus metrics (text format) to FILE every 15 s and\n"
    "                         at the end, for node_exporter's textfile collector (name it\n"
    "                         *.prom in its directory): events by type, files parsed and\n"
    "                         failed, outbox depth, lag, overflows, rescans\n"
    "                         [metrics-file / EM_AGENT_METRICS_FILE]\n"
    "  --heartbeat SECONDS    send an `agent` event (files and directories watched, outbox,\n"
    "                         lag, errors, version, host) this often and when the state\n"
    "                         changes, so em-backend can tell an idle microscope from a\n"
    "                         dead agent; default 30, 0 for none; none with --once\n"
    "                         [heartbeat / EM_AGENT_HEARTBEAT]\n"
    "  --log-file FILE        log to FILE (reopened on SIGHUP) [log-file / EM_AGENT_LOG_FILE]\n"
    "  --log-format text|json [log-format / EM_AGENT_LOG_FORMAT]\n"
    "  -v, -vv                more logging [verbose = 1|2 / EM_AGENT_VERBOSE]\n"
    "  --fsync                flush the journal to disk at every write (power-loss safety)\n"
    "                         [fsync = yes / EM_AGENT_FSYNC]\n"
    "  --once                 process what is there now, then exit [once]\n"
    "  --snapshot-every SECONDS\n"
    "                         save what the agent knows (the model snapshot in the state\n"
    "                         directory) this often when it changed, so that a start after\n"
    "                         a crash or a SIGKILL reads only the files processed since,\n"
    "                         not the whole tree; default 300, 0 for only at a clean stop\n"
    "                         (a 600,000-file visit takes 0.3 s each time)\n"
    "                         [snapshot-every / EM_AGENT_SNAPSHOT_EVERY]\n"
    "  --check SECONDS        how often to check that each watched directory is still the\n"
    "                         one first seen, and to retry directories that could not be\n"
    "                         read; default 10 [check / EM_AGENT_CHECK]\n"
    "  --incomplete-after SECONDS\n"
    "                         a document (.dm) that stays empty or cut short this long is\n"
    "                         taken as unreadable, as scan takes it: what its last complete\n"
    "                         version said is withdrawn; default 60, 0 keeps it for good\n"
    "                         [incomplete-after]\n"
    "  --exit-on-root-loss    exit 1 when a watched directory is deleted or renamed, instead\n"
    "                         of logging an error and waiting for it to come back\n"
    "                         [exit-on-root-loss = yes]\n"
    "\n"
    "Publishing to RabbitMQ (instead of printing):\n"
    "  --amqp URL             amqp[s]://user:password@host[:port]/vhost: publish each event\n"
    "                         to the exchange em.events (routing key <agent>.<type>.<op>)\n"
    "                         with publisher confirms, through a durable outbox in the state\n"
    "                         directory; while the broker is away events wait on disk\n"
    "                         [amqp / EM_AGENT_AMQP: prefer these, so that the password\n"
    "                         stays out of the process list]\n"
    "  --amqp-ca FILE         CA certificate(s) for amqps://; default the system's: the\n"
    "                         bundle in /etc/ssl, on Windows the ROOT certificate store\n"
    "                         [amqp-ca]\n"
    "  --amqp-cert FILE, --amqp-key FILE\n"
    "                         a client certificate for amqps:// [amqp-cert, amqp-key]\n"
    "  --amqp-window N        messages awaiting confirmation at once; default 1000\n"
    "                         [amqp-window]\n"
    "  --drain SECONDS        on stop, wait up to this long for the broker to confirm what\n"
    "                         the outbox holds; default 10 (the rest is sent at the next\n"
    "                         start) [drain]\n"
    "  --config FILE          read settings from FILE (key = value lines, '#' comments;\n"
    "                         `dir = PATH` may repeat); none is read unless named (the\n"
    "                         service names /etc/em-agent/agent.conf) [EM_AGENT_CONFIG]\n"
    "  EM_AGENT_DIRS          directories to watch when none is given (':'-separated)\n"
    "\n"
    "Signals: SIGTERM or SIGINT emit what is pending and exit 0; SIGHUP reopens the log\n"
    "and output files.\n"
    "A directory that cannot be read (permission denied, a name too long) is reported once\n"
    "and skipped; it is read, with everything written meanwhile, as soon as it can be\n"
    "(its permissions change, or the next --check). Symbolic links to directories are\n"
    "never followed.\n"
    "At start it says what it resumes: \"resuming STATE: N entities already emitted up to\n"
    "seq S; only changes follow\". `em-agent status` shows a state directory.\n"
    "Exit status: 0 stopped by a signal (or --once done), 1 the output, the journal or the\n"
    "watch failed (or a watched directory was lost, with --exit-on-root-loss), 2 bad usage\n"
    "or settings (no directory, an unreadable config, the state directory in use).\n";

enum opt_id {
    OPT_OUT,
    OPT_AGENT,
    OPT_STATE_DIR,
    OPT_POLL,
    OPT_RESCAN,
    OPT_SETTLE,
    OPT_CHANGE_BUFFER,
    OPT_SUMMARY,
    OPT_METRICS_FILE,
    OPT_HEARTBEAT,
    OPT_LOG_FILE,
    OPT_LOG_FORMAT,
    OPT_VERBOSE,
    OPT_FSYNC,
    OPT_ONCE,
    OPT_AMQP,
    OPT_AMQP_CA,
    OPT_AMQP_CERT,
    OPT_AMQP_KEY,
    OPT_AMQP_WINDOW,
    OPT_DRAIN,
    OPT_CHECK,
    OPT_SNAPSHOT_EVERY,
    OPT_EXIT_ON_ROOT_LOSS,
    OPT_INCOMPLETE_AFTER,
    OPT_JOBS,
    OPT_FROM_START,
    OPT_CONFIG,
    OPT_DIR,
    OPT_COUNT
};

/* Every setting is a long option, a config key and an EM_AGENT_ variable, except:
 * --from-start (the command line only: a config file saying it would re-emit at every
 * start), --config (not in a file) and the directories (arguments; `dir` keys; the
 * EM_AGENT_DIRS list). */
static const struct emopt_spec opts[OPT_COUNT] = {
    [OPT_OUT] = {"out", 'o', EMOPT_VALUE, true, false, NULL},
    [OPT_AGENT] = {"agent", 0, EMOPT_VALUE, true, false, NULL},
    [OPT_STATE_DIR] = {"state-dir", 0, EMOPT_VALUE, true, false, NULL},
    [OPT_POLL] = {"poll", 0, EMOPT_VALUE, true, false, NULL},
    [OPT_RESCAN] = {"rescan", 0, EMOPT_VALUE, true, false, NULL},
    [OPT_SETTLE] = {"settle", 0, EMOPT_VALUE, true, false, NULL},
    [OPT_CHANGE_BUFFER] = {"change-buffer", 0, EMOPT_VALUE, true, false, NULL},
    [OPT_SUMMARY] = {"summary", 0, EMOPT_VALUE, true, false, NULL},
    [OPT_METRICS_FILE] = {"metrics-file", 0, EMOPT_VALUE, true, false, NULL},
    [OPT_HEARTBEAT] = {"heartbeat", 0, EMOPT_VALUE, true, false, NULL},
    [OPT_LOG_FILE] = {"log-file", 0, EMOPT_VALUE, true, false, NULL},
    [OPT_LOG_FORMAT] = {"log-format", 0, EMOPT_VALUE, true, false, NULL},
    [OPT_VERBOSE] = {"verbose", 0, EMOPT_VALUE, true, false, NULL},
    [OPT_FSYNC] = {"fsync", 0, EMOPT_FLAG, true, false, NULL},
    [OPT_ONCE] = {"once", 0, EMOPT_FLAG, true, false, NULL},
    [OPT_AMQP] = {"amqp", 0, EMOPT_VALUE, true, false, NULL},
    [OPT_AMQP_CA] = {"amqp-ca", 0, EMOPT_VALUE, true, false, NULL},
    [OPT_AMQP_CERT] = {"amqp-cert", 0, EMOPT_VALUE, true, false, NULL},
    [OPT_AMQP_KEY] = {"amqp-key", 0, EMOPT_VALUE, true, false, NULL},
    [OPT_AMQP_WINDOW] = {"amqp-window", 0, EMOPT_VALUE, true, false, NULL},
    [OPT_DRAIN] = {"drain", 0, EMOPT_VALUE, true, false, NULL},
    [OPT_CHECK] = {"check", 0, EMOPT_VALUE, true, false, NULL},
    [OPT_SNAPSHOT_EVERY] = {"snapshot-every", 0, EMOPT_VALUE, true, false, NULL},
    [OPT_EXIT_ON_ROOT_LOSS] = {"exit-on-root-loss", 0, EMOPT_FLAG, true, false, NULL},
    [OPT_INCOMPLETE_AFTER] = {"incomplete-after", 0, EMOPT_VALUE, true, false, NULL},
    [OPT_JOBS] = {"jobs", 'j', EMOPT_VALUE, true, false, NULL},
    [OPT_FROM_START] = {"from-start", 0, EMOPT_FLAG, false, true, NULL},
    [OPT_CONFIG] = {"config", 0, EMOPT_VALUE, true, true, NULL},
    [OPT_DIR] = {"dir", 0, EMOPT_ARGS, true, false, "EM_AGENT_DIRS"},
};

#define MAX_DIRS 64

char *state_service_dir(void)
{
    const char *v = getenv("STATE_DIRECTORY"); /* systemd's StateDirectory= */
    if (v && *v) {
        const char *colon = strchr(v, ':');
        return colon ? em_strndup(v, (size_t)(colon - v)) : strdup(v);
    }
    return NULL;
}

char *state_base_dir(void)
{
    const char *v;
#ifdef _WIN32
    v = getenv("LOCALAPPDATA");
    if (v && *v)
        return fsio_join(v, "em-agent");
#endif
    v = getenv("XDG_STATE_HOME");
    if (v && *v)
        return fsio_join(v, "em-agent");
    char home[4096];
    size_t len = sizeof(home);
    if (uv_os_homedir(home, &len) == 0) {
        char *a = fsio_join(home, ".local/state");
        char *b = a ? fsio_join(a, "em-agent") : NULL;
        free(a);
        return b;
    }
    return NULL;
}

/* The absolute form of `dir` (symbolic links resolved when it exists). */
static char *absolute(const char *dir)
{
    char *abs = fsio_realpath(dir);
    if (abs || fsio_is_absolute(dir))
        return abs ? abs : strdup(dir);
    char cwd[4096];
    size_t len = sizeof(cwd);
    return uv_cwd(cwd, &len) == 0 ? fsio_join(cwd, dir) : strdup(dir);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char *state_default_dir(const char *agent, char *const *dirs, size_t ndirs)
{
    char *svc = state_service_dir();
    if (svc)
        return svc;
    char *base = state_base_dir();
    if (!base || ndirs == 0)
        return base;
    /* One state per agent name and set of roots: watching another tree never inherits
     * an unrelated journal. The roots are hashed absolute and sorted. */
    char **abs = calloc(ndirs, sizeof(*abs));
    struct hash64 h;
    hash64_init(&h);
    bool ok = abs != NULL;
    for (size_t i = 0; ok && i < ndirs; i++)
        ok = (abs[i] = absolute(dirs[i])) != NULL;
    if (ok) {
        qsort(abs, ndirs, sizeof(*abs), cmp_str);
        for (size_t i = 0; i < ndirs; i++)
            hash64_update(&h, abs[i], strlen(abs[i]) + 1);
    }
    for (size_t i = 0; abs && i < ndirs; i++)
        free(abs[i]);
    free(abs);
    if (!ok) {
        free(base);
        return NULL;
    }
    char name[160];
    size_t n = 0;
    for (const char *p = agent; *p && n < 100; p++)
        name[n++] = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                            (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' || *p == '_'
                        ? *p
                        : '_';
    snprintf(name + n, sizeof(name) - n, "-%08llx",
             (unsigned long long)(hash64_final(&h) & 0xffffffffu));
    char *dir = fsio_join(base, name);
    free(base);
    return dir;
}

int cmd_watch(int argc, char **argv)
{
    struct emopt opt;
    if (emopt_init(&opt, "em-agent", "watch", watch_usage, "EM_AGENT_", opts, OPT_COUNT) < 0)
        return EXIT_BAD_INPUT;
    int status = emopt_argv(&opt, argc, argv);
    if (status < 0)
        status = emopt_env(&opt);
    /* Only the file named: the system's /etc/em-agent/agent.conf is the service's (its unit
     * names it), not every interactive run's. */
    const char *config = emopt_get(&opt, OPT_CONFIG);
    if (status < 0 && config)
        status = emopt_file(&opt, config);
    if (status >= 0)
        goto out;
    status = EXIT_USAGE;
    int verbose = cli_verbose;
    const char *val[OPT_COUNT];
    for (int i = 0; i < OPT_COUNT; i++)
        val[i] = emopt_get(&opt, i);
    size_t ndirs;
    char *const *dirs = emopt_args(&opt, &ndirs);
    if (!ndirs) {
        fprintf(stderr, "em-agent: watch: which directory? (see --help)\n");
        goto out;
    }
    if (ndirs > MAX_DIRS) {
        fprintf(stderr, "em-agent: watch: at most %d directories\n", MAX_DIRS);
        goto out;
    }
    /* Logging. */
    if (val[OPT_VERBOSE]) {
        char *end;
        long v = strtol(val[OPT_VERBOSE], &end, 10);
        if (end == val[OPT_VERBOSE] || *end || v < 0 || v > 2) {
            fprintf(stderr, "em-agent: watch: verbose takes 0, 1 or 2\n");
            goto out;
        }
        if (v > verbose)
            verbose = (int)v;
    }
    enum em_log_level level = em_log_threshold;
    if (verbose >= 2)
        level = EM_LOG_DEBUG;
    else if (verbose == 1 && level < EM_LOG_INFO)
        level = EM_LOG_INFO;
    enum em_log_format format = em_log_get_format();
    if (val[OPT_LOG_FORMAT]) {
        if (strcmp(val[OPT_LOG_FORMAT], "json") == 0)
            format = EM_LOG_JSON;
        else if (strcmp(val[OPT_LOG_FORMAT], "text") == 0)
            format = EM_LOG_TEXT;
        else {
            fprintf(stderr, "em-agent: watch: --log-format takes 'text' or 'json'\n");
            goto out;
        }
    }
    em_log_setup(level, format);
    if (val[OPT_LOG_FILE] && !watch_check_only && em_log_open(val[OPT_LOG_FILE]) < 0) {
        char msg[512];
        snprintf(msg, sizeof(msg), "em-agent: watch: %s: cannot open the log file",
                 val[OPT_LOG_FILE]);
        fprintf(stderr, "%s\n", msg);
        if (watch_as_service)
            service_report_error(msg);
        goto out;
    }
    if (watch_as_service &&
        (!val[OPT_LOG_FILE] ||
         (!val[OPT_AMQP] && (!val[OPT_OUT] || strcmp(val[OPT_OUT], "-") == 0)))) {
        /* Nobody reads a service's stdout or stderr: its events and its messages would be
         * lost. */
        const char *msg = !val[OPT_LOG_FILE]
                              ? "em-agent: the service needs a log file (--log-file FILE): "
                                "nobody reads a service's stderr"
                              : "em-agent: the service needs a durable sink for its events "
                                "(--out FILE or --amqp URL): nobody reads a service's stdout";
        if (watch_check_only) {
            fprintf(stderr, "%s\n", msg);
            goto out;
        }
        em_log(EM_LOG_ERROR, "%s", msg + 10);
        service_report_error(msg);
        goto out;
    }
    struct watch_options o = {0};
    double settle = 1000, summary = level >= EM_LOG_INFO ? 10 : 0;
    o.check_s = 10;
    o.snapshot_s = 300;
    o.incomplete_s = 60;
    o.heartbeat_s = 30;
    if (!emopt_seconds(&opt, OPT_POLL, 0, 86400, &o.poll_s) ||
        !emopt_seconds(&opt, OPT_INCOMPLETE_AFTER, 0, 86400, &o.incomplete_s) ||
        !emopt_seconds(&opt, OPT_CHECK, 0, 86400, &o.check_s) ||
        !emopt_seconds(&opt, OPT_SNAPSHOT_EVERY, 0, 86400, &o.snapshot_s) ||
        !emopt_seconds(&opt, OPT_RESCAN, 0, 86400, &o.rescan_s) ||
        !emopt_seconds(&opt, OPT_SUMMARY, 0, 86400, &summary) ||
        !emopt_seconds(&opt, OPT_HEARTBEAT, 0, 86400, &o.heartbeat_s) ||
        !emopt_double(&opt, OPT_SETTLE, 0, 86400000, &settle))
        goto out;
    long jobs = (long)uv_available_parallelism();
    if (!emopt_long(&opt, OPT_JOBS, 1, 64, &jobs))
        goto out;
    o.threads = (unsigned)jobs;
    long change_kib = WATCHER_CHANGE_BUFFER / 1024;
    if (!emopt_long(&opt, OPT_CHANGE_BUFFER, 4, 16384, &change_kib))
        goto out;
    o.change_buffer = (size_t)change_kib * 1024;
    if (val[OPT_POLL] && o.poll_s < 0.01) {
        fprintf(stderr, "em-agent: watch: --poll takes at least 0.01 seconds\n");
        goto out;
    }
    char agent[256];
    if (val[OPT_AGENT])
        snprintf(agent, sizeof(agent), "%s", val[OPT_AGENT]);
    else
        event_default_agent(agent, sizeof(agent));
    char *state_dir =
        val[OPT_STATE_DIR] ? strdup(val[OPT_STATE_DIR]) : state_default_dir(agent, dirs, ndirs);
    if (!state_dir) {
        fprintf(stderr, "em-agent: watch: no state directory: give --state-dir\n");
        goto out;
    }
    fsio_slashes(state_dir); /* Windows: one separator in every message about it */
    o.dirs = (const char *const *)dirs;
    o.ndirs = ndirs;
    o.agent = agent;
    o.state_dir = state_dir;
    o.out_path = val[OPT_OUT] && strcmp(val[OPT_OUT], "-") != 0 ? val[OPT_OUT] : NULL;
    o.settle_ms = (unsigned)settle;
    o.summary_s = summary;
    o.metrics_path = val[OPT_METRICS_FILE];
    o.fsync = emopt_yes(&opt, OPT_FSYNC);
    o.exit_idle = emopt_yes(&opt, OPT_ONCE);
    o.exit_on_root_loss = emopt_yes(&opt, OPT_EXIT_ON_ROOT_LOSS);
    o.from_start = emopt_yes(&opt, OPT_FROM_START);
    o.config_path = config;
    struct bus_target bus = {0};
    o.drain_s = 10;
    if (val[OPT_AMQP]) {
        char reason[256];
        if (o.out_path) {
            fprintf(stderr, "em-agent: watch: --out and --amqp exclude each other\n");
            free(state_dir);
            goto out;
        }
        if (bus_target_parse(&bus, val[OPT_AMQP], val[OPT_AMQP_CA], val[OPT_AMQP_CERT],
                             val[OPT_AMQP_KEY], reason, sizeof(reason)) < 0) {
            fprintf(stderr, "em-agent: watch: --amqp: %s\n", reason);
            free(state_dir);
            goto out;
        }
        o.amqp = &bus;
        long window = 0;
        if (!emopt_long(&opt, OPT_AMQP_WINDOW, 1, 100000, &window)) {
            bus_target_free(&bus);
            free(state_dir);
            goto out;
        }
        o.amqp_window = (unsigned)window;
        if (!emopt_seconds(&opt, OPT_DRAIN, 0, 86400, &o.drain_s)) {
            bus_target_free(&bus);
            free(state_dir);
            goto out;
        }
    }
    if (watch_check_only) {
        status = EXIT_OK; /* the settings are good: `service install` goes on */
        bus_target_free(&bus);
        free(state_dir);
        goto out;
    }
    status = watch_run(&o);
    bus_target_free(&bus);
    free(state_dir);
    em_log_close();
out:
    emopt_free(&opt);
    return status;
}
