#include "em_compat.h"
#include "epu_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynbuf.h"
#include "em_error.h"

int epu_fieldset_init(struct epu_fieldset *fs, const struct epu_field *f, size_t n)
{
    memset(fs, 0, sizeof(*fs));
    fs->f = f;
    fs->n = n;
    fs->paths = calloc(n ? n : 1, sizeof(*fs->paths));
    fs->order = calloc(n ? n : 1, sizeof(*fs->order));
    if (!fs->paths || !fs->order) {
        epu_fieldset_free(fs);
        return -EM_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        if (!f[i].path)
            continue;
        int rc = dcs_path_compile(&fs->paths[i], f[i].path);
        if (rc < 0) {
            epu_fieldset_free(fs);
            return rc;
        }
    }
    /* Counting sort by path length, keeping table order within a length. */
    size_t at = 0;
    for (size_t k = 0; k <= DCS_PATH_MAX; k++) {
        fs->by_len[k] = at;
        for (size_t i = 0; i < n; i++)
            if (f[i].path && fs->paths[i].n == k)
                fs->order[at++] = i;
    }
    fs->by_len[DCS_PATH_MAX + 1] = at;
    return 0;
}

void epu_fieldset_free(struct epu_fieldset *fs)
{
    free(fs->paths);
    free(fs->order);
    fs->paths = NULL;
    fs->order = NULL;
}

int epu_int_parse(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (len > 0 && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        i = 1;
    }
    if (i == len || len - i > 18)
        return -EM_EVALUE;
    int64_t v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EM_EVALUE;
        v = v * 10 + (s[i] - '0');
    }
    *out = neg ? -v : v;
    return 0;
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int64_t m)
{
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dm[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int64_t *m, int64_t *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yoe + era * 400 + (*m <= 2);
}

static bool digits(const char *s, size_t n, int64_t *out)
{
    return epu_int_parse(s, n, out) == 0 && s[0] != '-' && s[0] != '+';
}

int epu_time_parse(const char *s, size_t len, struct epu_time *out)
{
    int64_t y, mo, d, h, mi, sec, frac = 0;
    if (len < 19 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
        s[16] != ':')
        return -EM_EVALUE;
    if (!digits(s, 4, &y) || !digits(s + 5, 2, &mo) || !digits(s + 8, 2, &d) ||
        !digits(s + 11, 2, &h) || !digits(s + 14, 2, &mi) || !digits(s + 17, 2, &sec))
        return -EM_EVALUE;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 ||
        sec > 59)
        return -EM_EVALUE;
    size_t i = 19;
    if (i < len && s[i] == '.') {
        i++;
        size_t start = i;
        int kept = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (kept < 7) {
                frac = frac * 10 + (s[i] - '0');
                kept++;
            }
            i++;
        }
        if (i == start)
            return -EM_EVALUE;
        for (; kept < 7; kept++)
            frac *= 10;
    }
    int64_t offset_min = 0;
    if (i < len) {
        if ((s[i] == 'Z' || s[i] == 'z') && i + 1 == len) {
            i++;
        } else if ((s[i] == '+' || s[i] == '-') && len - i == 6 && s[i + 3] == ':') {
            int64_t oh, om;
            if (!digits(s + i + 1, 2, &oh) || !digits(s + i + 4, 2, &om) || oh > 23 || om > 59)
                return -EM_EVALUE;
            offset_min = (oh * 60 + om) * (s[i] == '-' ? -1 : 1);
            i = len;
        } else {
            return -EM_EVALUE;
        }
    }
    if (i != len)
        return -EM_EVALUE;
    int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
    int64_t rem = t - days * 86400;
    civil_from_days(days, &y, &mo, &d);
    if (y < 1 || y > 9999)
        return -EM_EVALUE;
    /* Every part is in range here; the wide buffer only keeps the compiler's
     * truncation analysis quiet. */
    char buf[64];
    snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%07dZ", (int)y, (int)mo, (int)d,
             (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60), (int)frac);
    memcpy(out->s, buf, sizeof(out->s) - 1);
    out->s[sizeof(out->s) - 1] = '\0';
    out->set = true;
    return 0;
}

