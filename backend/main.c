/* em-backend: the consumer side (DESIGN §1, §7–8). */
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "log.h"

static const char main_usage[] =
    "Usage: em-backend COMMAND [ARGS]\n"
    "\n"
    "Builds and reads the metadata store from em-agent's entity events.\n"
    "\n"
    "Commands:\n"
    "  consume   read events from RabbitMQ into the store (many agents, many consumers)\n"
    "  ingest    load an event file, or em-agent's output through a pipe, into the store\n"
    "  query     show sessions and their progress, a session's squares, recent\n"
    "            micrographs, or export every entity\n"
    "  dead      list the dead letters (events consume could not store) or replay them\n"
    "\n"
    "Stores: --store sqlite:PATH (embedded, the default kind) or\n"
    "        --store postgresql://user[:password]@host[:port]/database\n"
    "Run `em-backend COMMAND --help` for a command's options.\n"
    "Exit status: 0 success; 1 some input rejected; 2 usage, store or bus error.\n";

int main(int argc, char **argv)
{
    em_log_set_name("em-backend");
    if (argc < 2) {
        fputs(main_usage, stderr);
        return BE_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        fputs(main_usage, stdout);
        return BE_OK;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("em-backend %s\n", EM_VERSION);
        return BE_OK;
    }
    if (strcmp(cmd, "consume") == 0)
        return cmd_consume(argc - 2, argv + 2);
    if (strcmp(cmd, "ingest") == 0)
        return cmd_ingest(argc - 2, argv + 2);
    if (strcmp(cmd, "dead") == 0)
        return cmd_dead(argc - 2, argv + 2);
    if (strcmp(cmd, "query") == 0 || strcmp(cmd, "catalog") == 0)
        return cmd_query(argc - 2, argv + 2);
    fprintf(stderr, "em-backend: unknown command '%s'\n\n%s", cmd, main_usage);
    return BE_USAGE;
}
