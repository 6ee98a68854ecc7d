/* em-backend serve: the facility's live view (DESIGN §13). An HTTP server on
 * libmicrohttpd with one thread per connection, each with its own read-only store
 * connection (opened at its first request, kept while the client keeps the connection
 * alive); a monitor thread that learns of commits (PostgreSQL LISTEN, SQLite's data
 * version) and wakes the Server-Sent Events streams, and that checks for stalled
 * sessions and sends alerts to the bus.
 *
 *   /                        the page (web/, built into the binary)
 *   /health                  {"status":"ok",...} or 503
 *   /metrics                 Prometheus text
 *   /api/v1/...              JSON (serve_api.c)
 *   /api/v1/events           Server-Sent Events from change_log, resumable (Last-Event-ID)
 */
#include "serve.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "backend.h"
#include "cli_common.h"
#include "em_error.h"
#include "log.h"

static const char serve_usage[] =
    "Usage: em-backend serve --store URL [--listen ADDR:PORT] [OPTIONS]\n"
    "\n"
    "Serves the live view of every microscope from the store: a page (sessions, each\n"
    "session's atlas map, each square's holes, agents, datasets, jobs), a JSON API under\n"
    "/api/v1/ (its description at /api/v1/openapi.json), live updates as Server-Sent\n"
    "Events at /api/v1/events, /health and Prometheus /metrics. The page is built into\n"
    "the program and needs no network. Stops on SIGTERM or Ctrl-C.\n"
    "\n"
    "Options (environment variable in brackets):\n"
    "  --store URL          sqlite:PATH or postgresql://… (read only) [EM_BACKEND_STORE]\n"
    "  --listen ADDR:PORT   where to listen; default 127.0.0.1:8080. IPv6 as [::1]:8080.\n"
    "                       Any address other than loopback needs --token-file\n"
    "                       [EM_BACKEND_LISTEN]\n"
    "  --token-file FILE    require this bearer token (the file's first line) on the API,\n"
    "                       the events and /metrics: 'Authorization: Bearer TOKEN' or\n"
    "                       ?access_token=TOKEN (the page asks for it once). /health and\n"
    "                       the page's own files stay open [EM_BACKEND_TOKEN_FILE]\n"
    "  --tls-cert FILE, --tls-key FILE\n"
    "                       serve HTTPS with this certificate (PEM) and key\n"
    "                       [EM_BACKEND_TLS_CERT, EM_BACKEND_TLS_KEY]\n"
    "  --amqp URL           also send stall alerts to the bus: exchange em.events, routing\n"
    "                       key em.alerts (--amqp-ca FILE for amqps://) [EM_BACKEND_AMQP]\n"
    "  --stall-factor F, --stall-min SECONDS, --idle-after SECONDS\n"
    "                       a session is stalled when its newest micrograph is older than\n"
    "                       F times the median interval of its last 21 (default 5), and at\n"
    "                       least --stall-min (default 300); idle after --idle-after\n"
    "                       (default 43200) [EM_BACKEND_STALL_FACTOR, …]\n"
    "  --image-root DIR[:DIR…]\n"
    "                       where this machine reads the directories the agents watch (a\n"
    "                       mount of the acquisition PC's share, say): the maps then show\n"
    "                       the atlas tiles and square images EPU writes as .jpg beside\n"
    "                       their manifests. Each DIR is tried in turn; only JPEG files\n"
    "                       inside one are served [EM_BACKEND_IMAGE_ROOT]\n"
    "  --max-clients N      connections at once (default 256; an open page holds one for\n"
    "                       its live events and a few for its requests)\n"
    "  --port-file FILE     write the port listened on to FILE (useful with port 0)\n"
    "\n"
    "Exit status: 0 stopped by a signal; 1 the store cannot be read or the port cannot be\n"
    "opened; 2 usage or settings (the reason is printed).\n";

