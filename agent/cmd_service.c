/* em-agent service: the agent as a Windows service (issue 14).
 *
 *   em-agent service install [--name NAME] [watch options...] DIR...
 *   em-agent service uninstall|start|stop|status [--name NAME]
 *   em-agent service run --name NAME [watch options...] DIR...   (what the SCM starts)
 *
 * install registers an auto-start service (LocalSystem) whose command line is `service
 * run` with the watch options given, restarted after 5 s, 30 s and 60 s when it fails,
 * with 30 s of pre-shutdown time. Unless given, its state directory is
 * %ProgramData%\em-agent\NAME, its log %ProgramData%\em-agent\NAME\agent.log and its
 * config %ProgramData%\em-agent\agent.conf (when it exists); the settings are checked by
 * the watch's own parser (watch_check_only) before anything is installed, and a sink
 * (--out FILE or --amqp URL) is required. run reports START_PENDING, RUNNING, then on
 * stop or shutdown STOP_PENDING with a new checkpoint every second while the watch
 * drains, and STOPPED with the watch's exit status. On Linux the command says to use the
 * systemd unit instead.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "watch.h"

bool watch_as_service, watch_check_only;

static const char service_usage[] =
    "Usage: em-agent service install [--name NAME] [WATCH OPTIONS...] DIR...\n"
    "       em-agent service uninstall|start|stop|status [--name NAME]\n"
    "\n"
    "Runs `em-agent watch` as a Windows service (the default NAME is em-agent).\n"
    "\n"
    "  install    register an automatic service running `watch` with these options and\n"
    "             directories; it restarts after a failure (5 s, 30 s, 60 s). Without\n"
    "             --config it reads %ProgramData%\\em-agent\\agent.conf when that exists.\n"
    "             The settings are checked now, as the service will read them: it needs\n"
    "             a directory and a sink that keeps events (--out FILE or --amqp URL).\n"
    "             Unless given, its state is in %ProgramData%\\em-agent\\NAME and its log\n"
    "             in %ProgramData%\\em-agent\\NAME\\agent.log.\n"
    "  uninstall  stop it if it runs, and remove it\n"
    "  start      start it and wait until it runs\n"
    "  stop       stop it and wait while it drains (events still to deliver go out first)\n"
    "  status     whether it runs, and its command line\n"
    "\n"
    "A stop or a shutdown drains the outbox and exits 0. Run as an administrator.\n";

#ifndef _WIN32

void service_report_error(const char *msg)
{
    (void)msg;
}

int cmd_service(int argc, char **argv)
{
    if (argc > 0 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
        fputs(service_usage, stdout);
        return EXIT_OK;
    }
    fprintf(stderr, "em-agent: service: Windows only; on Linux install the package and use "
                    "'systemctl enable --now em-agent' (see the README)\n");
    return EXIT_USAGE;
}

#else

#include <windows.h>

#define DEFAULT_NAME "em-agent"
#define DRAIN_HINT_MS 5000

/* UTF-8 <-> UTF-16 for the W functions; the results are malloc'd, NULL on failure. */
static wchar_t *wide(const char *s)
{
    int n = MultiByteToWideChar(CP_UTF8, 0, s, -1, NULL, 0);
    wchar_t *w = n > 0 ? malloc((size_t)n * sizeof(*w)) : NULL;
    if (w && MultiByteToWideChar(CP_UTF8, 0, s, -1, w, n) <= 0) {
        free(w);
        w = NULL;
    }
    return w;
}

static char *narrow(const wchar_t *w)
{
    int n = WideCharToMultiByte(CP_UTF8, 0, w, -1, NULL, 0, NULL, NULL);
    char *s = n > 0 ? malloc((size_t)n) : NULL;
    if (s && WideCharToMultiByte(CP_UTF8, 0, w, -1, s, n, NULL, NULL) <= 0) {
        free(s);
        s = NULL;
    }
    return s;
}

static const char *win_error(DWORD code, char *buf, size_t cap)
{
    wchar_t msg[512];
    DWORD n = FormatMessageW(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL, code,
                             0, msg, 512, NULL);
    while (n > 0 && (msg[n - 1] == L'\n' || msg[n - 1] == L'\r' || msg[n - 1] == L'.'))
        msg[--n] = 0;
    char *s = n ? narrow(msg) : NULL;
    snprintf(buf, cap, "%s (Windows error %lu)", s ? s : "error", (unsigned long)code);
    free(s);
    return buf;
}

