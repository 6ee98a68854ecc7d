/* Loader arguments and safe file names (loaders.h). */
#include "loaders.h"

#include <stdio.h>
#include <string.h>

#include "em_error.h"

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

int loader_file_name(const char *url, char *out, size_t cap)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    const char *end = p + strcspn(p, "?#");
    const char *slash = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == '/')
            slash = q;
    const char *name = slash ? slash + 1 : end; /* no path: no name */
    size_t n = 0;
    for (const char *q = name; q < end; q++) {
        int c = (unsigned char)*q;
        if (c == '%' && end - q >= 3 && hexval(q[1]) >= 0 && hexval(q[2]) >= 0) {
            c = hexval(q[1]) * 16 + hexval(q[2]);
            q += 2;
        }
        if (c < 32 || c == 127 || c == '/' || c == '\\' || n + 1 >= cap || n >= 200)
            return -EM_EVALUE;
        out[n++] = (char)c;
    }
    out[n] = '\0';
    if (n == 0 || strcmp(out, ".") == 0 || strcmp(out, "..") == 0 || out[0] == '.')
        return -EM_EVALUE; /* nothing, a directory, or a hidden name the loader uses itself */
    return 0;
}

bool loader_known(const char *name)
{
    static const char *const names[] = {"url",  "movie",  "idr",          "dvid",
                                        "epfl", "empiar", "openorganelle"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(name, names[i]) == 0)
            return true;
    return false;
}

bool loader_safe_path(const char *p)
{
    if (!p[0] || p[0] == '/' || strlen(p) > 1000)
        return false;
    for (const char *c = p; *c;) {
        size_t n = strcspn(c, "/");
        if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
            return false;
        for (size_t i = 0; i < n; i++) {
            unsigned char ch = (unsigned char)c[i];
            if (ch < 32 || ch == 127 || ch == '\\' || ch == '?' || ch == '#' || ch == '%')
                return false;
        }
        c += n;
        if (*c == '/' && !*++c)
            return false; /* a trailing '/' */
    }
    return true;
}

int loader_check(const char *loader, const char *const *args, size_t n, char *why, size_t cap)
{
    if (strcmp(loader, "url") == 0) {
        if (n == 0) {
            snprintf(why, cap, "url: which URL?");
            return -EM_EUSAGE;
        }
        for (size_t i = 0; i < n; i++) {
            char name[256];
            const char *hash = strstr(args[i], "#sha256=");
            if (!strstr(args[i], "://")) {
                snprintf(why, cap, "url: %s: not a URL (scheme://…)", args[i]);
                return -EM_EUSAGE;
            }
            if (loader_file_name(args[i], name, sizeof(name)) < 0) {
                snprintf(why, cap, "url: %s: names no file (the path must end in a file name)",
                         args[i]);
                return -EM_EUSAGE;
            }
            if (hash && strlen(hash + 8) != 64) {
                snprintf(why, cap, "url: %s: #sha256= takes 64 hex digits", args[i]);
                return -EM_EUSAGE;
            }
        }
        return 0;
    }
    if (strcmp(loader, "movie") == 0) {
        /* BASE_URL and a micrograph's path relative to it (from its event). */
        if (n != 2 || !strstr(args[0], "://")) {
            snprintf(why, cap, "movie: expected BASE_URL and the micrograph's path");
            return -EM_EUSAGE;
        }
        size_t len = strlen(args[1]);
        if (len < 5 || strcmp(args[1] + len - 4, ".xml") != 0 || args[1][0] == '/' ||
            strstr(args[1], "..") || strchr(args[1], '\\')) {
            snprintf(why, cap, "movie: %s: not a micrograph manifest's relative path", args[1]);
            return -EM_EUSAGE;
        }
        return 0;
    }
    if (strcmp(loader, "idr") == 0) {
        if (n != 1 || strspn(args[0], "0123456789") != strlen(args[0]) || !args[0][0] ||
            strlen(args[0]) > 18) {
            snprintf(why, cap, "idr: expected an image id (digits)");
            return -EM_EUSAGE;
        }
        return 0;
    }
    if (strcmp(loader, "epfl") == 0) {
        if (n > 1 || (n == 1 && !strstr(args[0], "://"))) {
            snprintf(why, cap, "epfl: expected nothing, or the volume's URL");
            return -EM_EUSAGE;
        }
        return 0;
    }
    if (strcmp(loader, "dvid") == 0) {
        long long b[6];
        char end;
        if (n != 4 || !strstr(args[0], "://") ||
            sscanf(args[3], "%lld,%lld,%lld,%lld,%lld,%lld%c", &b[0], &b[1], &b[2], &b[3], &b[4],
                   &b[5], &end) != 6 ||
            b[0] < 0 || b[1] < 0 || b[2] < 0 || b[3] < 1 || b[4] < 1 || b[5] < 1 || b[3] > 100000 ||
            b[4] > 100000 || b[5] > 100000 ||
            strspn(args[1], "0123456789abcdefABCDEF") != strlen(args[1]) ||
            strspn(args[2], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
                strlen(args[2])) {
            snprintf(why, cap,
                     "dvid: expected SERVER UUID INSTANCE X0,Y0,Z0,DX,DY,DZ (the box in "
                     "voxels, X first)");
            return -EM_EUSAGE;
        }
        return 0;
    }
    if (strcmp(loader, "empiar") == 0) {
        const char *id = n == 1 && strncmp(args[0], "EMPIAR-", 7) == 0 ? args[0] + 7
                         : n == 1                                      ? args[0]
                                                                       : "";
        if (!id[0] || strspn(id, "0123456789") != strlen(id) || strlen(id) > 9) {
            snprintf(why, cap, "empiar: expected an entry number (11759 or EMPIAR-11759)");
            return -EM_EUSAGE;
        }
        return 0;
    }
    if (strcmp(loader, "openorganelle") == 0) {
        if (n != 2 || !loader_safe_path(args[0]) || strchr(args[0], '/') ||
            !loader_safe_path(args[1])) {
            snprintf(why, cap,
                     "openorganelle: expected BUCKET and the Zarr group or array's PATH in it "
                     "(janelia-cosem-datasets jrc_mus-nacc-2/jrc_mus-nacc-2.zarr/recon-2/em/"
                     "fibsem-int16/s4)");
            return -EM_EUSAGE;
        }
        return 0;
    }
    snprintf(why, cap, "%s: unknown loader (url, movie, idr, dvid, epfl, empiar, openorganelle)",
             loader);
    return -EM_EUSAGE;
}
