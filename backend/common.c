#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "log.h"

bool be_opt(int argc, char **argv, int *i, const char *name, const char **value, bool *bad)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, "--", 2) != 0 || strncmp(a + 2, name, n) != 0)
        return false;
    if (a[2 + n] == '=') {
        *value = a + 3 + n;
        return true;
    }
    if (a[2 + n] != '\0')
        return false;
    if (*i + 1 >= argc) {
        fprintf(stderr, "em-backend: --%s needs a value\n", name);
        *bad = true;
        return true;
    }
    *value = argv[++*i];
    return true;
}

bool be_number(const char *name, const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *end || errno || x < lo || x > hi) {
        fprintf(stderr, "em-backend: --%s takes a number from %ld to %ld, not '%s'\n", name, lo, hi,
                v);
        return false;
    }
    *out = x;
    return true;
}

const char *be_store_url(const char *opt)
{
    if (opt)
        return opt;
    const char *env = getenv("EM_BACKEND_STORE");
    if (env && *env)
        return env;
    fprintf(stderr, "em-backend: which store? give --store sqlite:PATH or "
                    "--store postgresql://… (or set EM_BACKEND_STORE)\n");
    return NULL;
}
