/* log.h — the agent's one logging macro.
 *
 * em_log(level, fmt, ...) writes one line to stderr if `level` is enabled; the check
 * happens before any formatting (redis's habit), so disabled debug lines cost a compare.
 * Messages start lower-case and name the path and the error. The level and format are
 * the only global mutable state of the agent, set once from main().
 */
#ifndef EM_LOG_H
#define EM_LOG_H
#include "em_compat.h"

enum em_log_level { EM_LOG_ERROR = 0, EM_LOG_WARN, EM_LOG_INFO, EM_LOG_DEBUG };
enum em_log_format { EM_LOG_TEXT = 0, EM_LOG_JSON };

extern enum em_log_level em_log_threshold;

/* Sets the threshold and output format. Call from main() before threads start. */
void em_log_setup(enum em_log_level level, enum em_log_format format);
enum em_log_format em_log_get_format(void);

/* The program name that starts each text line ("em-agent" unless set). `name` must
 * stay valid; call from main() before threads start. */
void em_log_set_name(const char *name);

/* Sends log lines to the file `path` (appending) instead of stderr. Returns 0 or -1.
 * Loop thread only, like em_log_reopen() (for SIGHUP after a log rotation) and
 * em_log_close(). */
int em_log_open(const char *path);
int em_log_reopen(void);
void em_log_close(void);

/* Formats and writes one line; use em_log() instead. Any thread (one write per line). */
void em_log_write(enum em_log_level level, const char *fmt, ...) EM_PRINTF(2, 3);

#define em_log(level, ...)                                                                         \
    do {                                                                                           \
        if ((level) <= em_log_threshold)                                                           \
            em_log_write((level), __VA_ARGS__);                                                    \
    } while (0)

#endif
