/* em-backend serve: the images behind the maps. EPU writes a .jpg preview beside each
 * square image's manifest and beside each atlas tile; the events name the manifests by
 * their path relative to the agent's watched root, and the store keeps those paths. With
 * --image-root the server reads the previews from where the same trees are mounted on its
 * machine. Only a regular JPEG file inside a root is ever served: the relative path comes
 * from the store, is refused when it could climb out (absolute, "..", a backslash), and is
 * checked again after the links are followed.
 */
/* realpath(3) */
#define _XOPEN_SOURCE 700
#include "serve.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "em_error.h"

#define IMAGE_MAX_BYTES (64u << 20) /* an EPU preview is tens of kB; a tile a few MB */

void serve_image_roots_free(char **roots, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(roots[i]);
    free(roots);
}

int serve_image_roots(const char *list, char ***roots, size_t *n, char *why, size_t cap)
{
    *roots = NULL;
    *n = 0;
    size_t max = 1;
    for (const char *c = list; *c; c++)
        max += *c == ':';
    char **out = calloc(max, sizeof(*out));
    if (!out) {
        snprintf(why, cap, "out of memory");
        return -EM_ENOMEM;
    }
    size_t k = 0;
    for (const char *p = list; *p;) {
        size_t l = strcspn(p, ":");
        char dir[PATH_MAX];
        if (l == 0 || l >= sizeof(dir)) {
            p += l + (p[l] == ':');
            continue;
        }
        snprintf(dir, sizeof(dir), "%.*s", (int)l, p);
        p += l + (p[l] == ':');
        char *real = realpath(dir, NULL);
        struct stat st;
        if (!real || stat(real, &st) != 0 || !S_ISDIR(st.st_mode)) {
            snprintf(why, cap, "--image-root %s: %s", dir,
                     real ? "not a directory" : strerror(errno));
            free(real);
            serve_image_roots_free(out, k);
            return -EM_EUSAGE;
        }
        out[k++] = real;
    }
    if (k == 0) {
        snprintf(why, cap, "--image-root '%s': no directory in it (DIR, or DIR:DIR:…)", list);
        serve_image_roots_free(out, k);
        return -EM_EUSAGE;
    }
    *roots = out;
    *n = k;
    return 0;
}

/* Whether a path from the store stays below the directory it is joined to. */
static bool safe_relative(const char *rel)
{
    if (!rel[0] || rel[0] == '/' || strchr(rel, '\\') || strlen(rel) >= PATH_MAX / 2)
        return false;
    for (const char *seg = rel; *seg;) {
        size_t l = strcspn(seg, "/");
        if ((l == 2 && seg[0] == '.' && seg[1] == '.') || l == 0)
            return false;
        for (size_t i = 0; i < l; i++)
            if ((unsigned char)seg[i] < 0x20)
                return false;
        seg += l;
        if (*seg == '/')
            seg++;
    }
    return true;
}

int serve_image_open(char *const *roots, size_t nroots, const char *rel, int *fd, uint64_t *size,
                     char *why, size_t cap)
{
    *fd = -1;
    if (!safe_relative(rel)) {
        snprintf(why, cap, "%.200s: not a path below a watched directory; not served", rel);
        return 400;
    }
    if (nroots == 0) {
        snprintf(why, cap,
                 "%.200s: this server reads no images (start it with --image-root DIR, where "
                 "DIR is the directory the agent watches, as mounted here)",
                 rel);
        return 404;
    }
    const char *problem = NULL;
    for (size_t i = 0; i < nroots; i++) {
        char joined[PATH_MAX];
        if ((size_t)snprintf(joined, sizeof(joined), "%s/%s", roots[i], rel) >= sizeof(joined))
            continue;
        char *real = realpath(joined, NULL);
        if (!real)
            continue; /* not under this root: the next */
        size_t rl = strlen(roots[i]);
        bool inside = strncmp(real, roots[i], rl) == 0 && (real[rl] == '/' || rl == 1);
        int f = inside ? open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK) : -1;
        free(real);
        if (!inside) {
            problem = "it leads out of the image root through a link; not served";
            continue;
        }
        struct stat st;
        unsigned char magic[3];
        if (f < 0 || fstat(f, &st) != 0) {
            problem = f < 0 ? strerror(errno) : "cannot be read";
        } else if (!S_ISREG(st.st_mode)) {
            problem = "not a regular file";
        } else if ((uint64_t)st.st_size > IMAGE_MAX_BYTES) {
            problem = "larger than an EPU preview can be (64 MiB); not served";
        } else if (pread(f, magic, 3, 0) != 3 || magic[0] != 0xff || magic[1] != 0xd8 ||
                   magic[2] != 0xff) {
            problem = "not a JPEG file (or not yet written whole)";
        } else {
            *fd = f;
            *size = (uint64_t)st.st_size;
            return 0;
        }
        if (f >= 0)
            close(f);
    }
    if (problem)
        snprintf(why, cap, "%.200s: %s", rel, problem);
    else
        snprintf(why, cap,
                 "%.200s: no such file under the image root%s (EPU may not have "
                 "written it yet)",
                 rel, nroots > 1 ? "s" : "");
    return 404;
}