static int fail(const char *what, const char *name)
{
    char e[600];
    DWORD code = GetLastError();
    fprintf(stderr, "em-agent: service %s: %s: %s%s\n", name, what, win_error(code, e, sizeof(e)),
            code == ERROR_ACCESS_DENIED ? "; run it as an administrator" : "");
    return code == ERROR_SERVICE_DOES_NOT_EXIST || code == ERROR_ACCESS_DENIED ? EXIT_USAGE
                                                                               : EXIT_BAD_INPUT;
}

/* ---- the running service ---- */

static const char *svc_name = DEFAULT_NAME;
static SERVICE_STATUS_HANDLE status_handle;
static SERVICE_STATUS status;
static CRITICAL_SECTION status_lock;
static volatile LONG stopping, finished;
static int run_argc;
static char **run_argv;

static void report(DWORD state, int exit_status)
{
    EnterCriticalSection(&status_lock);
    status.dwServiceType = SERVICE_WIN32_OWN_PROCESS;
    status.dwCurrentState = state;
    status.dwControlsAccepted =
        state == SERVICE_RUNNING ? SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_PRESHUTDOWN : 0;
    status.dwWin32ExitCode = exit_status ? ERROR_SERVICE_SPECIFIC_ERROR : NO_ERROR;
    status.dwServiceSpecificExitCode = (DWORD)exit_status;
    status.dwWaitHint =
        state == SERVICE_START_PENDING || state == SERVICE_STOP_PENDING ? DRAIN_HINT_MS : 0;
    if (state == SERVICE_RUNNING || state == SERVICE_STOPPED)
        status.dwCheckPoint = 0;
    else
        status.dwCheckPoint++;
    SetServiceStatus(status_handle, &status);
    LeaveCriticalSection(&status_lock);
}

void service_report_error(const char *msg)
{
    wchar_t *wn = wide(svc_name), *wm = wide(msg);
    HANDLE src = wn ? RegisterEventSourceW(NULL, wn) : NULL;
    if (src && wm) {
        const wchar_t *strings[] = {wm};
        ReportEventW(src, EVENTLOG_ERROR_TYPE, 0, 1, NULL, 1, 0, strings, NULL);
    }
    if (src)
        DeregisterEventSource(src);
    free(wn);
    free(wm);
}

static DWORD WINAPI on_control(DWORD control, DWORD type, LPVOID data, LPVOID ctx)
{
    (void)type, (void)data, (void)ctx;
    switch (control) {
    case SERVICE_CONTROL_STOP:
    case SERVICE_CONTROL_SHUTDOWN:
    case SERVICE_CONTROL_PRESHUTDOWN:
        if (InterlockedExchange(&stopping, 1) == 0) {
            report(SERVICE_STOP_PENDING, 0);
            watch_request_stop(control == SERVICE_CONTROL_STOP ? "service stop"
                                                               : "system shutdown");
        }
        return NO_ERROR;
    case SERVICE_CONTROL_INTERROGATE:
        return NO_ERROR;
    default:
        return ERROR_CALL_NOT_IMPLEMENTED;
    }
}

/* While the watch drains: STOP_PENDING with a new checkpoint every second, so that the
 * service manager sees progress and waits. */
static DWORD WINAPI progress(LPVOID arg)
{
    (void)arg;
    while (!finished) {
        Sleep(1000);
        if (stopping && !finished)
            report(SERVICE_STOP_PENDING, 0);
    }
    return 0;
}

static void WINAPI service_main(DWORD argc, LPWSTR *argv)
{
    (void)argc, (void)argv;
    wchar_t *wn = wide(svc_name);
    status_handle = wn ? RegisterServiceCtrlHandlerExW(wn, on_control, NULL) : NULL;
    free(wn);
    if (!status_handle)
        return;
    report(SERVICE_START_PENDING, 0);
    HANDLE t = CreateThread(NULL, 0, progress, NULL, 0, NULL);
    report(SERVICE_RUNNING, 0);
    watch_as_service = true;
    int rc = cmd_watch(run_argc, run_argv);
    InterlockedExchange(&finished, 1);
    if (t) {
        WaitForSingleObject(t, 2000);
        CloseHandle(t);
    }
    if (rc != 0) {
        char msg[256];
        snprintf(msg, sizeof(msg),
                 "em-agent: service %s stopped with exit status %d (2: a setting to fix; 1: a "
                 "failure); its log file says why",
                 svc_name, rc);
        service_report_error(msg);
    }
    report(SERVICE_STOPPED, rc);
}

