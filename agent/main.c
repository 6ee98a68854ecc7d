/* em-agent: turns what EPU writes into entity events (DESIGN §1). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "epu.h"
#include "log.h"

#ifndef EM_VERSION
#define EM_VERSION "unknown"
#endif

static const char main_usage[] =
    "Usage: em-agent [-v|-vv] [--log-format text|json] COMMAND [ARGS]\n"
    "\n"
    "Turn an EPU session directory into typed metadata and entity events.\n"
    "\n"
    "Commands:\n"
    "  parse KIND FILE   parse one EPU file and print it as JSON\n"
    "  validate DIR      check a grid (session) directory or a whole visit\n"
    "  scan DIR          parse a session or visit once; print its entities as events\n"
    "  watch DIR...      follow sessions live; print every entity change once\n"
    "  help [COMMAND]    show help for a command\n"
    "\n"
    "Options:\n"
    "  -v, -vv                more logging on stderr (info, debug)\n"
    "  --log-format text|json log lines as text (default) or JSON objects\n"
    "  --version              print the version\n"
    "  -h, --help             show this help\n"
    "\n"
    "Exit status: 0 success; 1 bad input or validation findings; 2 usage or I/O error.\n"
    "Run 'em-agent COMMAND --help' for a command's options.\n";

bool cli_is_help(const char *arg)
{
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

bool cli_parse_jobs(const char *cmd, const char *value, unsigned *out)
{
    char *end;
    long n = strtol(value, &end, 10);
    if (end == value || *end != '\0' || n < 1 || n > 64) {
        fprintf(stderr, "em-agent %s: --jobs takes a number from 1 to 64, not '%s'\n", cmd, value);
        return false;
    }
    *out = (unsigned)n;
    return true;
}

static int dispatch(const char *cmd, int argc, char **argv)
{
    if (strcmp(cmd, "parse") == 0)
        return cmd_parse(argc, argv);
    if (strcmp(cmd, "validate") == 0)
        return cmd_validate(argc, argv);
    if (strcmp(cmd, "scan") == 0)
        return cmd_scan(argc, argv);
    if (strcmp(cmd, "watch") == 0)
        return cmd_watch(argc, argv);
    fprintf(stderr, "em-agent: unknown command '%s'\n\n%s", cmd, main_usage);
    return EXIT_USAGE;
}

int main(int argc, char **argv)
{
    enum em_log_level level = EM_LOG_WARN;
    enum em_log_format format = EM_LOG_TEXT;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            fputs(main_usage, stdout);
            return EXIT_OK;
        } else if (strcmp(a, "--version") == 0) {
            printf("em-agent %s\n", EM_VERSION);
            return EXIT_OK;
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            level = level < EM_LOG_INFO ? EM_LOG_INFO : EM_LOG_DEBUG;
        } else if (strcmp(a, "-vv") == 0) {
            level = EM_LOG_DEBUG;
        } else if (strcmp(a, "--log-format") == 0 && i + 1 < argc) {
            const char *f = argv[++i];
            if (strcmp(f, "json") == 0)
                format = EM_LOG_JSON;
            else if (strcmp(f, "text") == 0)
                format = EM_LOG_TEXT;
            else {
                fprintf(stderr, "em-agent: --log-format takes 'text' or 'json'\n");
                return EXIT_USAGE;
            }
        } else {
            fprintf(stderr, "em-agent: unknown option '%s'\n\n%s", a, main_usage);
            return EXIT_USAGE;
        }
    }
    if (i >= argc) {
        fputs(main_usage, stderr);
        return EXIT_USAGE;
    }
    em_log_setup(level, format);
    epu_init();
    int status;
    if (strcmp(argv[i], "help") == 0) {
        if (i + 1 < argc) {
            char help[] = "--help";
            char *args[] = {help};
            status = dispatch(argv[i + 1], 1, args);
        } else {
            fputs(main_usage, stdout);
            status = EXIT_OK;
        }
    } else {
        status = dispatch(argv[i], argc - i - 1, argv + i + 1);
    }
    epu_cleanup();
    return status;
}
