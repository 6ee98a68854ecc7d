/* emopt: the command line, the environment and a config file in one table, with the
 * command line over the environment over the file; the arguments as a layer of their
 * own; every refusal says why, in the one message form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "emopt.h"
#include "testutil.h"

enum { O_OUT, O_JOBS, O_ONCE, O_POLL, O_SECRET, O_START, O_DIR, O_COUNT };
static const struct emopt_spec spec[O_COUNT] = {
    [O_OUT] = {"out", 'o', EMOPT_VALUE, true, false, NULL},
    [O_JOBS] = {"jobs", 'j', EMOPT_VALUE, true, false, NULL},
    [O_ONCE] = {"once", 0, EMOPT_FLAG, true, false, NULL},
    [O_POLL] = {"poll", 0, EMOPT_VALUE, true, false, NULL},
    [O_SECRET] = {"secret", 0, EMOPT_VALUE, false, false, NULL},  /* not from the environment */
    [O_START] = {"from-start", 0, EMOPT_FLAG, false, true, NULL}, /* never from a file */
    [O_DIR] = {"dir", 0, EMOPT_ARGS, true, false, "EMT_DIRS"},    /* a name of its own */
};

static char errbuf[4096];
static int saved_stderr = -1;
static FILE *capture;

/* stderr into a temporary file until captured(). */
static void capture_stderr(void)
{
    fflush(stderr);
    capture = tmpfile();
    assert_non_null(capture);
    saved_stderr = dup(2);
    assert_true(dup2(fileno(capture), 2) >= 0);
}

static const char *captured(void)
{
    fflush(stderr);
    assert_true(dup2(saved_stderr, 2) >= 0);
    close(saved_stderr);
    rewind(capture);
    size_t n = fread(errbuf, 1, sizeof(errbuf) - 1, capture);
    errbuf[n] = '\0';
    fclose(capture);
    return errbuf;
}

static void init(struct emopt *o)
{
    assert_int_equal(emopt_init(o, "prog", "cmd", "usage\n", "EMT_", spec, O_COUNT), 0);
}

static int parse(struct emopt *o, int argc, const char **argv)
{
    char *v[16];
    assert_true(argc <= 16);
    memcpy(v, argv, (size_t)argc * sizeof(*v)); /* the parser does not write them */
    return emopt_argv(o, argc, v);
}

static const char *write_file(const char *text)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/test_emopt.XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void clear_env(void)
{
    tu_setenv("EMT_OUT", NULL);
    tu_setenv("EMT_JOBS", NULL);
    tu_setenv("EMT_ONCE", NULL);
    tu_setenv("EMT_SECRET", NULL);
    tu_setenv("EMT_FROM_START", NULL);
    tu_setenv("EMT_DIRS", NULL);
}

static void test_emopt__command_line_forms(void **state)
{
    (void)state;
    struct emopt o;
    init(&o);
    const char *argv[] = {"-o",     "a.jsonl", "--jobs=3",      "A",  "--once",         "-",
                          "--poll", "0.5",     "--out=b.jsonl", "--", "--not-an-option"};
    assert_int_equal(parse(&o, 11, argv), -1);
    assert_string_equal(emopt_get(&o, O_OUT), "b.jsonl"); /* the last one given */
    assert_string_equal(emopt_get(&o, O_JOBS), "3");
    assert_true(emopt_yes(&o, O_ONCE));
    assert_false(emopt_yes(&o, O_START));
    assert_null(emopt_get(&o, O_SECRET));
    size_t n;
    char *const *args = emopt_args(&o, &n);
    assert_int_equal(n, 3);
    assert_string_equal(args[0], "A");
    assert_string_equal(args[1], "-");
    assert_string_equal(args[2], "--not-an-option");
    long jobs = 1;
    double poll = 0;
    assert_true(emopt_long(&o, O_JOBS, 1, 64, &jobs));
    assert_int_equal(jobs, 3);
    assert_true(emopt_seconds(&o, O_POLL, 0, 86400, &poll));
    assert_true(poll > 0.49 && poll < 0.51);
    emopt_free(&o);
}

