#include <stdio.h>
#include <time.h>

#include "backend.h"
#include "em_error.h"
#include "log.h"
#include "rules.h"

const char *be_store_url(const char *opt)
{
    if (opt)
        return opt;
    fprintf(stderr, "em-backend: which store? give --store sqlite:PATH or "
                    "--store postgresql://… (or set EM_BACKEND_STORE)\n");
    return NULL;
}

int be_rules(struct rules *r, const char *movies, const char *file, char *why, size_t cap)
{
    if (file) {
        int rc = rules_load(r, file, why, cap);
        if (rc < 0)
            return rc;
        em_log(EM_LOG_INFO, "%s: %zu rule%s", file, r->n, r->n == 1 ? "" : "s");
    }
    if (movies && rules_add_movies(r, movies) < 0) {
        snprintf(why, cap, "--movies: too many rules");
        return -EM_EUSAGE;
    }
    return 0;
}

double be_mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
