/* em_error.h — the project's error codes.
 *
 * Every fallible function returns 0 on success or a negative EM_E* code from the list
 * below; em_strerror() turns a code into a short lower-case description. The list is
 * the single place where codes are defined, so adding one here makes it known everywhere.
 */
#ifndef EM_ERROR_H
#define EM_ERROR_H

#define EM_ERRNO_MAP(X)                                                                            \
    X(NOMEM, "out of memory")                                                                      \
    X(INVAL, "invalid argument")                                                                   \
    X(IO, "input/output error")                                                                    \
    X(NOENT, "no such file or directory")                                                          \
    X(MALFORMED, "malformed document")                                                             \
    X(TRUNCATED, "document is incomplete")                                                         \
    X(HOSTILE, "document rejected for safety")                                                     \
    X(LIMIT, "size or depth limit exceeded")                                                       \
    X(WRONGKIND, "document is not of the requested kind")                                          \
    X(MISSING, "a required field is missing")                                                      \
    X(VALUE, "a field has an invalid value")                                                       \
    X(STATE, "operation not valid in this state")                                                  \
    X(USAGE, "usage error")                                                                        \
    X(ACCES, "permission denied")                                                                  \
    X(NOSPC, "no space left on device")                                                            \
    X(ISDIR, "is a directory")                                                                     \
    X(NAMETOOLONG, "file name too long")                                                           \
    X(PIPE, "broken pipe")                                                                         \
    X(ROFS, "read-only file system")                                                               \
    X(LOOP, "too many levels of symbolic links")                                                   \
    X(DQUOT, "disk quota exceeded")                                                                \
    X(BUSY, "in use by another process without sharing")

enum em_errno {
    EM_OK = 0,
#define EM_ERRNO_ENUM(name, text) EM_E##name,
    EM_ERRNO_MAP(EM_ERRNO_ENUM)
#undef EM_ERRNO_ENUM
        EM_ERRNO_MAX
};

/* Returns a static description of `err`, which may be negative (as functions return it)
 * or positive. Unknown codes give "unknown error". Any thread. */
const char *em_strerror(int err);

/* Turns an errno value (of stdio or a system call) into the negative EM_E* code that names
 * the same cause (EM_EACCES, EM_ENOSPC, EM_EISDIR, ...), EM_EIO for causes without one of
 * their own; 0 gives EM_EIO too, for a call that failed without saying why. */
int em_from_errno(int errnum);

#endif
