/* addroot CERT.pem — adds a PEM certificate to the current user's ROOT store, so that
 * em-agent's amqps:// without --amqp-ca (which trusts the Windows store) accepts a broker
 * it signed. Used by scripts/test-windows-tls.sh under wine, with a throwaway test CA. */
#include <stdio.h>
#include <stdlib.h>

#include <windows.h>
#include <wincrypt.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: addroot CERT.pem\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    static char pem[64 * 1024];
    size_t n = fread(pem, 1, sizeof(pem) - 1, f);
    fclose(f);
    pem[n] = '\0';
    static BYTE der[64 * 1024];
    DWORD len = sizeof(der);
    if (!CryptStringToBinaryA(pem, 0, CRYPT_STRING_BASE64HEADER, der, &len, NULL, NULL)) {
        fprintf(stderr, "addroot: %s: not a PEM certificate\n", argv[1]);
        return 1;
    }
    if (!CertAddEncodedCertificateToSystemStoreW(L"ROOT", der, len)) {
        fprintf(stderr, "addroot: cannot add to the ROOT store (error %lu)\n", GetLastError());
        return 1;
    }
    printf("added %s to the ROOT store\n", argv[1]);
    return 0;
}
