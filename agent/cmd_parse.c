/* em-agent parse KIND FILE: one EPU file to one JSON object (DESIGN §4). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "cli.h"
#include "emopt.h"
#include "log.h"
#include "em_error.h"
#include "epu.h"
#include "fsio.h"
#include "imagehdr.h"

#define PARSE_MAX_FILE (256u << 20)

static const char parse_usage[] =
    "Usage: em-agent parse [--pretty] KIND FILE\n"
    "\n"
    "Parse one EPU file and print it as one JSON object on stdout.\n"
    "\n"
    "KIND is one of:\n"
    "  session              EpuSession.dm\n"
    "  atlas                Sample<k>/Atlas/Atlas.dm\n"
    "  gridsquare-metadata  Metadata/GridSquare_<gs>.dm\n"
    "  gridsquare           Images-Disc<N>/GridSquare_<gs>/GridSquare_<date>_<time>.xml\n"
    "  foilhole             .../FoilHoles/FoilHole_<fh>_<date>_<time>.xml\n"
    "  micrograph           .../Data/FoilHole_<fh>_Data_<area>_<n>_<date>_<time>.xml\n"
    "  image                the header of an image or volume: MRC/CCP4, DM3/DM4,\n"
    "                       TIFF/BigTIFF (OME-TIFF, ImageJ, FEI SEM, EER), a Zarr v2\n"
    "                       array or OME-NGFF group, an N5 dataset or multiscale group\n"
    "                       (FILE is then its directory): shape, type, voxel size in nm\n"
    "  auto                 tell the kind from the file's path (EPU names), else image\n"
    "\n"
    "Options:\n"
    "  --pretty   indent the JSON\n"
    "  -h, --help show this help\n"
    "\n"
    "Exit status: 0 parsed; 1 the file is malformed, truncated, empty, hostile or of\n"
    "another kind, or cannot be read (\"em-agent: FILE:LINE: reason\" on stderr); 2 usage\n"
    "error.\n";

static int print_json(const char *path, cJSON *json, bool pretty)
{
    char *text = json ? (pretty ? cJSON_Print(json) : cJSON_PrintUnformatted(json)) : NULL;
    int status = EXIT_OK;
    if (!text) {
        em_log(EM_LOG_ERROR, "%s: out of memory", path);
        status = EXIT_BAD_INPUT;
    } else if (printf("%s\n", text) < 0 || fflush(stdout) != 0) {
        em_log(EM_LOG_ERROR, "standard output: cannot write: %s",
               em_strerror(em_from_errno(errno)));
        status = EXIT_BAD_INPUT;
    }
    cJSON_free(text);
    return status;
}

static int parse_image(const char *path, bool pretty, bool from_auto)
{
    cJSON *json = NULL;
    char why[512];
    int rc = image_header(path, &json, why, sizeof(why));
    if (rc == -EM_EWRONGKIND && from_auto) {
        fprintf(stderr,
                "em-agent: %s: cannot tell the kind: not an EPU file name, and %s; name it (see "
                "'em-agent help parse')\n",
                path, why);
        return EXIT_USAGE;
    }
    if (rc < 0) {
        em_log(EM_LOG_ERROR, "%s: %s", path, why[0] ? why : em_strerror(rc));
        return EXIT_BAD_INPUT;
    }
    int status = print_json(path, json, pretty);
    cJSON_Delete(json);
    return status;
}

/* One file: KIND (or auto) and its path. */
static int parse_file(const char *kind_name, const char *path, bool pretty)
{
    if (strcmp(kind_name, "image") == 0)
        return parse_image(path, pretty, false);
    enum epu_kind kind =
        strcmp(kind_name, "auto") == 0 ? epu_classify_path(path) : epu_kind_from_cli(kind_name);
    if (kind == EPU_KIND_NONE && strcmp(kind_name, "auto") == 0)
        return parse_image(path, pretty, true);
    if (kind == EPU_KIND_NONE) {
        if (strcmp(kind_name, "auto") == 0)
            fprintf(stderr,
                    "em-agent: %s: cannot tell the kind from the path; name it (see 'em-agent "
                    "help parse')\n",
                    path);
        else
            fprintf(stderr, "em-agent: parse: %s: unknown KIND (see 'em-agent help parse')\n",
                    kind_name);
        return EXIT_USAGE;
    }

    struct fsio_buf buf = {0};
    int rc = fsio_read(path, PARSE_MAX_FILE, &buf, NULL);
    if (rc < 0) {
        em_log(EM_LOG_ERROR, "%s: cannot read: %s", path, em_strerror(rc));
        fsio_buf_free(&buf);
        return EXIT_BAD_INPUT;
    }
    struct epu_doc *doc = NULL;
    struct epu_diag diag;
    rc = epu_parse_buffer(kind, path, buf.data, buf.len, &doc, &diag);
    fsio_buf_free(&buf);
    if (rc < 0) {
        em_log(EM_LOG_ERROR, "%s:%ld: %s", path, diag.line > 0 ? diag.line : 1, diag.reason);
        return EXIT_BAD_INPUT;
    }
    cJSON *json = epu_doc_to_json(doc);
    int status = print_json(path, json, pretty);
    cJSON_Delete(json);
    epu_doc_free(doc);
    return status;
}

enum { P_PRETTY, P_COUNT };
static const struct emopt_spec parse_opts[P_COUNT] = {
    [P_PRETTY] = {"pretty", 0, EMOPT_FLAG, false, false, NULL},
};

static int parse_main(const struct emopt *opt)
{
    size_t nargs;
    char *const *args = emopt_args(opt, &nargs);
    if (nargs != 2)
        return emopt_usage_error(opt, "expected KIND and FILE (see 'em-agent help parse')");
    return parse_file(args[0], args[1], emopt_yes(opt, P_PRETTY));
}

int cmd_parse(int argc, char **argv)
{
    static const struct emopt_command c = {"em-agent", "parse", parse_usage, NULL,
                                           parse_opts, P_COUNT, parse_main};
    return emopt_run(&c, argc, argv);
}
