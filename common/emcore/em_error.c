#include "em_error.h"

#include <errno.h>

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

int em_from_errno(int errnum)
{
    switch (errnum) {
    case ENOENT:
    case ENOTDIR:
        return -EM_ENOENT;
    case ENOMEM:
        return -EM_ENOMEM;
    case EACCES:
    case EPERM:
        return -EM_EACCES;
    case ENOSPC:
        return -EM_ENOSPC;
    case EISDIR:
        return -EM_EISDIR;
    case ENAMETOOLONG:
        return -EM_ENAMETOOLONG;
    case EPIPE:
        return -EM_EPIPE;
    case EROFS:
        return -EM_EROFS;
    case ELOOP:
        return -EM_ELOOP;
#ifdef EDQUOT
    case EDQUOT:
        return -EM_EDQUOT;
#endif
    default:
        return -EM_EIO;
    }
}
