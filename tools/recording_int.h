/* recording_int.h — helpers shared by the recording writer, packer and reader (not
 * part of recording.h's interface). */
#ifndef EM_RECORDING_INT_H
#define EM_RECORDING_INT_H

#include "em_compat.h"
#include <stddef.h>

#include <archive.h>

#include "dynbuf.h"

/* Formats a message into err (when given). */
void rec_fail(char *err, size_t errlen, const char *fmt, ...) EM_PRINTF(3, 4);

/* libarchive's message for the last error, lower case like every message here. */
const char *rec_arc_msg(struct archive *a);

/* Appends `s` as a JSON string; the text is valid UTF-8 (rec_path_check) or plain ASCII. */
int rec_json_str(struct dynbuf *b, const char *s);

#endif