static int run(int argc, char **argv)
{
    run_argc = argc;
    run_argv = argv;
    InitializeCriticalSection(&status_lock);
    wchar_t *wn = wide(svc_name);
    SERVICE_TABLE_ENTRYW table[] = {{wn, service_main}, {NULL, NULL}};
    if (!wn || !StartServiceCtrlDispatcherW(table)) {
        DWORD code = GetLastError();
        free(wn);
        if (code == ERROR_FAILED_SERVICE_CONTROLLER_CONNECT) {
            fprintf(stderr, "em-agent: service run: only the service manager starts this; "
                            "use 'em-agent service start' (or 'em-agent watch' in a console)\n");
            return EXIT_USAGE;
        }
        SetLastError(code);
        return fail("cannot start the service dispatcher", svc_name);
    }
    free(wn);
    return (int)status.dwServiceSpecificExitCode;
}

/* ---- managing it ---- */

/* The registry key of the Event Log source NAME (the service's name), malloc'd. */
static wchar_t *event_source_key(void)
{
    static const wchar_t base[] = L"SYSTEM\\CurrentControlSet\\Services\\EventLog\\Application\\";
    wchar_t *wn = wide(svc_name);
    size_t n = wn ? wcslen(base) + wcslen(wn) + 1 : 0;
    wchar_t *key = n ? malloc(n * sizeof(*key)) : NULL;
    if (key) {
        wcscpy(key, base);
        wcscat(key, wn);
    }
    free(wn);
    return key;
}

/* Makes em-agent.exe (`exe`) the message file of the service's Event Log source, so that
 * the Event Viewer shows its messages as they are (agent/windows/messages.mc). */
static void register_event_source(const wchar_t *exe)
{
    wchar_t *key = event_source_key();
    HKEY k;
    if (key && RegCreateKeyExW(HKEY_LOCAL_MACHINE, key, 0, NULL, 0, KEY_SET_VALUE, NULL, &k,
                               NULL) == ERROR_SUCCESS) {
        DWORD types = EVENTLOG_ERROR_TYPE | EVENTLOG_WARNING_TYPE | EVENTLOG_INFORMATION_TYPE;
        RegSetValueExW(k, L"EventMessageFile", 0, REG_EXPAND_SZ, (const BYTE *)exe,
                       (DWORD)((wcslen(exe) + 1) * sizeof(*exe)));
        RegSetValueExW(k, L"TypesSupported", 0, REG_DWORD, (const BYTE *)&types, sizeof(types));
        RegCloseKey(k);
    } else {
        fprintf(stderr,
                "em-agent: service %s: the Event Log source was not registered (its "
                "messages show without their text)\n",
                svc_name);
    }
    free(key);
}

static void unregister_event_source(void)
{
    wchar_t *key = event_source_key();
    if (key)
        RegDeleteKeyW(HKEY_LOCAL_MACHINE, key);
    free(key);
}

static SC_HANDLE open_manager(DWORD access)
{
    return OpenSCManagerW(NULL, NULL, access);
}

static SC_HANDLE open_service(SC_HANDLE scm, DWORD access)
{
    wchar_t *wn = wide(svc_name);
    SC_HANDLE s = wn ? OpenServiceW(scm, wn, access) : NULL;
    free(wn);
    return s;
}

static const char *state_name(DWORD s)
{
    switch (s) {
    case SERVICE_STOPPED:
        return "stopped";
    case SERVICE_START_PENDING:
        return "starting";
    case SERVICE_STOP_PENDING:
        return "stopping (draining)";
    case SERVICE_RUNNING:
        return "running";
    default:
        return "changing";
    }
}

/* Waits up to `seconds` for the service to leave `pending`; fills *st. */
static bool wait_while(SC_HANDLE s, DWORD pending, int seconds, SERVICE_STATUS_PROCESS *st)
{
    DWORD need;
    for (int i = 0; i < seconds * 5; i++) {
        if (!QueryServiceStatusEx(s, SC_STATUS_PROCESS_INFO, (LPBYTE)st, sizeof(*st), &need))
            return false;
        if (st->dwCurrentState != pending)
            return true;
        Sleep(200);
    }
    return false;
}

