/* em-agent status: what a watch's state directory says, without disturbing the watch. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "cli.h"
#include "cli_common.h"
#include "em_error.h"
#include "em_compat.h"
#include "emopt.h"
#include "event.h"
#include "fsio.h"
#include "journal.h"
#include "outbox.h"
#include "watch.h"

static const char status_usage[] =
    "Usage: em-agent status [--state-dir DIR | [--agent NAME] DIR...] [--json]\n"
    "\n"
    "Show what a watch has done, read from its state directory (safe while it runs):\n"
    "agent name, last seq, entities emitted, files known, the model snapshot a restart\n"
    "resumes from (and how many files it reads again), events waiting in the outbox\n"
    "(for --amqp), when the last event was emitted, and the pid of the running watch.\n"
    "\n"
    "Which state directory:\n"
    "  --state-dir DIR   this one\n"
    "  DIR...            the default one of `em-agent watch DIR...` (same --agent)\n"
    "  (neither)         $STATE_DIRECTORY if set, else every state directory under\n"
    "                    ~/.local/state/em-agent ($XDG_STATE_HOME/em-agent)\n"
    "\n"
    "Options:\n"
    "  --agent NAME      the agent name the watch used (default: this host's name)\n"
    "  --json            one JSON object per state directory\n"
    "  -h, --help        show this help\n"
    "\n"
    "Exit status: 0 shown; 1 no state found there, or it cannot be read; 2 usage error.\n";

/* Events in the outbox after the confirmed mark, and whether there is an outbox. */
static int outbox_waiting(const char *state_dir, bool *present, uint64_t *waiting)
{
    *present = false;
    *waiting = 0;
    char *dir = fsio_join(state_dir, "outbox");
    if (!dir)
        return -EM_ENOMEM;
    struct fsio_stat st;
    bool there = fsio_stat(dir, &st) == 0 && st.type == FSIO_DIR;
    free(dir);
    if (!there)
        return 0;
    *present = true;
    uint64_t first, last;
    return outbox_count_waiting(state_dir, waiting, &first, &last);
}

/* Whether the snapshot at `path` is of the format this build reads. */
static bool snapshot_format_ok(const char *path)
{
    char head[sizeof(WATCH_SNAPSHOT_MAGIC) + 1] = {0};
    FILE *f = path ? fopen(path, "rb") : NULL;
    size_t n = f ? fread(head, 1, sizeof(head) - 1, f) : 0;
    if (f)
        fclose(f);
    return n == sizeof(head) - 1 && strncmp(head, WATCH_SNAPSHOT_MAGIC "\t", n) == 0;
}

/* The model snapshots (model-HASH, one per watched directory) and how many a start would
 * use: those of this build's format whose mark file names the journal's last mark. */
static void snapshots(const char *state_dir, uint64_t mark_id, size_t *total, size_t *usable)
{
    *total = *usable = 0;
    struct fsio_entry *e;
    size_t n;
    if (fsio_list(state_dir, &e, &n) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        const char *name = e[i].name;
        if (e[i].type != FSIO_FILE || strncmp(name, "model-", 6) != 0 || strlen(name) != 22)
            continue;
        (*total)++;
        char mark[64];
        snprintf(mark, sizeof(mark), "%s.mark", name);
        char *mp = fsio_join(state_dir, mark);
        uint64_t id = mp ? fsio_read_number(mp) : 0;
        free(mp);
        char *sp = id != 0 && id == mark_id ? fsio_join(state_dir, name) : NULL;
        *usable += sp && snapshot_format_ok(sp);
        free(sp);
    }
    fsio_entries_free(e, n);
}

static void format_time(uint64_t us, char *buf, size_t cap)
{
    if (!us) {
        snprintf(buf, cap, "never");
        return;
    }
    em_utc_text((time_t)(us / 1000000u), buf, cap);
}

