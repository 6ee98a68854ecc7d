/* em-backend: the consumer side (DESIGN §1, §7–8). */
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "cli_common.h"
#include "loaders.h"
#include "log.h"

static const char main_usage[] =
    "Usage: em-backend [OPTIONS] COMMAND [ARGS]\n"
    "\n"
    "Builds and reads the metadata store from em-agent's entity events.\n"
    "\n"
    "Commands:\n"
    "  consume   read events from RabbitMQ into the store (many agents, many consumers)\n"
    "  ingest    load an event file, or em-agent's output through a pipe, into the store\n"
    "  query     show sessions and their progress, a session's squares, a square's foil\n"
    "            holes, recent micrographs, atlases, or export every entity\n"
    "  dead      list the dead letters (events consume could not store) or replay them\n"
    "  job       loader jobs: add, list, show, cancel, retry\n"
    "  loaders   run loader jobs: fetch, verify and record datasets\n"
    "  catalog   the datasets' catalog and validation report\n"
    "  serve     the live web view, JSON API, live events and metrics of the store\n"
    "  help [COMMAND]  show help for a command\n"
    "\n"
    "Stores: --store sqlite:PATH (embedded, the default kind) or\n"
    "        --store postgresql://user[:password]@host[:port]/database\n"
    "\n"
    "Options (before or after the command):\n"
    "  -v, -vv                more logging on stderr (info, debug)\n"
    "  -q, --quiet            errors only: no summary\n"
    "  --log-format text|json log lines as text (default) or JSON objects\n"
    "  --version              print the version\n"
    "  -h, --help             show this help\n"
    "\n"
    "Exit status: 0 success; 1 bad input (rejected events) or a failed run (the store or\n"
    "the broker failed, a file cannot be read); 2 usage or settings (the reason is\n"
    "printed). Messages read \"em-backend: subject: reason\".\n";

static int dispatch(const char *cmd, int argc, char **argv)
{
    if (strcmp(cmd, "consume") == 0)
        return cmd_consume(argc, argv);
    if (strcmp(cmd, "ingest") == 0)
        return cmd_ingest(argc, argv);
    if (strcmp(cmd, "dead") == 0)
        return cmd_dead(argc, argv);
    if (strcmp(cmd, "query") == 0)
        return cmd_query(argc, argv);
    if (strcmp(cmd, "catalog") == 0)
        return cmd_catalog(argc, argv);
    if (strcmp(cmd, "job") == 0)
        return cmd_job(argc, argv);
    if (strcmp(cmd, "loaders") == 0)
        return cmd_loaders(argc, argv);
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve(argc, argv);
    fprintf(stderr, "em-backend: %s: unknown command (see 'em-backend --help')\n", cmd);
    return BE_USAGE;
}

int main(int argc, char **argv)
{
    int early = cli_globals("em-backend", EM_VERSION, &argc, argv);
    if (early >= 0)
        return early;
    if (argc < 2) {
        fprintf(stderr,
                "em-backend: which command? (consume, ingest, query, dead, job, loaders, "
                "catalog, serve)\n\n%s",
                main_usage);
        return BE_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
        fputs(main_usage, stdout);
        return BE_OK;
    }
    if (strcmp(cmd, "help") == 0) {
        if (argc < 3) {
            fputs(main_usage, stdout);
            return BE_OK;
        }
        char help[] = "--help";
        char *args[] = {help, NULL};
        return dispatch(argv[2], 1, args);
    }
    if (cmd[0] == '-') {
        fprintf(stderr, "em-backend: %s: unknown option (see 'em-backend --help')\n", cmd);
        return BE_USAGE;
    }
    return dispatch(cmd, argc - 2, argv + 2);
}