/* Appends `arg` to `b` quoted as CommandLineToArgvW reads it back. */
static bool quote_arg(char **b, size_t *len, size_t *cap, const char *arg)
{
    size_t need = *len + 2 * strlen(arg) + 4;
    if (need > *cap) {
        size_t c = *cap ? *cap : 256;
        while (c < need)
            c *= 2;
        char *nb = realloc(*b, c);
        if (!nb)
            return false;
        *b = nb;
        *cap = c;
    }
    char *p = *b + *len;
    if (*len)
        *p++ = ' ';
    *p++ = '"';
    size_t slashes = 0;
    for (const char *q = arg; *q; q++) {
        if (*q == '\\') {
            slashes++;
        } else if (*q == '"') {
            for (size_t k = 0; k < slashes + 1; k++)
                *p++ = '\\';
            slashes = 0;
        } else {
            slashes = 0;
        }
        *p++ = *q;
    }
    for (size_t k = 0; k < slashes; k++) /* before the closing quote */
        *p++ = '\\';
    *p++ = '"';
    *p = '\0';
    *len = (size_t)(p - *b);
    return true;
}

static bool has_option(int argc, char **argv, const char *name, char shortopt)
{
    size_t n = strlen(name);
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strncmp(argv[i], name, n) == 0 && (argv[i][n] == '\0' || argv[i][n] == '='))
            return true;
        if (shortopt && argv[i][0] == '-' && argv[i][1] == shortopt && argv[i][2] == '\0')
            return true;
    }
    return false;
}

/* `path` made absolute (the service's working directory is system32), malloc'd. */
static char *absolute_path(const char *path)
{
    wchar_t *w = wide(path), full[MAX_PATH * 4];
    DWORD n = w ? GetFullPathNameW(w, MAX_PATH * 4, full, NULL) : 0;
    free(w);
    return n > 0 && n < MAX_PATH * 4 ? narrow(full) : strdup(path);
}

static bool file_exists(const char *path)
{
    wchar_t *w = wide(path);
    DWORD a = w ? GetFileAttributesW(w) : INVALID_FILE_ATTRIBUTES;
    free(w);
    return a != INVALID_FILE_ATTRIBUTES && !(a & FILE_ATTRIBUTE_DIRECTORY);
}

