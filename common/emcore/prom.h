/* prom.h — writing the Prometheus text exposition format (the agent's --metrics-file and
 * em-backend serve's /metrics): a metric's HELP and TYPE lines, and label values. */
#ifndef EM_PROM_H
#define EM_PROM_H

#include "dynbuf.h"

/* "# HELP name help\n# TYPE name type\n". Returns 0 or a negative EM_E*. */
int prom_header(struct dynbuf *b, const char *name, const char *type, const char *help);

/* `v` as a label value (without the quotes): backslash, double quote and newline
 * escaped; NULL as "". Returns 0 or a negative EM_E*. */
int prom_label(struct dynbuf *b, const char *v);

#endif