static void put_digits(char *p, int64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v /= 10)
        p[i] = (char)('0' + v % 10);
}

void epu_time_from_unix(int64_t sec, int32_t nsec, struct epu_time *out)
{
    int64_t days = sec >= 0 ? sec / 86400 : -((-sec + 86399) / 86400);
    int64_t rem = sec - days * 86400, y, m, d;
    civil_from_days(days, &y, &m, &d);
    out->set = true;
    if (y >= 0 && y <= 9999) { /* digits written directly: every event has two of these */
        char *p = out->s;
        put_digits(p, y, 4);
        p[4] = '-';
        put_digits(p + 5, m, 2);
        p[7] = '-';
        put_digits(p + 8, d, 2);
        p[10] = 'T';
        put_digits(p + 11, rem / 3600, 2);
        p[13] = ':';
        put_digits(p + 14, rem / 60 % 60, 2);
        p[16] = ':';
        put_digits(p + 17, rem % 60, 2);
        p[19] = '.';
        put_digits(p + 20, (nsec < 0 ? 0 : nsec) / 100, 7);
        p[27] = 'Z';
        p[28] = '\0';
        return;
    }
    char buf[64];
    snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%07dZ", (int)y, (int)m, (int)d,
             (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60),
             (int)((nsec < 0 ? 0 : nsec) / 100));
    memcpy(out->s, buf, sizeof(out->s) - 1);
    out->s[sizeof(out->s) - 1] = '\0';
    out->set = true;
}

static bool slot_is_set(enum epu_ftype type, const void *slot)
{
    switch (type) {
    case EPU_T_INT:
        return ((const struct epu_int *)slot)->set;
    case EPU_T_REAL:
        return ((const struct epu_real *)slot)->set;
    case EPU_T_FLAG:
        return ((const struct epu_flag *)slot)->set;
    case EPU_T_STR:
        return *(char *const *)slot != NULL;
    case EPU_T_TIME:
        return ((const struct epu_time *)slot)->set;
    }
    return false;
}

int epu_field_set(struct dcs_reader *r, const char *what, enum epu_ftype type, void *slot,
                  struct em_arena *arena, const char *text, size_t len)
{
    if (slot_is_set(type, slot))
        return 0;
    if (!text)
        return 0; /* nil stays null */
    if (len == 0 && type != EPU_T_STR)
        return 0; /* an empty number or date is as good as absent */
    switch (type) {
    case EPU_T_INT: {
        struct epu_int *v = slot;
        if (epu_int_parse(text, len, &v->v) < 0)
            return dcs_fail(r, -EM_EVALUE, "<%s> '%.40s' is not an integer", what, text);
        v->set = true;
        return 0;
    }
    case EPU_T_REAL: {
        struct epu_real *v = slot;
        char *end = NULL;
        double d = strtod(text, &end);
        if (end != text + len || (text[0] == '0' && (text[1] == 'x' || text[1] == 'X')))
            return dcs_fail(r, -EM_EVALUE, "<%s> '%.40s' is not a number", what, text);
        /* .NET writes NaN and INF for doubles; JSON has no such numbers, so they are null. */
        if (!em_isfinite(d))
            return 0;
        v->v = d;
        v->set = true;
        return 0;
    }
    case EPU_T_FLAG: {
        struct epu_flag *v = slot;
        if (strcmp(text, "true") == 0 || strcmp(text, "1") == 0)
            v->v = true;
        else if (strcmp(text, "false") == 0 || strcmp(text, "0") == 0)
            v->v = false;
        else
            return dcs_fail(r, -EM_EVALUE, "<%s> '%.40s' is not a boolean", what, text);
        v->set = true;
        return 0;
    }
    case EPU_T_STR: {
        char *s = em_arena_strndup(arena, text, len);
        if (!s)
            return dcs_fail(r, -EM_ENOMEM, "out of memory storing <%s>", what);
        *(char **)slot = s;
        return 0;
    }
    case EPU_T_TIME:
        if (epu_time_parse(text, len, slot) < 0)
            return dcs_fail(r, -EM_EVALUE, "<%s> '%.40s' is not an ISO 8601 timestamp", what, text);
        return 0;
    }
    return -EM_EINVAL;
}