enum {
    S_STORE,
    S_LISTEN,
    S_TOKEN_FILE,
    S_TLS_CERT,
    S_TLS_KEY,
    S_AMQP,
    S_AMQP_CA,
    S_STALL_FACTOR,
    S_STALL_MIN,
    S_IDLE_AFTER,
    S_MAX_CLIENTS,
    S_PORT_FILE,
    S_IMAGE_ROOT,
    S_COUNT
};
static const struct emopt_spec serve_opts[S_COUNT] = {
    [S_STORE] = {"store", 0, EMOPT_VALUE, true, false, NULL},
    [S_LISTEN] = {"listen", 0, EMOPT_VALUE, true, false, NULL},
    [S_TOKEN_FILE] = {"token-file", 0, EMOPT_VALUE, true, false, NULL},
    [S_TLS_CERT] = {"tls-cert", 0, EMOPT_VALUE, true, false, NULL},
    [S_TLS_KEY] = {"tls-key", 0, EMOPT_VALUE, true, false, NULL},
    [S_AMQP] = {"amqp", 0, EMOPT_VALUE, true, false, NULL},
    [S_AMQP_CA] = {"amqp-ca", 0, EMOPT_VALUE, true, false, NULL},
    [S_STALL_FACTOR] = {"stall-factor", 0, EMOPT_VALUE, true, false, NULL},
    [S_STALL_MIN] = {"stall-min", 0, EMOPT_VALUE, true, false, NULL},
    [S_IDLE_AFTER] = {"idle-after", 0, EMOPT_VALUE, true, false, NULL},
    [S_MAX_CLIENTS] = {"max-clients", 0, EMOPT_VALUE, false, false, NULL},
    [S_PORT_FILE] = {"port-file", 0, EMOPT_VALUE, false, false, NULL},
    [S_IMAGE_ROOT] = {"image-root", 0, EMOPT_VALUE, true, false, NULL},
};

/* ---- the address ---- */

/* "127.0.0.1:8080", "[::1]:8080", "localhost:8080", ":8080" (all addresses) → a socket
 * address; *loopback says whether only this machine can reach it. */
static int parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len, bool *loopback,
                        char *why, size_t cap)
{
    char host[128];
    const char *port;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':' || (size_t)(end - s - 1) >= sizeof(host))
            goto bad;
        snprintf(host, sizeof(host), "%.*s", (int)(end - s - 1), s + 1);
        port = end + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= sizeof(host))
            goto bad;
        snprintf(host, sizeof(host), "%.*s", (int)(colon - s), s);
        port = colon + 1;
    }
    char *end;
    errno = 0;
    long p = strtol(port, &end, 10);
    if (!*port || *end || errno || p < 0 || p > 65535)
        goto bad;
    memset(ss, 0, sizeof(*ss));
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    if (!host[0])
        snprintf(host, sizeof(host), "0.0.0.0");
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)p);
        *len = sizeof(*v4);
        *loopback = (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)p);
        *len = sizeof(*v6);
        *loopback = IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr);
        return 0;
    }
bad:
    snprintf(why, cap,
             "--listen %s: give ADDR:PORT with a numeric address, as in 127.0.0.1:8080, "
             "0.0.0.0:8080 or [::1]:8080",
             s);
    return -EM_EUSAGE;
}

/* ---- files ---- */