static int install(int argc, char **argv)
{
    /* The watch's arguments: the defaults under %ProgramData% (LocalSystem's own profile is
     * no place for them), then the ones given, a relative --config made absolute. */
    const char *pd = getenv("ProgramData");
    char base[1024] = "", dir[1100] = "", log[1200] = "", conf[1100] = "";
    if (pd) {
        snprintf(base, sizeof(base), "%s\\em-agent", pd);
        snprintf(dir, sizeof(dir), "%s\\%s", base, svc_name);
        snprintf(log, sizeof(log), "%s\\agent.log", dir);
        snprintf(conf, sizeof(conf), "%s\\agent.conf", base);
    }
    char **args = calloc((size_t)argc + 8, sizeof(*args));
    char *abs_conf = NULL;
    int n = 0, rc = EXIT_OK;
    if (!args) {
        fprintf(stderr, "em-agent: service install: out of memory\n");
        return EXIT_BAD_INPUT;
    }
    if (dir[0] && !has_option(argc, argv, "--state-dir", 0)) {
        args[n++] = "--state-dir";
        args[n++] = dir;
    }
    if (dir[0] && !has_option(argc, argv, "--log-file", 0)) {
        args[n++] = "--log-file";
        args[n++] = log;
    }
    if (conf[0] && !has_option(argc, argv, "--config", 0) && file_exists(conf)) {
        args[n++] = "--config";
        args[n++] = conf;
        printf("settings from %s\n", conf);
    }
    for (int i = 0; i < argc; i++) {
        args[n++] = argv[i];
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc && !abs_conf) {
            abs_conf = absolute_path(argv[++i]);
            args[n++] = abs_conf ? abs_conf : argv[i];
        }
    }
    /* The settings are read now exactly as the service will read them: a bad one, or no
     * sink or directory, is refused here rather than at the service's first start. */
    watch_as_service = watch_check_only = true;
    rc = cmd_watch(n, args);
    watch_as_service = watch_check_only = false;
    if (rc != EXIT_OK) {
        fprintf(stderr, "em-agent: service install: %s not installed\n", svc_name);
        free(abs_conf);
        free(args);
        return rc;
    }
    wchar_t exe[MAX_PATH];
    if (!GetModuleFileNameW(NULL, exe, MAX_PATH)) {
        free(abs_conf);
        free(args);
        return fail("cannot find em-agent.exe's path", svc_name);
    }
    char *exe8 = narrow(exe), *cmd = NULL;
    size_t len = 0, cap = 0;
    bool ok = exe8 && quote_arg(&cmd, &len, &cap, exe8) && quote_arg(&cmd, &len, &cap, "service") &&
              quote_arg(&cmd, &len, &cap, "run") && quote_arg(&cmd, &len, &cap, "--name") &&
              quote_arg(&cmd, &len, &cap, svc_name);
    if (ok && base[0]) {
        CreateDirectoryA(base, NULL);
        CreateDirectoryA(dir, NULL);
    }
    for (int i = 0; ok && i < n; i++)
        ok = quote_arg(&cmd, &len, &cap, args[i]);
    free(exe8);
    free(abs_conf);
    free(args);
    wchar_t *wcmd = ok ? wide(cmd) : NULL, *wn = wide(svc_name);
    SC_HANDLE scm = NULL, s = NULL;
    if (!wcmd || !wn) {
        fprintf(stderr, "em-agent: service install: out of memory\n");
        rc = EXIT_BAD_INPUT;
    } else if (!(scm = open_manager(SC_MANAGER_CREATE_SERVICE))) {
        rc = fail("cannot open the service manager", svc_name);
    } else if (!(s = CreateServiceW(scm, wn, L"em-agent (EPU metadata)", SERVICE_ALL_ACCESS,
                                    SERVICE_WIN32_OWN_PROCESS, SERVICE_AUTO_START,
                                    SERVICE_ERROR_NORMAL, wcmd, NULL, NULL, NULL, NULL, NULL))) {
        rc = fail("cannot create the service", svc_name);
    } else {
        SERVICE_DESCRIPTIONW d = {L"Follows EPU session directories and publishes their "
                                  L"metadata as entity events (em-agent watch)."};
        ChangeServiceConfig2W(s, SERVICE_CONFIG_DESCRIPTION, &d);
        SC_ACTION actions[] = {
            {SC_ACTION_RESTART, 5000}, {SC_ACTION_RESTART, 30000}, {SC_ACTION_RESTART, 60000}};
        SERVICE_FAILURE_ACTIONSW fa = {86400, NULL, NULL, 3, actions};
        if (!ChangeServiceConfig2W(s, SERVICE_CONFIG_FAILURE_ACTIONS, &fa))
            fprintf(stderr, "em-agent: service %s: restart-on-failure not set\n", svc_name);
        SERVICE_PRESHUTDOWN_INFO pre = {30000};
        ChangeServiceConfig2W(s, SERVICE_CONFIG_PRESHUTDOWN_INFO, &pre);
        register_event_source(exe);
        printf("installed service %s (automatic start): %s\n"
               "start it now with: em-agent service start%s%s\n",
               svc_name, cmd, strcmp(svc_name, DEFAULT_NAME) ? " --name " : "",
               strcmp(svc_name, DEFAULT_NAME) ? svc_name : "");
    }
    if (s)
        CloseServiceHandle(s);
    if (scm)
        CloseServiceHandle(scm);
    free(wcmd);
    free(wn);
    free(cmd);
    return rc;
}

