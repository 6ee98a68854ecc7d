#include "epu_layout.h"

#include <string.h>

/* The start of the path component "Images-Disc<digits>" in `rel`, or NULL. */
static const char *find_images_disc(const char *rel)
{
    const char *p = rel;
    while (p && *p) {
        if (strncmp(p, "Images-Disc", 11) == 0 && p[11] >= '0' && p[11] <= '9') {
            const char *q = p + 11;
            while (*q >= '0' && *q <= '9')
                q++;
            if (*q == '/' || *q == '\0')
                return p;
        }
        p = strchr(p, '/');
        if (p)
            p++;
    }
    return NULL;
}

/* Length of the directory part of rel[0..len): "a/b/c" -> 3 ("a/b"), "c" -> 0. */
static size_t dir_len(const char *rel, size_t len)
{
    while (len > 0 && rel[len - 1] != '/')
        len--;
    return len > 0 ? len - 1 : 0;
}

static bool parse_i64(const char *p, const char *end, int64_t *out)
{
    if (p >= end || *p < '0' || *p > '9')
        return false;
    int64_t v = 0;
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        if (v > (INT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (*p - '0');
    }
    *out = v;
    return true;
}

void epu_layout_place(const char *rel, struct epu_place *pl)
{
    memset(pl, 0, sizeof(*pl));
    pl->kind = epu_classify_path(rel);
    size_t len = strlen(rel);
    switch (pl->kind) {
    case EPU_KIND_SESSION:
        pl->has_session = true;
        pl->session_len = dir_len(rel, len);
        return;
    case EPU_KIND_GRIDSQUARE_METADATA: {
        size_t mlen = dir_len(rel, len); /* the directory holding the .dm */
        size_t mstart = mlen;
        while (mstart > 0 && rel[mstart - 1] != '/')
            mstart--;
        const char *base = rel + (mlen ? mlen + 1 : 0);
        bool in_metadata = mlen - mstart == 8 && strncmp(rel + mstart, "Metadata", 8) == 0;
        if (!in_metadata || strncmp(base, "GridSquare_", 11) != 0 ||
            !parse_i64(base + 11, rel + len, &pl->gridsquare_id)) {
            pl->unplaced = true;
            return;
        }
        pl->has_session = true;
        pl->session_len = mstart > 0 ? mstart - 1 : 0;
        return;
    }
    case EPU_KIND_GRIDSQUARE_IMAGE:
    case EPU_KIND_FOILHOLE_IMAGE:
    case EPU_KIND_MICROGRAPH: {
        const char *disc = find_images_disc(rel);
        if (!disc || !epu_name_gridsquare_dir(rel, &pl->gridsquare_id)) {
            pl->unplaced = true;
            return;
        }
        pl->has_session = true;
        pl->session_len = disc == rel ? 0 : (size_t)(disc - rel - 1);
        return;
    }
    default:
        return;
    }
}

bool epu_layout_session_marker(const char *name, bool *is_metadata)
{
    *is_metadata = strcmp(name, "Metadata") == 0;
    return *is_metadata || find_images_disc(name) == name;
}

bool epu_layout_in_session(const char *rel, const struct epu_place *pl, const char *dir)
{
    if (!pl->has_session)
        return false;
    if (pl->session_len == 0)
        return strcmp(dir, ".") == 0 || dir[0] == '\0';
    return strlen(dir) == pl->session_len && strncmp(rel, dir, pl->session_len) == 0;
}