int epu_fieldset_leaf(const struct epu_fieldset *fs, struct dcs_reader *r, unsigned base, void *obj,
                      struct em_arena *arena, const char *text, size_t len)
{
    unsigned depth = dcs_depth(r);
    if (depth <= base + 1 || depth - base - 1 > DCS_PATH_MAX)
        return 0;
    unsigned k = depth - base - 1;
    for (size_t j = fs->by_len[k]; j < fs->by_len[k + 1]; j++) {
        size_t i = fs->order[j];
        if (!dcs_match(r, base, &fs->paths[i]))
            continue;
        const struct epu_field *f = &fs->f[i];
        int rc =
            epu_field_set(r, dcs_top(r)->name, f->type, (char *)obj + f->off, arena, text, len);
        return rc < 0 ? rc : 1;
    }
    return 0;
}

int epu_fields_json(const struct epu_field *f, size_t n, const void *obj, cJSON *out)
{
    for (size_t i = 0; i < n; i++) {
        if (!f[i].json)
            continue;
        const void *slot = (const char *)obj + f[i].off;
        cJSON *item = NULL;
        if (!slot_is_set(f[i].type, slot)) {
            item = cJSON_CreateNull();
        } else {
            switch (f[i].type) {
            case EPU_T_INT:
                item = cJSON_CreateNumber((double)((const struct epu_int *)slot)->v);
                break;
            case EPU_T_REAL:
                item = cJSON_CreateNumber(((const struct epu_real *)slot)->v);
                break;
            case EPU_T_FLAG:
                item = cJSON_CreateBool(((const struct epu_flag *)slot)->v);
                break;
            case EPU_T_STR:
                item = cJSON_CreateString(*(char *const *)slot);
                break;
            case EPU_T_TIME:
                item = cJSON_CreateString(((const struct epu_time *)slot)->s);
                break;
            }
        }
        if (!item || !cJSON_AddItemToObject(out, f[i].json, item)) {
            cJSON_Delete(item);
            return -EM_ENOMEM;
        }
    }
    return 0;
}

void epu_vec_init(struct epu_vec *v, size_t elem, size_t max)
{
    v->data = NULL;
    v->n = 0;
    v->cap = 0;
    v->elem = elem;
    v->max = max;
}

void *epu_vec_push(struct epu_vec *v)
{
    if (v->n >= v->max)
        return NULL;
    unsigned char *p = em_grow(v->data, v->n, &v->cap, v->elem, 16);
    if (!p)
        return NULL;
    v->data = p;
    void *item = v->data + v->n * v->elem;
    memset(item, 0, v->elem);
    v->n++;
    return item;
}

void *epu_vec_last(struct epu_vec *v)
{
    return v->n ? v->data + (v->n - 1) * v->elem : NULL;
}

static int cmp_leading_id(const void *a, const void *b)
{
    const struct epu_int *x = a, *y = b;
    return (x->v > y->v) - (x->v < y->v);
}

void *epu_vec_finish_sorted(struct epu_vec *v, struct em_arena *arena, size_t *count, int *err)
{
    *count = v->n;
    if (v->n == 0)
        return NULL;
    void *out = em_arena_alloc(arena, v->n * v->elem);
    if (!out) {
        *err = -EM_ENOMEM;
        return NULL;
    }
    memcpy(out, v->data, v->n * v->elem);
    qsort(out, v->n, v->elem, cmp_leading_id);
    v->n = 0;
    return out;
}

void epu_vec_free(struct epu_vec *v)
{
    free(v->data);
    v->data = NULL;
    v->n = v->cap = 0;
}

/* The component of `path` that ends at `end` (exclusive): sets *start. */
static const char *component_before(const char *path, const char *end)
{
    const char *s = end;
    while (s > path && s[-1] != '/' && s[-1] != '\\')
        s--;
    return s;
}

