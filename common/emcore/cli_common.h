/* cli_common.h — what every program's command line shares (em-agent, em-backend,
 * fsrecorder, em-synth).
 *
 * Global options may come before or after the command: -v/-vv/--verbose (more logging),
 * -q/--quiet (errors only, no summary or progress), --log-format text|json, --version,
 * -h/--help. `help CMD` is `CMD --help`. Everything after `--` is left alone.
 *
 * One exit-code meaning everywhere:
 *   0 success;
 *   1 bad input, findings, or a run that failed (a file that cannot be read or written,
 *     a store or broker that fails);
 *   2 usage or settings: the command line or the configuration cannot be used. Every
 *     exit 2 prints why.
 * One message form: "prog: subject: reason", lower case (subject: a path, a command or an
 * option).
 */
#ifndef EM_CLI_COMMON_H
#define EM_CLI_COMMON_H

#include <stdbool.h>

enum { CLI_OK = 0, CLI_FAILED = 1, CLI_USAGE = 2 };

/* Set by cli_globals(): -q was given (anywhere). Commands drop summaries and progress. */
extern bool cli_quiet;
/* -v count (0, 1 or 2). */
extern int cli_verbose;

/* Takes the global options out of argv (argv[0] is the program), sets up logging with
 * `prog` as the name, and leaves the command and its own arguments in argv/argc.
 * Returns -1 to go on, or the exit status: 0 after printing the version for --version,
 * CLI_USAGE after saying why for a bad --log-format. -h/--help stay in argv for the
 * command to answer. */
int cli_globals(const char *prog, const char *version, int *argc, char **argv);

/* `msg` with its first word in lower case ("Permission denied" -> "permission denied"),
 * as messages want it; acronyms ("EOF") are left alone. The text is in a per-thread
 * buffer, valid until the next call on the thread. */
const char *cli_lower(const char *msg);

/* strerror(errnum) through cli_lower(). */
const char *cli_strerror(int errnum);

#endif
