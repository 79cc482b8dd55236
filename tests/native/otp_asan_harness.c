/* Parses every input of a corpus file with nc_otp_parse, each copied into a heap buffer of
 * exactly its length so AddressSanitizer flags any read past it. Corpus format: repeated
 * [u32 little-endian length][bytes]. Prints one return code per line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nc_otp.h"

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    FILE *f = fopen(argv[1], "rb");
    if (!f) return 2;
    unsigned char lenb[4];
    while (fread(lenb, 1, 4, f) == 4) {
        size_t len = (size_t)lenb[0] | (size_t)lenb[1] << 8 | (size_t)lenb[2] << 16 | (size_t)lenb[3] << 24;
        unsigned char *buf = malloc(len ? len : 1);
        if (!buf || fread(buf, 1, len, f) != len) return 2;
        nc_otp_info info;
        int rc = nc_otp_parse(len ? buf : NULL, len, 0, &info);
        int rc2 = nc_otp_parse(len ? buf : NULL, len, NC_OTP_PARSE_SKIP_DIGEST, NULL);
        printf("%d %d\n", rc, rc2);
        free(buf);
    }
    fclose(f);
    return 0;
}
