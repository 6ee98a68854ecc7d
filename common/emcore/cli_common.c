#include "cli_common.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

bool cli_quiet;
int cli_verbose;

int cli_globals(const char *prog, const char *version, int *argc, char **argv)
{
    enum em_log_format format = EM_LOG_TEXT;
    bool want_version = false;
    int out = 1;
    int i = 1;
    for (; i < *argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0)
            break;
        if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            cli_verbose = cli_verbose < 2 ? cli_verbose + 1 : 2;
        } else if (strcmp(a, "-vv") == 0) {
            cli_verbose = 2;
        } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            cli_quiet = true;
        } else if (strcmp(a, "--version") == 0) {
            want_version = true;
        } else if (strcmp(a, "--log-format") == 0 || strncmp(a, "--log-format=", 13) == 0) {
            const char *f = a[12] == '=' ? a + 13 : (i + 1 < *argc ? argv[++i] : "");
            if (strcmp(f, "json") == 0) {
                format = EM_LOG_JSON;
            } else if (strcmp(f, "text") == 0) {
                format = EM_LOG_TEXT;
            } else {
                fprintf(stderr, "%s: --log-format: takes 'text' or 'json', not '%s'\n", prog, f);
                return CLI_USAGE;
            }
        } else {
            argv[out++] = argv[i];
        }
    }
    for (; i < *argc; i++)
        argv[out++] = argv[i];
    argv[out] = NULL;
    *argc = out;
    enum em_log_level level = cli_verbose >= 2   ? EM_LOG_DEBUG
                              : cli_verbose == 1 ? EM_LOG_INFO
                              : cli_quiet        ? EM_LOG_ERROR
                                                 : EM_LOG_WARN;
    em_log_set_name(prog);
    em_log_setup(level, format);
    if (want_version) {
        printf("%s %s\n", prog, version);
        return CLI_OK;
    }
    return -1;
}

const char *cli_lower(const char *msg)
{
    static _Thread_local char buf[256];
    snprintf(buf, sizeof(buf), "%s", msg ? msg : "unknown error");
    if (buf[0] >= 'A' && buf[0] <= 'Z' && !(buf[1] >= 'A' && buf[1] <= 'Z'))
        buf[0] = (char)(buf[0] - 'A' + 'a');
    return buf;
}

const char *cli_strerror(int errnum)
{
    return cli_lower(strerror(errnum));
}
