#include "jsonw.h"

#include <float.h>
#include <stdbool.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "em_error.h"
#include "em_fmt.h"

static int add_str(struct dynbuf *out, const char *s)
{
    return dynbuf_add(out, s, strlen(s));
}

static int add_int(struct dynbuf *out, int64_t v)
{
    char buf[20];
    return dynbuf_add(out, buf, (size_t)(em_fmt_i64(buf, v) - buf));
}

/* cJSON's rule, kept exactly: 15 significant digits ("%1.15g"), or 17 when 15 do not read
 * back as the same double (within one DBL_EPSILON of the larger). A whole number below
 * 1e15 comes out of "%1.15g" as its digits, so it is written without printf; -0 is not
 * one of them ("%g" writes "-0"). */
int jsonw_double(struct dynbuf *out, double d)
{
    if (isnan(d) || isinf(d))
        return add_str(out, "null");
    if (fabs(d) < 1e15 && d == floor(d) && !(d == 0 && signbit(d)))
        return add_int(out, (int64_t)d);
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%1.15g", d);
    char *end;
    double back = strtod(buf, &end);
    double most = fabs(back) > fabs(d) ? fabs(back) : fabs(d);
    if (end == buf || !(fabs(back - d) <= most * DBL_EPSILON))
        n = snprintf(buf, sizeof(buf), "%1.17g", d);
    if (n < 0 || (size_t)n >= sizeof(buf))
        return -EM_EINVAL;
    return dynbuf_add(out, buf, (size_t)n);
}

int jsonw_string(struct dynbuf *out, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    int rc = dynbuf_add(out, "\"", 1);
    if (!s)
        return rc == 0 ? dynbuf_add(out, "\"", 1) : rc;
    const char *run = s;
    for (const unsigned char *p = (const unsigned char *)s; rc == 0; p++) {
        unsigned char c = *p;
        if (c >= 32 && c != '"' && c != '\\')
            continue;
        rc = dynbuf_add(out, run, (size_t)((const char *)p - run));
        if (rc < 0 || c == '\0')
            break;
        char esc[6] = {'\\', 0};
        size_t n = 2;
        switch (c) {
        case '"':
        case '\\':
            esc[1] = (char)c;
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
        }
        rc = dynbuf_add(out, esc, n);
        run = (const char *)p + 1;
    }
    return rc == 0 ? dynbuf_add(out, "\"", 1) : rc;
}

static int add_value(struct dynbuf *out, const cJSON *item, unsigned depth)
{
    if (depth > CJSON_NESTING_LIMIT)
        return -EM_ELIMIT;
    int rc;
    switch (item->type & 0xFF) {
    case cJSON_NULL:
        return add_str(out, "null");
    case cJSON_False:
        return add_str(out, "false");
    case cJSON_True:
        return add_str(out, "true");
    case cJSON_Number:
        return jsonw_double(out, item->valuedouble);
    case cJSON_Raw:
        return item->valuestring ? add_str(out, item->valuestring) : -EM_EINVAL;
    case cJSON_String:
        return jsonw_string(out, item->valuestring);
    case cJSON_Array:
    case cJSON_Object: {
        bool object = (item->type & 0xFF) == cJSON_Object;
        rc = dynbuf_add(out, object ? "{" : "[", 1);
        for (const cJSON *c = item->child; c && rc == 0; c = c->next) {
            if (c != item->child)
                rc = dynbuf_add(out, ",", 1);
            if (rc == 0 && object) {
                rc = jsonw_string(out, c->string);
                if (rc == 0)
                    rc = dynbuf_add(out, ":", 1);
            }
            if (rc == 0)
                rc = add_value(out, c, depth + 1);
        }
        return rc == 0 ? dynbuf_add(out, object ? "}" : "]", 1) : rc;
    }
    default:
        return -EM_EINVAL;
    }
}

int jsonw_append(struct dynbuf *out, const cJSON *item)
{
    return item ? add_value(out, item, 0) : -EM_EINVAL;
}

char *jsonw_print(const cJSON *item)
{
    struct dynbuf b;
    dynbuf_init(&b, SIZE_MAX / 2);
    if (jsonw_append(&b, item) < 0) {
        dynbuf_free(&b);
        return NULL;
    }
    /* Callers free with cJSON_free(): copy into cJSON's allocator. */
    char *s = cJSON_malloc(b.len + 1);
    if (s)
        memcpy(s, b.p ? b.p : "", b.len + 1);
    dynbuf_free(&b);
    return s;
}
