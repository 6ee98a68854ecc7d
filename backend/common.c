#include <stdio.h>

#include "backend.h"

const char *be_store_url(const char *opt)
{
    if (opt)
        return opt;
    fprintf(stderr, "em-backend: which store? give --store sqlite:PATH or "
                    "--store postgresql://… (or set EM_BACKEND_STORE)\n");
    return NULL;
}
