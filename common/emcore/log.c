#include "em_compat.h"
#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "em_utf8.h"

enum em_log_level em_log_threshold = EM_LOG_WARN;
static enum em_log_format log_format = EM_LOG_TEXT;
static FILE *log_file;      /* NULL: stderr */
static char log_path[4096]; /* reopened on request (SIGHUP after a rotation) */
static const char *log_name = "em-agent";

static const char *const level_names[] = {"error", "warning", "info", "debug"};

void em_log_setup(enum em_log_level level, enum em_log_format format)
{
    em_log_threshold = level;
    log_format = format;
}

void em_log_write(enum em_log_level level, const char *fmt, ...)
{
    char small[2048], *msg = small;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    /* A message with a long path (up to a few of PATH_MAX) keeps its end, where the
     * reason is: format it again into a buffer of its size, within 64 KiB. */
    char *big = NULL;
    if (n >= (int)sizeof(small) && n < 65536 && (big = malloc((size_t)n + 1)) != NULL) {
        va_start(ap, fmt);
        vsnprintf(big, (size_t)n + 1, fmt, ap);
        va_end(ap);
        msg = big;
    }
    if (log_format == EM_LOG_JSON) {
        struct timespec now;
        em_now(&now);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "ts", (double)now.tv_sec + (double)now.tv_nsec / 1e9);
        cJSON_AddStringToObject(o, "level", level_names[level]);
        /* A message naming a path that is not UTF-8 must not break the JSON line. */
        char *esc = NULL;
        size_t len = strlen(msg);
        if (!em_utf8_valid(msg, len) && (esc = malloc(4 * len + 1)) != NULL)
            em_utf8_escape(msg, len, esc, false);
        cJSON_AddStringToObject(o, "msg", esc ? esc : msg);
        free(esc);
        char *line = cJSON_PrintUnformatted(o);
        if (line)
            fprintf(log_file ? log_file : stderr, "%s\n", line);
        cJSON_free(line);
        cJSON_Delete(o);
    } else {
        /* "prog: subject: reason" on a terminal; warnings and debug lines say so, and a
         * log file labels errors too (it is read later, among other lines). */
        bool label = level == EM_LOG_WARN || level == EM_LOG_DEBUG ||
                     (level == EM_LOG_ERROR && log_file != NULL);
        fprintf(log_file ? log_file : stderr, "%s: %s%s%s\n", log_name,
                label ? level_names[level] : "", label ? ": " : "", msg);
    }
    free(big);
}

int em_log_open(const char *path)
{
    FILE *f = fopen(path, "a");
    if (!f)
        return -1;
    setvbuf(f, NULL, _IOLBF, 0);
    if (log_file)
        fclose(log_file);
    log_file = f;
    snprintf(log_path, sizeof(log_path), "%s", path);
    return 0;
}

int em_log_reopen(void)
{
    return log_path[0] ? em_log_open(log_path) : 0;
}

void em_log_close(void)
{
    if (log_file)
        fclose(log_file);
    log_file = NULL;
    log_path[0] = '\0';
}

void em_log_set_name(const char *name)
{
    log_name = name;
}

enum em_log_format em_log_get_format(void)
{
    return log_format;
}
