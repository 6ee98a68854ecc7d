/* The packer: a recording copied into a compressed archive, streamed. */
#include "recording.h"
#include "recording_int.h"
#include "cli_common.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <cjson/cJSON.h>

#include "dynbuf.h"
#include "em_error.h"

int rec_pack(const char *in, const char *out, enum rec_compression c, char *err, size_t errlen)
{
    size_t tmplen = strlen(out) + 5;
    char *tmp = malloc(tmplen);
    if (!tmp)
        return -EM_ENOMEM;
    snprintf(tmp, tmplen, "%s.tmp", out);
    struct archive *r = archive_read_new();
    struct archive *w = archive_write_new();
    int rc = -EM_EIO;
    if (!r || !w)
        goto out;
    archive_read_support_filter_all(r);
    archive_read_support_format_tar(r);
    if (archive_read_open_filename(r, in, 1 << 16) != ARCHIVE_OK) {
        rec_fail(err, errlen, "%s: %s", in, rec_arc_msg(r));
        goto out;
    }
    archive_write_set_format_pax_restricted(w);
    int frc = c == REC_GZIP   ? archive_write_add_filter_gzip(w)
              : c == REC_ZSTD ? archive_write_add_filter_zstd(w)
                              : archive_write_add_filter_none(w);
    if (frc != ARCHIVE_OK || archive_write_open_filename(w, tmp) != ARCHIVE_OK) {
        rec_fail(err, errlen, "%s: %s", tmp, rec_arc_msg(w));
        goto out;
    }
    struct archive_entry *e;
    unsigned char *body = NULL;
    size_t cap = 0;
    int hr;
    while ((hr = archive_read_next_header(r, &e)) == ARCHIVE_OK) {
        la_int64_t size = archive_entry_size(e);
        if (archive_entry_filetype(e) != AE_IFREG || size < 0 || (uint64_t)size > REC_MAX_DATA)
            continue;
        /* Whole entries only: a torn last entry (the recorder was killed) is left out
         * rather than padded. */
        if ((size_t)size > cap) {
            unsigned char *q = realloc(body, (size_t)size);
            if (!q) {
                free(body);
                goto out;
            }
            body = q;
            cap = (size_t)size;
        }
        size_t got = 0;
        la_ssize_t k = 1;
        while (got < (size_t)size && (k = archive_read_data(r, body + got, (size_t)size - got)) > 0)
            got += (size_t)k;
        if (got < (size_t)size)
            break;
        if (archive_write_header(w, e) != ARCHIVE_OK ||
            archive_write_data(w, body, got) != (la_ssize_t)got) {
            rec_fail(err, errlen, "%s: %s", tmp, rec_arc_msg(w));
            free(body);
            goto out;
        }
    }
    free(body);
    if (archive_write_close(w) != ARCHIVE_OK) {
        rec_fail(err, errlen, "%s: %s", tmp, rec_arc_msg(w));
        goto out;
    }
    if (rename(tmp, out) < 0) {
        rec_fail(err, errlen, "%s: %s", out, cli_strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (r)
        archive_read_free(r);
    if (w)
        archive_write_free(w);
    if (rc)
        unlink(tmp);
    free(tmp);
    return rc;
}