/* Reads digits from s (1 to 18 of them: an id fits an int64). Every file of a walk or a
 * restore is named through here, so it is one pass, without a second parse. */
static bool take_number(const char **s, const char *end, int64_t *out)
{
    const char *p = *s;
    int64_t v = 0;
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        if (p - *s == 18)
            return false;
        v = v * 10 + (*p - '0');
    }
    if (p == *s)
        return false;
    *out = v;
    *s = p;
    return true;
}

static bool take_bytes(const char **s, const char *end, const char *lit, size_t n)
{
    if ((size_t)(end - *s) < n || memcmp(*s, lit, n) != 0)
        return false;
    *s += n;
    return true;
}

/* A string literal's length is known when compiled. */
#define take_literal(s, end, lit) take_bytes((s), (end), lit "", sizeof(lit) - 1)

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* `_<8 digits>_<6 digits>.xml` to the end of the component; EPU 1.x writes the time
 * with 4 digits (`_20171201_1435.xml`). */
static bool take_stamp_xml(const char *s, const char *end)
{
    size_t len = (size_t)(end - s), time_digits = len - 14; /* _ 8 _ T .xml */
    if ((len != 20 && len != 18) || s[0] != '_' || !all_digits(s + 1, 8) || s[9] != '_' ||
        !all_digits(s + 10, time_digits))
        return false;
    return memcmp(s + 10 + time_digits, ".xml", 4) == 0;
}

bool epu_name_gridsquare_dir(const char *path, int64_t *gridsquare_id)
{
    /* The nearest directory named GridSquare_<digits> above the file: the last one met
     * going down, in one forward pass (every micrograph of a walk or restore is placed). */
    bool found = false;
    for (const char *p = path;;) {
        size_t n = strcspn(p, "/\\");
        if (p[n] == '\0')
            return found; /* p is the file's own name */
        const char *q = p, *end = p + n;
        int64_t id;
        if (n > 11 && p[0] == 'G' && take_literal(&q, end, "GridSquare_") &&
            take_number(&q, end, &id) && q == end) {
            *gridsquare_id = id;
            found = true;
        }
        p = end + 1;
    }
}

bool epu_name_foilhole_in(const char *base, const char *end, int64_t *foilhole_id)
{
    const char *p = base;
    return take_literal(&p, end, "FoilHole_") && take_number(&p, end, foilhole_id) &&
           take_stamp_xml(p, end);
}

bool epu_name_micrograph_in(const char *base, const char *end, int64_t *foilhole_id,
                            int64_t *area_id)
{
    const char *p = base;
    int64_t n;
    return take_literal(&p, end, "FoilHole_") && take_number(&p, end, foilhole_id) &&
           take_literal(&p, end, "_Data_") && take_number(&p, end, area_id) &&
           take_literal(&p, end, "_") && take_number(&p, end, &n) && take_stamp_xml(p, end);
}

bool epu_name_foilhole(const char *path, int64_t *foilhole_id)
{
    const char *end = path + strlen(path);
    return epu_name_foilhole_in(component_before(path, end), end, foilhole_id);
}

bool epu_name_micrograph(const char *path, int64_t *foilhole_id, int64_t *area_id)
{
    const char *end = path + strlen(path);
    return epu_name_micrograph_in(component_before(path, end), end, foilhole_id, area_id);
}

int epu_list_json(cJSON *out, const char *name, const void *items, size_t count, size_t elem,
                  const struct epu_field *f, size_t nf, int (*extra)(const void *item, cJSON *obj))
{
    cJSON *arr = cJSON_AddArrayToObject(out, name);
    if (!arr)
        return -EM_ENOMEM;
    for (size_t i = 0; i < count; i++) {
        const void *item = (const unsigned char *)items + i * elem;
        cJSON *obj = cJSON_CreateObject();
        if (!obj || !cJSON_AddItemToArray(arr, obj)) {
            cJSON_Delete(obj);
            return -EM_ENOMEM;
        }
        int rc = epu_fields_json(f, nf, item, obj);
        if (rc == 0 && extra)
            rc = extra(item, obj);
        if (rc < 0)
            return rc;
    }
    return 0;
}
