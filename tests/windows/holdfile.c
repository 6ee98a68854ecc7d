/* holdfile SRC DST SECONDS — writes SRC's bytes to DST the way a writer that shares
 * nothing does (CreateFileW with no FILE_SHARE_* flags), in two halves 200 ms apart, then
 * keeps DST open for SECONDS before closing it. While it holds the file, every other open
 * fails with a sharing violation. Used by scripts/test-windows.sh (smoke case `busy`). */
#include <stdio.h>
#include <stdlib.h>

#include <windows.h>

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: holdfile SRC DST SECONDS\n");
        return 2;
    }
    FILE *in = fopen(argv[1], "rb");
    if (!in) {
        perror(argv[1]);
        return 1;
    }
    static char data[1 << 20];
    size_t n = fread(data, 1, sizeof(data), in);
    fclose(in);
    HANDLE h =
        CreateFileA(argv[2], GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
    if (h == INVALID_HANDLE_VALUE) {
        fprintf(stderr, "holdfile: %s: cannot create (error %lu)\n", argv[2], GetLastError());
        return 1;
    }
    DWORD done;
    size_t half = n / 2;
    if (!WriteFile(h, data, (DWORD)half, &done, NULL))
        return 1;
    FlushFileBuffers(h);
    Sleep(200);
    if (!WriteFile(h, data + half, (DWORD)(n - half), &done, NULL))
        return 1;
    FlushFileBuffers(h);
    printf("holding %s\n", argv[2]);
    fflush(stdout);
    Sleep((DWORD)(atof(argv[3]) * 1000));
    CloseHandle(h);
    return 0;
}