/* Shows one state directory. Returns 0, or 1 when it holds no readable state. */
static int show(const char *state_dir, bool json)
{
    struct journal *jr;
    char reason[512];
    int rc = journal_peek(&jr, state_dir, reason, sizeof(reason));
    if (rc < 0) {
        if (rc == -EM_ENOENT)
            fprintf(stderr, "em-agent: %s: no watch state here (no journal)\n", state_dir);
        else
            fprintf(stderr, "em-agent: %s\n", reason);
        return 1;
    }
    struct journal_info j;
    journal_info(jr, &j);
    long pid = journal_lock_holder(state_dir);
    bool have_outbox;
    uint64_t waiting;
    int orc = outbox_waiting(state_dir, &have_outbox, &waiting);
    char when[64];
    format_time(j.last_event_us, when, sizeof(when));
    size_t live = journal_live_entities(jr);
    size_t nsnap, usable, after = journal_files_after_mark(jr);
    snapshots(state_dir, j.mark_id, &nsnap, &usable);
    uint64_t undelivered = j.last_seq > j.delivered ? j.last_seq - j.delivered : 0;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "state_dir", state_dir);
        cJSON_AddStringToObject(o, "agent", j.agent);
        char seq[32];
        snprintf(seq, sizeof(seq), "%" PRIu64, j.last_seq);
        cJSON_AddRawToObject(o, "last_seq", seq); /* 16 digits: beyond a double's */
        cJSON_AddNumberToObject(o, "entities", (double)live);
        cJSON_AddNumberToObject(o, "files", (double)j.files);
        cJSON_AddNumberToObject(o, "snapshots", (double)nsnap);
        cJSON_AddNumberToObject(o, "snapshots_usable", (double)usable);
        cJSON_AddNumberToObject(o, "files_after_snapshot", (double)after);
        cJSON_AddNumberToObject(o, "undelivered", (double)undelivered);
        if (have_outbox && orc == 0)
            cJSON_AddNumberToObject(o, "outbox_waiting", (double)waiting);
        else
            cJSON_AddNullToObject(o, "outbox_waiting");
        if (j.last_event_us)
            cJSON_AddStringToObject(o, "last_event_at", when);
        else
            cJSON_AddNullToObject(o, "last_event_at");
        if (pid)
            cJSON_AddNumberToObject(o, "pid", (double)pid);
        else
            cJSON_AddNullToObject(o, "pid");
        cJSON_AddBoolToObject(o, "running", pid != 0);
        char *line = cJSON_PrintUnformatted(o);
        if (line)
            printf("%s\n", line);
        cJSON_free(line);
        cJSON_Delete(o);
    } else {
        printf("%s\n", state_dir);
        printf("  agent:          %s\n", j.agent);
        if (pid)
            printf("  running:        yes, pid %ld (holds the lock)\n", pid);
        else
            printf("  running:        no\n");
        printf("  last seq:       %" PRIu64 "\n", j.last_seq);
        printf("  entities:       %zu emitted (and not deleted)\n", live);
        printf("  files known:    %zu\n", j.files);
        if (usable)
            printf("  snapshot:       %zu of %zu usable; %zu files processed after it (read "
                   "again at the next start)\n",
                   usable, nsnap, after);
        else
            printf("  snapshot:       none usable (the next start reads every file)\n");
        printf("  last event:     %s\n", when);
        if (undelivered)
            printf("  not delivered:  %" PRIu64 " events (sent again at the next start)\n",
                   undelivered);
        if (have_outbox && orc == 0)
            printf("  outbox:         %" PRIu64 " events waiting for the broker\n", waiting);
        else if (have_outbox)
            printf("  outbox:         cannot be read: %s\n", em_strerror(orc));
    }
    journal_close(jr);
    return 0;
}

/* Every subdirectory of `base` holding a journal (and base itself, the layout before
 * per-agent directories). Returns how many were shown, or -1 when base cannot be read. */
static int show_all(const char *base, bool json, int *status)
{
    struct fsio_entry *e;
    size_t n;
    int rc = fsio_list(base, &e, &n);
    if (rc < 0)
        return -1;
    int shown = 0;
    struct fsio_stat st;
    char *own = fsio_join(base, "journal");
    if (own && fsio_stat(own, &st) == 0) {
        *status |= show(base, json);
        shown++;
    }
    free(own);
    for (size_t i = 0; i < n; i++) {
        if (e[i].type != FSIO_DIR)
            continue;
        char *dir = fsio_join(base, e[i].name);
        char *jp = dir ? fsio_join(dir, "journal") : NULL;
        if (jp && fsio_stat(jp, &st) == 0) {
            if (shown && !json)
                printf("\n");
            *status |= show(dir, json);
            shown++;
        }
        free(jp);
        free(dir);
    }
    fsio_entries_free(e, n);
    return shown;
}

enum { T_STATE_DIR, T_AGENT, T_JSON, T_COUNT };
static const struct emopt_spec status_opts[T_COUNT] = {
    [T_STATE_DIR] = {"state-dir", 0, EMOPT_VALUE, false, false, NULL},
    [T_AGENT] = {"agent", 0, EMOPT_VALUE, false, false, NULL},
    [T_JSON] = {"json", 0, EMOPT_FLAG, false, false, NULL},
};

int cmd_status(int argc, char **argv)
{
    struct emopt opt;
    if (emopt_init(&opt, "em-agent", "status", status_usage, NULL, status_opts, T_COUNT) < 0)
        return EXIT_BAD_INPUT;
    int status = emopt_argv(&opt, argc, argv);
    if (status >= 0)
        goto out;
    status = EXIT_USAGE;
    const char *state_dir = emopt_get(&opt, T_STATE_DIR), *agent = emopt_get(&opt, T_AGENT);
    bool json = emopt_yes(&opt, T_JSON);
    size_t ndirs;
    char *const *dirs = emopt_args(&opt, &ndirs);
    if (state_dir && ndirs) {
        fprintf(stderr, "em-agent: status: give --state-dir or the watched directories, not "
                        "both\n");
        goto out;
    }
    if (state_dir) {
        status = show(state_dir, json);
        goto out;
    }
    char host[256];
    if (!agent) {
        event_default_agent(host, sizeof(host));
        agent = host;
    }
    char *svc = state_service_dir();
    if (svc || ndirs) {
        char *dir = svc ? svc : state_default_dir(agent, dirs, ndirs);
        if (!dir) {
            fprintf(stderr, "em-agent: status: no state directory (no home directory): give "
                            "--state-dir\n");
            status = EXIT_BAD_INPUT;
            goto out;
        }
        status = show(dir, json);
        free(dir);
        goto out;
    }
    char *base = state_base_dir();
    int st = 0;
    int shown = base ? show_all(base, json, &st) : -1;
    if (shown <= 0) {
        fprintf(stderr,
                "em-agent: %s: no watch state found; give --state-dir DIR, or the directories "
                "the watch follows\n",
                base ? base : "~/.local/state/em-agent");
        status = EXIT_BAD_INPUT;
    } else {
        status = st ? EXIT_BAD_INPUT : EXIT_OK;
    }
    free(base);
out:
    emopt_free(&opt);
    return status;
}
