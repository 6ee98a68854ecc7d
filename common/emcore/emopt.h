/* emopt.h — the one option parser of em-agent, em-backend, fsrecorder and em-synth.
 *
 * A command describes its options once, in a table, and reads them from up to three
 * layers: the command line, the environment and a config file. The command line wins
 * over the environment, which wins over the file. The global options (-v, -q,
 * --log-format, --version) are taken out before, by cli_globals().
 *
 * Command line:
 *   --name VALUE, --name=VALUE, -x VALUE (a short name), --flag (a flag, "yes"),
 *   --flag=no (a flag given a value), -h/--help anywhere (the usage, exit 0),
 *   -- (everything after it is an argument), '-' alone is an argument.
 *   A value option given twice keeps the last. Arguments (not options) are collected in
 *   order.
 * Environment: the option's variable is the program's prefix and the name in upper case
 *   with '_' for '-' (EM_AGENT_STATE_DIR for state-dir), for the options marked `env`.
 *   An empty variable counts as unset.
 * Config file: `key = value` lines, '#' comments, blank lines; the key is the long name.
 *   An unknown key is an error that names the file and line.
 * The arguments: a command may name them as one more layer (EMOPT_ARGS, say "dir"):
 *   its config key may repeat (`dir = A`, `dir = B`) and its environment variable holds a
 *   list (':'-separated; ';' on Windows); the command line's arguments win over the
 *   environment's, which win over the file's.
 *
 * Every message has the form "prog: cmd: subject: reason" and the command's status
 * follows the one exit-code meaning of cli_common.h (2 for usage and settings).
 */
#ifndef EM_EMOPT_H
#define EM_EMOPT_H

#include "em_compat.h"
#include <stdbool.h>
#include <stddef.h>

enum emopt_kind {
    EMOPT_VALUE, /* takes a value */
    EMOPT_FLAG,  /* takes none on the command line; "yes" when given */
    EMOPT_ARGS,  /* the command's arguments: repeatable key in the file, list in env */
};

struct emopt_spec {
    const char *name; /* the long name without dashes, and the config key */
    char short_name;  /* '-x', or 0 */
    enum emopt_kind kind;
    bool env;             /* also read from the environment */
    bool no_file;         /* never from a config file (an unknown setting there) */
    const char *env_name; /* the variable's name when not derived from `name` */
};

enum { EMOPT_LAYERS = 3 }; /* command line, environment, file */

struct emopt {
    /* Set by emopt_init(). */
    const char *prog, *cmd, *usage, *env_prefix;
    const struct emopt_spec *spec;
    int nspec;
    /* Filled by the readers; read them with the getters below. */
    char **val[EMOPT_LAYERS]; /* per option, per layer: an owned copy, or NULL */
    char **args[EMOPT_LAYERS];
    size_t nargs[EMOPT_LAYERS], args_cap[EMOPT_LAYERS];
};

/* Prepares `o` for `cmd` of `prog` ("em-agent", "scan"; cmd may be NULL for a program
 * without commands). `usage` is printed for -h/--help. `env_prefix` ("EM_AGENT_") names
 * the environment variables, NULL for none. Returns 0 or -1 (out of memory). */
int emopt_init(struct emopt *o, const char *prog, const char *cmd, const char *usage,
               const char *env_prefix, const struct emopt_spec *spec, int nspec);
void emopt_free(struct emopt *o);

/* Reads the command line (argv holds the command's arguments, without its name).
 * Returns -1 to go on, 0 after printing the usage for -h/--help, or 2 after saying why
 * the command line cannot be used. */
int emopt_argv(struct emopt *o, int argc, char **argv);

/* Reads the environment (the options marked env). Returns -1 to go on, or 2. */
int emopt_env(struct emopt *o);

/* Reads the config file at `path`. Returns -1 to go on, or 2 after saying why (the file
 * cannot be read: "prog: PATH: cannot read the config file: reason"; a bad line:
 * "prog: cmd: PATH:LINE: reason"). */
int emopt_file(struct emopt *o, const char *path);

/* The option's value: the command line's, else the environment's, else the file's; NULL
 * when none gave it. `id` indexes the spec table. */
const char *emopt_get(const struct emopt *o, int id);

/* True when the option's value says yes: "1", "yes", "true" or "on" (a flag given). */
bool emopt_yes(const struct emopt *o, int id);

/* The arguments of the layer that has some (command line first); *n is their count. */
char *const *emopt_args(const struct emopt *o, size_t *n);

/* Typed values. When the option is unset they leave *out alone and return true; a value
 * that does not parse or is outside [lo, hi] is reported ("prog: cmd: --name takes a
 * number from LO to HI, not 'V'") and they return false. */
bool emopt_long(const struct emopt *o, int id, long lo, long hi, long *out);
bool emopt_seconds(const struct emopt *o, int id, double lo, double hi, double *out);
bool emopt_double(const struct emopt *o, int id, double lo, double hi, double *out);
/* A finite number above 0 ("--rate takes a positive number, not '-1'"). */
bool emopt_positive(const struct emopt *o, int id, double *out);

/* A command at a glance, for emopt_run(). */
struct emopt_command {
    const char *prog, *cmd, *usage, *env_prefix; /* as emopt_init() takes them */
    const struct emopt_spec *spec;
    int nspec;
    int (*run)(const struct emopt *o); /* the command itself: returns the exit status */
};

/* Reads the command line, then the environment (when env_prefix is set), and calls `run`.
 * Returns run's status, 0 after --help, 2 for a bad command line, 1 when out of memory. */
int emopt_run(const struct emopt_command *c, int argc, char **argv);

/* Says "prog: cmd: reason" on stderr and returns 2 (for the command's own checks). */
int emopt_usage_error(const struct emopt *o, const char *fmt, ...) EM_PRINTF(2, 3);

#endif