/* Reads a whole small file (a token, a certificate or a key). */
static char *read_small(const char *path, size_t max, char *why, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, cap, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(max + 1);
    size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
    bool err = ferror(f);
    fclose(f);
    if (!buf || err || n > max) {
        snprintf(why, cap, "%s: %s", path,
                 !buf  ? "out of memory"
                 : err ? "cannot read it"
                       : "too large");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static int load_token(struct serve *sv, const char *path, char *why, size_t cap)
{
    char *t = read_small(path, 4096, why, cap);
    if (!t)
        return -EM_EUSAGE;
    size_t n = strcspn(t, "\r\n");
    while (n > 0 && (t[n - 1] == ' ' || t[n - 1] == '\t'))
        n--;
    size_t start = strspn(t, " \t");
    if (n <= start || n - start < 16 || n - start >= sizeof(sv->token)) {
        snprintf(why, cap,
                 "%s: the token (its first line) must be 16 to %zu characters; make one with: "
                 "head -c 32 /dev/urandom | base64 > %s",
                 path, sizeof(sv->token) - 1, path);
        free(t);
        return -EM_EUSAGE;
    }
    memcpy(sv->token, t + start, n - start);
    sv->token[n - start] = '\0';
    sv->token_len = n - start;
    free(t);
    struct stat st;
    if (stat(path, &st) == 0 && (st.st_mode & 077))
        em_log(EM_LOG_WARN, "%s: others can read the token file (chmod 600 %s)", path, path);
    return 0;
}

bool serve_token_ok(const struct serve *sv, const char *given)
{
    if (!sv->token_len)
        return true;
    if (!given)
        return false;
    /* Constant time in the token's length: every byte of the expected token is compared,
     * whatever the given one is, and the lengths are folded in at the end. */
    size_t glen = strlen(given);
    unsigned char diff = 0;
    for (size_t i = 0; i < sv->token_len; i++) {
        unsigned char g = i < glen ? (unsigned char)given[i] : 0;
        diff |= (unsigned char)(g ^ (unsigned char)sv->token[i]);
    }
    diff |= (unsigned char)(glen != sv->token_len);
    return diff == 0;
}

/* ---- connections ---- */

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    (void)cls;
    (void)c;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        *socket_context = calloc(1, sizeof(struct serve_conn));
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        struct serve_conn *sc = *socket_context;
        if (sc) {
            store_close(sc->store);
            free(sc);
        }
        *socket_context = NULL;
    }
}

struct store *serve_store(struct serve *sv, struct serve_conn *sc, char *reason, size_t cap)
{
    if (sc->store)
        return sc->store;
    int rc = store_open_readonly(sv->store_url, &sc->store, reason, cap);
    if (rc < 0) {
        sc->store = NULL;
        return NULL;
    }
    return sc->store;
}