static int control(const char *verb)
{
    SC_HANDLE scm = open_manager(SC_MANAGER_CONNECT);
    if (!scm)
        return fail("cannot open the service manager", svc_name);
    DWORD access = SERVICE_QUERY_STATUS | SERVICE_QUERY_CONFIG;
    if (strcmp(verb, "start") == 0)
        access |= SERVICE_START;
    else if (strcmp(verb, "stop") == 0)
        access |= SERVICE_STOP;
    else if (strcmp(verb, "uninstall") == 0)
        access |= SERVICE_STOP | DELETE;
    SC_HANDLE s = open_service(scm, access);
    if (!s) {
        int rc = fail("cannot open the service (is it installed?)", svc_name);
        CloseServiceHandle(scm);
        return rc;
    }
    SERVICE_STATUS_PROCESS st;
    DWORD need;
    int rc = EXIT_OK;
    if (!QueryServiceStatusEx(s, SC_STATUS_PROCESS_INFO, (LPBYTE)&st, sizeof(st), &need)) {
        rc = fail("cannot query the service", svc_name);
    } else if (strcmp(verb, "start") == 0) {
        if (st.dwCurrentState == SERVICE_RUNNING) {
            printf("%s: already running (pid %lu)\n", svc_name, (unsigned long)st.dwProcessId);
        } else if (!StartServiceW(s, 0, NULL)) {
            rc = fail("cannot start", svc_name);
        } else if (wait_while(s, SERVICE_START_PENDING, 30, &st) &&
                   st.dwCurrentState == SERVICE_RUNNING) {
            printf("%s: running (pid %lu)\n", svc_name, (unsigned long)st.dwProcessId);
        } else {
            fprintf(stderr,
                    "em-agent: service %s: did not start (%s); see its log file and the "
                    "Application event log\n",
                    svc_name, state_name(st.dwCurrentState));
            rc = EXIT_BAD_INPUT;
        }
    } else if (strcmp(verb, "stop") == 0 || strcmp(verb, "uninstall") == 0) {
        if (st.dwCurrentState != SERVICE_STOPPED) {
            SERVICE_STATUS ss;
            if (!ControlService(s, SERVICE_CONTROL_STOP, &ss) &&
                GetLastError() != ERROR_SERVICE_NOT_ACTIVE) {
                rc = fail("cannot stop", svc_name);
            } else {
                fprintf(stderr, "%s: stopping (events still to deliver go out first)...\n",
                        svc_name);
                if (!wait_while(s, SERVICE_STOP_PENDING, 120, &st) ||
                    st.dwCurrentState != SERVICE_STOPPED) {
                    fprintf(stderr, "em-agent: service %s: still %s after 120 s\n", svc_name,
                            state_name(st.dwCurrentState));
                    rc = EXIT_BAD_INPUT;
                } else {
                    printf("%s: stopped (exit status %lu)\n", svc_name,
                           (unsigned long)st.dwServiceSpecificExitCode);
                }
            }
        } else if (strcmp(verb, "stop") == 0) {
            printf("%s: not running\n", svc_name);
        }
        if (rc == EXIT_OK && strcmp(verb, "uninstall") == 0) {
            if (!DeleteService(s))
                rc = fail("cannot remove", svc_name);
            else
                printf("%s: removed (its state and log stay in %%ProgramData%%\\em-agent)\n",
                       svc_name);
            if (rc == EXIT_OK)
                unregister_event_source();
        }
    } else { /* status */
        printf("%s: %s", svc_name, state_name(st.dwCurrentState));
        if (st.dwCurrentState == SERVICE_RUNNING)
            printf(" (pid %lu)", (unsigned long)st.dwProcessId);
        else if (st.dwCurrentState == SERVICE_STOPPED && st.dwServiceSpecificExitCode)
            printf(" (last exit status %lu)", (unsigned long)st.dwServiceSpecificExitCode);
        printf("\n");
        union {
            QUERY_SERVICE_CONFIGW c;
            char space[8192];
        } cfg;
        if (QueryServiceConfigW(s, &cfg.c, sizeof(cfg), &need)) {
            char *c = narrow(cfg.c.lpBinaryPathName);
            printf("command: %s\n", c ? c : "?");
            free(c);
        }
        rc = st.dwCurrentState == SERVICE_RUNNING ? EXIT_OK : 3;
    }
    CloseServiceHandle(s);
    CloseServiceHandle(scm);
    return rc;
}

int cmd_service(int argc, char **argv)
{
    if (argc < 1 || strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) {
        fputs(service_usage, argc < 1 ? stderr : stdout);
        return argc < 1 ? EXIT_USAGE : EXIT_OK;
    }
    const char *verb = argv[0];
    argc--, argv++;
    if (argc >= 2 && strcmp(argv[0], "--name") == 0) {
        svc_name = argv[1];
        argc -= 2, argv += 2;
    }
    if (!svc_name[0] || strpbrk(svc_name, "/\\")) {
        fprintf(stderr, "em-agent: service: --name: a name without '/' or '\\'\n");
        return EXIT_USAGE;
    }
    if (strcmp(verb, "install") == 0)
        return install(argc, argv);
    if (strcmp(verb, "run") == 0)
        return run(argc, argv);
    if (strcmp(verb, "uninstall") == 0 || strcmp(verb, "start") == 0 || strcmp(verb, "stop") == 0 ||
        strcmp(verb, "status") == 0) {
        if (argc) {
            fprintf(stderr, "em-agent: service %s: %s: unexpected (only --name NAME)\n", verb,
                    argv[0]);
            return EXIT_USAGE;
        }
        return control(verb);
    }
    fprintf(stderr, "em-agent: service: %s: unknown (install, uninstall, start, stop, status)\n",
            verb);
    return EXIT_USAGE;
}

#endif
