/* cli.h — the em-agent subcommands. Each takes the arguments after its name and returns
 * the process exit status (0 success, 1 findings or bad input, 2 usage or I/O error). */
#ifndef EM_CLI_H
#define EM_CLI_H

#include <stdbool.h>

enum { EXIT_OK = 0, EXIT_BAD_INPUT = 1, EXIT_USAGE = 2 };

int cmd_parse(int argc, char **argv);
int cmd_validate(int argc, char **argv);
int cmd_scan(int argc, char **argv);
int cmd_watch(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_service(int argc, char **argv); /* Windows: install, uninstall, start, stop, status, run */

/* Set by `service run`: the watch refuses to start without a durable sink (--out FILE or
 * --amqp) and a log file, and says why through service_report_error() too. */
extern bool watch_as_service;
/* Set by `service install`: the watch reads and checks its settings (as the service will
 * read them), says what is wrong, and returns 0 without running. */
extern bool watch_check_only;
/* Windows: writes `msg` to the Event Log as the service's error (elsewhere nothing). */
void service_report_error(const char *msg);

/* The state directory of a watch (new strings, NULL when none can be found):
 * state_service_dir(): $STATE_DIRECTORY (the service's), or NULL;
 * state_base_dir(): $XDG_STATE_HOME/em-agent, else ~/.local/state/em-agent;
 * state_default_dir(): the service's, else base/<agent>-<hash of the absolute roots>. */
char *state_service_dir(void);
char *state_base_dir(void);
char *state_default_dir(const char *agent, char *const *dirs, size_t ndirs);

#endif