static void test_emopt__refusals_say_why(void **state)
{
    (void)state;
    struct emopt o;
    const char *unknown[] = {"A", "--bogus"};
    init(&o);
    capture_stderr();
    assert_int_equal(parse(&o, 2, unknown), 2);
    assert_string_equal(captured(), "prog: cmd: --bogus: unknown option (see 'prog help cmd')\n");
    emopt_free(&o);

    const char *missing[] = {"--out"};
    init(&o);
    capture_stderr();
    assert_int_equal(parse(&o, 1, missing), 2);
    assert_string_equal(captured(), "prog: cmd: --out: needs a value\n");
    emopt_free(&o);

    const char *shorts[] = {"-ox"}; /* short options do not bundle */
    init(&o);
    capture_stderr();
    assert_int_equal(parse(&o, 1, shorts), 2);
    assert_non_null(strstr(captured(), "-ox: unknown option"));
    emopt_free(&o);

    const char *bad_number[] = {"-j", "0"};
    init(&o);
    assert_int_equal(parse(&o, 2, bad_number), -1);
    long jobs = 7;
    capture_stderr();
    assert_false(emopt_long(&o, O_JOBS, 1, 64, &jobs));
    assert_string_equal(captured(), "prog: cmd: --jobs takes a number from 1 to 64, not '0'\n");
    assert_int_equal(jobs, 7); /* left alone */
    emopt_free(&o);

    const char *trailing[] = {"--poll=1s"};
    init(&o);
    assert_int_equal(parse(&o, 1, trailing), -1);
    double poll = 9;
    capture_stderr();
    assert_false(emopt_seconds(&o, O_POLL, 0, 86400, &poll));
    assert_string_equal(captured(), "prog: cmd: --poll takes seconds from 0 to 86400, not '1s'\n");
    emopt_free(&o);

    const char *negative[] = {"--poll", "-1"};
    init(&o);
    assert_int_equal(parse(&o, 2, negative), -1);
    capture_stderr();
    assert_false(emopt_positive(&o, O_POLL, &poll));
    assert_string_equal(captured(), "prog: cmd: --poll takes a positive number, not '-1'\n");
    emopt_free(&o);
}

static void test_emopt__help_anywhere_before_the_double_dash(void **state)
{
    (void)state;
    struct emopt o;
    const char *help[] = {"A", "--bogus", "-h"};
    init(&o);
    fflush(stdout);
    assert_int_equal(parse(&o, 3, help), 0);
    emopt_free(&o);
    const char *after[] = {"--", "-h"};
    init(&o);
    assert_int_equal(parse(&o, 2, after), -1);
    size_t n;
    assert_string_equal(emopt_args(&o, &n)[0], "-h");
    emopt_free(&o);
}

