/* Runs a fuzz target over files and directories (recursively) without libFuzzer, so the
 * corpus is a regression test in every build. Prints how many inputs ran; a crash or
 * abort fails the test. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: %s: missing\n", path);
        exit(2);
    }
    if (S_ISDIR(st.st_mode)) {
        size_t n = 0;
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (e->d_name[0] == '.')
                continue;
            char child[4096];
            snprintf(child, sizeof(child), "%s/%s", path, e->d_name);
            n += run_path(child);
        }
        if (d)
            closedir(d);
        return n;
    }
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    uint8_t *buf = malloc((size_t)st.st_size + 1);
    size_t len = buf ? fread(buf, 1, (size_t)st.st_size, f) : 0;
    fclose(f);
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    return 1;
}

int main(int argc, char **argv)
{
    size_t n = 0;
    for (int i = 1; i < argc; i++)
        n += run_path(argv[i]);
    printf("replayed %zu inputs\n", n);
    return n > 0 ? 0 : 1;
}
