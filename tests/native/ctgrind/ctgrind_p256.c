/* ctgrind harness: run P-256 keygen, sign and ECDH (single and batch) with every secret byte
 * marked undefined for valgrind memcheck. Any branch or memory index that depends on a secret
 * then shows up as "Conditional jump or move depends on uninitialised value(s)" or "Use of
 * uninitialised value", and `valgrind --error-exitcode=1` fails. Public outputs are marked
 * defined before they are compared, so only the computation itself is judged.
 *
 * Built by tests/native/test_p256_ctgrind.py together with csrc/nc_p256*.c and csrc/nc_hash.c,
 * with -DNC_P256_CTGRIND (and -DNC_P256_CTGRIND_LEAK for the deliberately leaky variant). */
#include <stdio.h>
#include <string.h>
#include <valgrind/memcheck.h>

#include "nc_p256.h"

#define SECRET(p, n) VALGRIND_MAKE_MEM_UNDEFINED((p), (n))
#define PUBLIC(p, n) VALGRIND_MAKE_MEM_DEFINED((p), (n))

static int fails;

static void check(int cond, const char *what) {
    if (!cond) {
        printf("FAIL %s\n", what);
        fails++;
    }
}

int main(void) {
    uint8_t seed[32], priv[32], pub[65], pub2[65], digest[32], sig[64], secret[32], secret2[32];
    uint8_t seeds[4 * 32], privs[4 * 32], pubs[4 * 65], digests[4 * 32], sigs[4 * 64], secrets[4 * 32];
    uint8_t status[4];
    static uint64_t table[88064 / 8 + 64];

    for (int i = 0; i < 32; i++) seed[i] = (uint8_t)(i * 7 + 1);
    for (int i = 0; i < 32; i++) digest[i] = (uint8_t)(0xa5 ^ i);
    for (int i = 0; i < (int)sizeof seeds; i++) seeds[i] = (uint8_t)(i * 13 + 5);

    /* keygen from a secret seed */
    SECRET(seed, sizeof seed);
    check(nc_p256_keygen(seed, priv, pub) == 0, "keygen");
    PUBLIC(pub, sizeof pub);

    /* sign: secret key (hedged and not) */
    SECRET(priv, sizeof priv);
    check(nc_p256_sign(priv, digest, NULL, 0, sig) == 0, "sign");
    PUBLIC(sig, sizeof sig);
    check(nc_p256_verify(pub, digest, sig) == 0, "sign/verify");
    uint8_t extra[16] = "hedge-entropy-01";
    SECRET(extra, sizeof extra);
    check(nc_p256_sign(priv, digest, extra, sizeof extra, sig) == 0, "sign hedged");
    PUBLIC(sig, sizeof sig);
    check(nc_p256_verify(pub, digest, sig) == 0, "hedged verify");

    /* ECDH: secret scalar, public peer */
    uint8_t seed2[32];
    uint8_t priv2[32];
    memset(seed2, 0x42, sizeof seed2);
    check(nc_p256_keygen(seed2, priv2, pub2) == 0, "peer keygen");
    check(nc_p256_ecdh(priv, pub2, secret) == 0, "ecdh");
    PUBLIC(secret, sizeof secret);
    check(nc_p256_ecdh(priv2, pub, secret2) == 0, "ecdh peer");
    check(memcmp(secret, secret2, 32) == 0, "ecdh agreement");

    /* public key derivation */
    check(nc_p256_public_key(priv, pub2) == 0, "public_key");
    PUBLIC(pub2, sizeof pub2);
    check(memcmp(pub, pub2, 65) == 0, "public_key matches keygen");

    /* batches */
    SECRET(seeds, sizeof seeds);
    check(nc_p256_keygen_batch(seeds, 4, privs, pubs) == 0, "keygen batch");
    PUBLIC(pubs, sizeof pubs);
    for (int i = 0; i < 4; i++) memcpy(digests + 32 * i, digest, 32);
    check(nc_p256_sign_batch(privs, 32, digests, NULL, 0, 4, sigs, status) == 0, "sign batch");
    PUBLIC(sigs, sizeof sigs);
    PUBLIC(status, sizeof status);
    check(nc_p256_verify_batch(pubs, 65, digests, sigs, 4, status) == 0, "sign batch verifies");
    check(nc_p256_table_size() <= sizeof table, "table size");
    check(nc_p256_table_init(table, pub) == 0, "table init");
    check(nc_p256_ecdh_fixed_batch(table, privs, 4, secrets, status) == 0, "ecdh fixed batch");
    PUBLIC(secrets, sizeof secrets);
    PUBLIC(status, sizeof status);
    for (int i = 0; i < 4; i++) {
        uint8_t s1[32];
        uint8_t pp[32];
        memcpy(pp, privs + 32 * i, 32);
        PUBLIC(pp, 32);
        check(nc_p256_ecdh(priv, pubs + 65 * i, s1) == 0, "ecdh single for fixed");
        PUBLIC(s1, 32);
        check(memcmp(s1, secrets + 32 * i, 32) == 0, "fixed batch == single");
    }
    uint8_t peers[4 * 65];
    for (int i = 0; i < 4; i++) memcpy(peers + 65 * i, i % 2 ? pub : pub2, 65);
    check(nc_p256_ecdh_batch(privs, 32, peers, 65, 4, secrets, status) == 0, "ecdh batch");
    PUBLIC(secrets, sizeof secrets);
    PUBLIC(status, sizeof status);
    printf("field backend %s\n", nc_p256_field_backend());
    printf("ctgrind harness done, %d failures\n", fails);
    return fails ? 2 : 0;
}