static void test_emopt__layers_in_order(void **state)
{
    (void)state;
    clear_env();
    const char *conf = write_file("# a comment\n"
                                  "\n"
                                  "out = file.jsonl\r\n"
                                  "  jobs=2  \n"
                                  "secret = from the file\n"
                                  "poll = 5\n"
                                  "dir = /file/one\n"
                                  "dir = /file/two\n");
    tu_setenv("EMT_OUT", "env.jsonl");
    tu_setenv("EMT_SECRET", "from the environment"); /* not an env option: ignored */
    tu_setenv("EMT_JOBS", "");                       /* empty: unset */
#ifdef _WIN32
    tu_setenv("EMT_DIRS", "/env/one;;/env/two"); /* Windows lists paths with ';' */
#else
    tu_setenv("EMT_DIRS", "/env/one::/env/two");
#endif
    struct emopt o;
    init(&o);
    const char *argv[] = {"--poll", "7"};
    assert_int_equal(parse(&o, 2, argv), -1);
    assert_int_equal(emopt_env(&o), -1);
    assert_int_equal(emopt_file(&o, conf), -1);
    assert_string_equal(emopt_get(&o, O_OUT), "env.jsonl");        /* env over file */
    assert_string_equal(emopt_get(&o, O_JOBS), "2");               /* file (env empty) */
    assert_string_equal(emopt_get(&o, O_SECRET), "from the file"); /* file only */
    assert_string_equal(emopt_get(&o, O_POLL), "7");               /* command line first */
    size_t n;
    char *const *dirs = emopt_args(&o, &n); /* the environment's list over the file's */
    assert_int_equal(n, 2);
    assert_string_equal(dirs[0], "/env/one");
    assert_string_equal(dirs[1], "/env/two");
    emopt_free(&o);

    tu_setenv("EMT_DIRS", NULL);
    init(&o);
    assert_int_equal(emopt_env(&o), -1);
    assert_int_equal(emopt_file(&o, conf), -1);
    dirs = emopt_args(&o, &n); /* the file's, in order */
    assert_int_equal(n, 2);
    assert_string_equal(dirs[0], "/file/one");
    assert_string_equal(dirs[1], "/file/two");
    emopt_free(&o);

    init(&o);
    const char *cli[] = {"/cli"};
    assert_int_equal(parse(&o, 1, cli), -1);
    assert_int_equal(emopt_file(&o, conf), -1);
    dirs = emopt_args(&o, &n); /* the command line's alone */
    assert_int_equal(n, 1);
    assert_string_equal(dirs[0], "/cli");
    emopt_free(&o);
    unlink(conf);
    clear_env();
}

static void test_emopt__bad_files_name_the_line(void **state)
{
    (void)state;
    struct emopt o;
    char want[512];
    const char *conf = write_file("out = x\nfrom-start = yes\n");
    init(&o);
    capture_stderr();
    assert_int_equal(emopt_file(&o, conf), 2);
    snprintf(want, sizeof(want), "prog: cmd: %s:2: unknown setting 'from-start'\n", conf);
    assert_string_equal(captured(), want);
    emopt_free(&o);
    unlink(conf);

    conf = write_file("out x\n");
    init(&o);
    capture_stderr();
    assert_int_equal(emopt_file(&o, conf), 2);
    snprintf(want, sizeof(want), "prog: cmd: %s:1: expected 'key = value'\n", conf);
    assert_string_equal(captured(), want);
    emopt_free(&o);
    unlink(conf);

    init(&o);
    capture_stderr();
    assert_int_equal(emopt_file(&o, "/nonexistent/em.conf"), 2);
    assert_string_equal(captured(), "prog: /nonexistent/em.conf: cannot read the config file: "
                                    "no such file or directory\n");
    emopt_free(&o);
}

static void test_emopt__flags_and_yes(void **state)
{
    (void)state;
    clear_env();
    struct emopt o;
    init(&o);
    const char *argv[] = {"--once=no"};
    assert_int_equal(parse(&o, 1, argv), -1);
    assert_false(emopt_yes(&o, O_ONCE));
    emopt_free(&o);
    const char *yes[] = {"1", "yes", "true", "on"};
    for (int i = 0; i < 4; i++) {
        tu_setenv("EMT_ONCE", yes[i]);
        init(&o);
        assert_int_equal(emopt_env(&o), -1);
        assert_true(emopt_yes(&o, O_ONCE));
        emopt_free(&o);
    }
    clear_env();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_emopt__command_line_forms),
        cmocka_unit_test(test_emopt__refusals_say_why),
        cmocka_unit_test(test_emopt__help_anywhere_before_the_double_dash),
        cmocka_unit_test(test_emopt__layers_in_order),
        cmocka_unit_test(test_emopt__bad_files_name_the_line),
        cmocka_unit_test(test_emopt__flags_and_yes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