void serve_store_failed(struct serve_conn *sc)
{
    store_close(sc->store);
    sc->store = NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    (void)version;
    (void)upload_data;
    struct serve *sv = cls;
    if (!*req_cls) { /* the headers: answer once the request is whole */
        *req_cls = sv;
        return MHD_YES;
    }
    if (*upload_data_size) {
        *upload_data_size = 0; /* bodies are not read */
        return MHD_YES;
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct serve_conn *sc = ci ? ci->socket_context : NULL;
    if (!sc)
        return MHD_NO;
    __atomic_add_fetch(&sv->requests, 1, __ATOMIC_RELAXED);
    return serve_route(sv, sc, c, url, method);
}

/* ---- the monitor: changes and stalls ---- */

void serve_wake(struct serve *sv)
{
    pthread_mutex_lock(&sv->mu);
    sv->gen++;
    pthread_cond_broadcast(&sv->cond);
    pthread_mutex_unlock(&sv->mu);
}

double serve_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *monitor(void *arg)
{
    struct serve *sv = arg;
    struct store *s = NULL;
    double next_stall = 0, period = sv->stall.min_s / 4;
    if (period > 10)
        period = 10;
    if (period < 0.5)
        period = 0.5;
    bool told = false;
    while (!sv->stopping) {
        char reason[512];
        if (!s) {
            if (store_open_readonly(sv->store_url, &s, reason, sizeof(reason)) < 0) {
                s = NULL;
                if (!told)
                    em_log(EM_LOG_ERROR, "serve: %s (trying again every second)", reason);
                told = true;
                serve_wake(sv); /* the streams look for themselves */
                sleep(1);
                continue;
            }
            if (told)
                em_log(EM_LOG_INFO, "serve: the store can be read again");
            told = false;
        }
        int rc = store_wait_change(s, 500, reason, sizeof(reason));
        if (rc < 0) {
            em_log(EM_LOG_WARN, "serve: %s (reconnecting)", reason);
            store_close(s);
            s = NULL;
            serve_wake(sv);
            continue;
        }
        if (rc == 1)
            serve_wake(sv);
        double t = be_mono_s();
        if (t >= next_stall) {
            serve_check_stalls(sv, s, serve_now());
            next_stall = t + period;
        }
    }
    store_close(s);
    return NULL;
}

/* ---- start and stop ---- */

static int serve_main(const struct emopt *o)
{
    size_t nargs;
    char *const *args = emopt_args(o, &nargs);
    if (nargs)
        return emopt_usage_error(o, "%s: unknown argument (see 'em-backend help serve')", args[0]);
    static struct serve sv; /* the threads share it until they are joined */
    memset(&sv, 0, sizeof(sv));
    sv.store_url = be_store_url(emopt_get(o, S_STORE));
    if (!sv.store_url)
        return BE_USAGE;
    if (be_stall_rule(o, S_STALL_FACTOR, S_STALL_MIN, S_IDLE_AFTER, &sv.stall) < 0)
        return BE_USAGE;
    long max_clients = 256;
    if (!emopt_long(o, S_MAX_CLIENTS, 1, 10000, &max_clients))
        return BE_USAGE;
    const char *listen = emopt_get(o, S_LISTEN) ? emopt_get(o, S_LISTEN) : "127.0.0.1:8080";
    char why[600];
    struct sockaddr_storage addr;
    socklen_t alen;
    bool loopback;
    if (parse_listen(listen, &addr, &alen, &loopback, why, sizeof(why)) < 0)
        return emopt_usage_error(o, "%s", why);
    const char *token_file = emopt_get(o, S_TOKEN_FILE);
    if (!loopback && !token_file)
        return emopt_usage_error(
            o,
            "--listen %s: other machines could read the store through it; give --token-file "
            "FILE (a bearer token the clients must send; make one with: head -c 32 "
            "/dev/urandom | base64 > FILE), and --tls-cert/--tls-key to encrypt, or listen on "
            "127.0.0.1",
            listen);
    if (token_file && load_token(&sv, token_file, why, sizeof(why)) < 0)
        return emopt_usage_error(o, "--token-file %s", why);
    const char *cert_file = emopt_get(o, S_TLS_CERT), *key_file = emopt_get(o, S_TLS_KEY);
    if (!cert_file != !key_file)
        return emopt_usage_error(o, "TLS needs both --tls-cert and --tls-key");
    char *cert = NULL, *key = NULL;
    if (cert_file) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
            return emopt_usage_error(o, "this libmicrohttpd was built without TLS");
        if (!(cert = read_small(cert_file, 1u << 20, why, sizeof(why))) ||
            !(key = read_small(key_file, 1u << 20, why, sizeof(why)))) {
            free(cert);
            return emopt_usage_error(o, "%s", why);
        }
    }
    const char *image_root = emopt_get(o, S_IMAGE_ROOT);
    if (image_root &&
        serve_image_roots(image_root, &sv.image_roots, &sv.nimage_roots, why, sizeof(why)) < 0) {
        free(cert);
        free(key);
        return emopt_usage_error(o, "%s", why);
    }
    const char *amqp = emopt_get(o, S_AMQP);
    if (amqp) {
        if (bus_target_parse(&sv.bus, amqp, emopt_get(o, S_AMQP_CA), NULL, NULL, why, sizeof(why)) <
            0) {
            free(cert);
            free(key);
            serve_image_roots_free(sv.image_roots, sv.nimage_roots);
            return emopt_usage_error(o, "--amqp: %s", why);
        }
        sv.have_bus = true;
    }
    /* The store must be readable now: a typo must not make a server of errors. */
    struct store *probe;
    int rc = store_open_readonly(sv.store_url, &probe, why, sizeof(why));
    if (rc < 0) {
        fprintf(stderr, "em-backend: serve: %s\n", why);
        free(cert);
        free(key);
        serve_image_roots_free(sv.image_roots, sv.nimage_roots);
        if (sv.have_bus)
            bus_target_free(&sv.bus);
        return rc == -EM_EUSAGE ? BE_USAGE : BE_FAILED;
    }
    snprintf(sv.store_redacted, sizeof(sv.store_redacted), "%s", probe->redacted);
    store_close(probe);
    pthread_mutex_init(&sv.mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&sv.cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&sv.stall_mu, NULL);
    pthread_mutex_init(&sv.cache_mu, NULL);
    sv.started = serve_now();

    signal(SIGPIPE, SIG_IGN);
    /* SIGTERM and SIGINT are taken by sigwait() below: blocked here, before any thread
     * starts, so that no other thread is interrupted by them. */
    sigset_t stop_set;
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGTERM);
    sigaddset(&stop_set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_set, NULL);

    unsigned flags =
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (cert)
        flags |= MHD_USE_TLS;
    struct MHD_OptionItem tls_opts[] = {
        {cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, key},
        {MHD_OPTION_END, 0, NULL},
    };
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, &sv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)max_clients, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)120, MHD_OPTION_NOTIFY_CONNECTION, on_connection, &sv, MHD_OPTION_ARRAY, tls_opts,
        MHD_OPTION_END);
    if (!d) {
        fprintf(stderr,
                "em-backend: serve: cannot listen on %s: %s (is another server on that port? "
                "give --listen with another)\n",
                listen, errno ? strerror(errno) : "refused");
        free(cert);
        free(key);
        serve_image_roots_free(sv.image_roots, sv.nimage_roots);
        if (sv.have_bus)
            bus_target_free(&sv.bus);
        return BE_FAILED;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    unsigned port = di ? di->port : 0;
    const char *port_file = emopt_get(o, S_PORT_FILE);
    if (port_file) {
        FILE *f = fopen(port_file, "w");
        if (!f || fprintf(f, "%u\n", port) < 0 || fclose(f) != 0)
            em_log(EM_LOG_WARN, "%s: cannot write the port", port_file);
    }
    char shown[160];
    snprintf(shown, sizeof(shown), "%.*s:%u", (int)(strrchr(listen, ':') - listen), listen, port);
    if (!cli_quiet)
        em_log_write(EM_LOG_INFO, "serving %s on %s://%s/%s%s%s", sv.store_redacted,
                     cert ? "https" : "http", shown, sv.token_len ? " (bearer token required)" : "",
                     sv.have_bus ? "; stall alerts to the bus" : "",
                     sv.nimage_roots ? "; images from --image-root" : "");
    pthread_t mon;
    bool have_mon = pthread_create(&mon, NULL, monitor, &sv) == 0;
    if (!have_mon)
        em_log(EM_LOG_WARN, "serve: cannot start the monitor: live updates poll every second");
    int sig = 0;
    while (sigwait(&stop_set, &sig) != 0)
        ;
    if (!cli_quiet)
        em_log_write(EM_LOG_INFO, "stopping: %" PRIu64 " requests served",
                     __atomic_load_n(&sv.requests, __ATOMIC_RELAXED));
    pthread_mutex_lock(&sv.mu);
    sv.stopping = true;
    pthread_cond_broadcast(&sv.cond);
    pthread_mutex_unlock(&sv.mu);
    MHD_stop_daemon(d);
    if (have_mon)
        pthread_join(mon, NULL);
    serve_alerts_close(&sv);
    free(sv.sessions_json);
    free(cert);
    free(key);
    serve_image_roots_free(sv.image_roots, sv.nimage_roots);
    if (sv.have_bus)
        bus_target_free(&sv.bus);
    return BE_OK;
}

int cmd_serve(int argc, char **argv)
{
    static const struct emopt_command c = {"em-backend", "serve", serve_usage, "EM_BACKEND_",
                                           serve_opts,   S_COUNT, serve_main};
    return emopt_run(&c, argc, argv);
}
