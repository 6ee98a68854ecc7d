#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <uv.h>

enum em_log_level em_log_threshold = EM_LOG_WARN;
static enum em_log_format log_format = EM_LOG_TEXT;

static const char *const level_names[] = {"error", "warning", "info", "debug"};

void em_log_setup(enum em_log_level level, enum em_log_format format)
{
    em_log_threshold = level;
    log_format = format;
}

void em_log_write(enum em_log_level level, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (log_format == EM_LOG_JSON) {
        uv_timeval64_t now;
        uv_gettimeofday(&now);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "ts", (double)now.tv_sec + now.tv_usec / 1e6);
        cJSON_AddStringToObject(o, "level", level_names[level]);
        cJSON_AddStringToObject(o, "msg", msg);
        char *line = cJSON_PrintUnformatted(o);
        if (line)
            fprintf(stderr, "%s\n", line);
        cJSON_free(line);
        cJSON_Delete(o);
        return;
    }
    fprintf(stderr, "em-agent: %s%s%s\n", level == EM_LOG_INFO ? "" : level_names[level],
            level == EM_LOG_INFO ? "" : ": ", msg);
}
