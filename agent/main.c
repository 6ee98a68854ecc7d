/* em-agent: turns what EPU writes into entity events (DESIGN §1). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _WIN32
#include <fcntl.h>
#include <io.h>
#include <windows.h>
#include <shellapi.h>
#endif

#include "cli.h"
#include "cli_common.h"
#include "epu.h"
#include "log.h"

#ifndef EM_VERSION
#define EM_VERSION "unknown"
#endif

static const char main_usage[] =
    "Usage: em-agent [OPTIONS] COMMAND [ARGS]\n"
    "\n"
    "Turn an EPU session directory into typed metadata and entity events.\n"
    "\n"
    "Commands:\n"
    "  parse KIND FILE   parse one EPU file and print it as JSON\n"
    "  validate DIR      check a grid (session) directory or a whole visit\n"
    "  scan DIR          parse a session or visit once; print its entities as events\n"
    "  watch DIR...      follow sessions live; print every entity change once\n"
    "  status            what a watch has emitted and is waiting to deliver; who runs it\n"
    "  service ...       Windows: install, start, stop, status or remove the watch service\n"
    "  help [COMMAND]    show help for a command\n"
    "\n"
    "Options (before or after the command):\n"
    "  -v, -vv                more logging on stderr (info, debug)\n"
    "  -q, --quiet            errors only: no summary, no progress\n"
    "  --log-format text|json log lines as text (default) or JSON objects\n"
    "  --version              print the version\n"
    "  -h, --help             show this help\n"
    "\n"
    "Exit status: 0 success; 1 bad input, findings or a failed run; 2 usage or settings\n"
    "(the reason is printed). Messages read \"em-agent: subject: reason\".\n"
    "Run 'em-agent help COMMAND' for a command's options.\n";

static bool cli_is_help(const char *arg)
{
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
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
    if (strcmp(cmd, "status") == 0)
        return cmd_status(argc, argv);
    if (strcmp(cmd, "service") == 0)
        return cmd_service(argc, argv);
    fprintf(stderr, "em-agent: %s: unknown command (see 'em-agent --help')\n", cmd);
    return EXIT_USAGE;
}

int main(int argc, char **argv)
{
#ifdef _WIN32
    /* The command line as UTF-8 (argv is in the ANSI code page, which cannot hold every
     * path; libuv and the journal take UTF-8). */
    {
        int wargc = 0;
        wchar_t **wargv = CommandLineToArgvW(GetCommandLineW(), &wargc);
        char **u = wargv ? calloc((size_t)wargc + 1, sizeof(*u)) : NULL;
        for (int i = 0; u && i < wargc; i++) {
            int n = WideCharToMultiByte(CP_UTF8, 0, wargv[i], -1, NULL, 0, NULL, NULL);
            if (n <= 0 || !(u[i] = malloc((size_t)n)) ||
                WideCharToMultiByte(CP_UTF8, 0, wargv[i], -1, u[i], n, NULL, NULL) <= 0) {
                u = NULL; /* keep the ANSI argv (what was made is left to the exit) */
                break;
            }
        }
        if (u) {
            argc = wargc;
            argv = u;
        }
        if (wargv)
            LocalFree(wargv);
    }
    /* Event lines end in "\n" as on Linux, not "\r\n": consumers and hashes see the same
     * bytes from either build. */
    _setmode(_fileno(stdout), _O_BINARY);
#endif
    int early = cli_globals("em-agent", EM_VERSION, &argc, argv);
    if (early >= 0)
        return early;
    if (argc < 2) {
        fprintf(stderr, "em-agent: which command? (parse, validate, scan, watch, status)\n\n%s",
                main_usage);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (cli_is_help(cmd)) {
        fputs(main_usage, stdout);
        return EXIT_OK;
    }
    if (cmd[0] == '-') {
        fprintf(stderr, "em-agent: %s: unknown option (see 'em-agent --help')\n", cmd);
        return EXIT_USAGE;
    }
    epu_init();
    int status;
    if (strcmp(cmd, "help") == 0) {
        if (argc > 2) {
            char help[] = "--help";
            char *args[] = {help, NULL};
            status = dispatch(argv[2], 1, args);
        } else {
            fputs(main_usage, stdout);
            status = EXIT_OK;
        }
    } else {
        status = dispatch(cmd, argc - 2, argv + 2);
    }
    epu_cleanup();
    return status;
}
