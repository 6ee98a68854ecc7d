#include "prom.h"

int prom_header(struct dynbuf *b, const char *name, const char *type, const char *help)
{
    return dynbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int prom_label(struct dynbuf *b, const char *v)
{
    int rc = 0;
    for (const char *p = v ? v : ""; *p && rc == 0; p++) {
        if (*p == '\\' || *p == '"')
            rc = dynbuf_printf(b, "\\%c", *p);
        else if (*p == '\n')
            rc = dynbuf_printf(b, "\\n");
        else
            rc = dynbuf_add(b, p, 1);
    }
    return rc;
}
