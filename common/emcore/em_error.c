#include "em_error.h"

const char *em_strerror(int err)
{
    if (err < 0)
        err = -err;
    switch (err) {
    case EM_OK:
        return "success";
#define EM_ERRNO_CASE(name, text)                                                                  \
    case EM_E##name:                                                                               \
        return text;
        EM_ERRNO_MAP(EM_ERRNO_CASE)
#undef EM_ERRNO_CASE
    default:
        return "unknown error";
    }
}
