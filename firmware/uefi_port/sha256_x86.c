/* SHA-256's block function on x86_64 (Mbed TLS's MBEDTLS_SHA256_PROCESS_ALT; Mbed TLS keeps the padding,
 * the buffering and hashlib's interface): the SHA extensions when CPUID says the CPU has them, else plain C.
 *
 * Why: every byte Path D downloads is hashed, and under TCG plain C SHA-256 (this one or Mbed TLS's, the
 * same speed) runs at 25-47 MiB/s on a shared host, slower than the download itself; QEMU emulates SHA-NI
 * (-cpu max; most x86 servers since 2017-2019 have it) at ~60 MiB/s and far less hurt by a busy host.
 * aarch64 has the same in Mbed TLS itself (MBEDTLS_SHA256_USE_ARMV8_A_CRYPTO_IF_PRESENT). */
#if defined(__x86_64__)
#define MBEDTLS_ALLOW_PRIVATE_ACCESS
#include <stdint.h>
#include <immintrin.h>
#include "mbedtls/sha256.h"

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/* ---- SHA extensions: state as ABEF/CDGH, four rounds per 128-bit message group ---- */
__attribute__((target("sha,sse4.1,ssse3")))
static void block_shani(uint32_t state[8], const uint8_t *data) {
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i dcba = _mm_loadu_si128((const __m128i *)&state[0]);
    __m128i hgfe = _mm_loadu_si128((const __m128i *)&state[4]);
    __m128i cdab = _mm_shuffle_epi32(dcba, 0xB1);
    __m128i efgh = _mm_shuffle_epi32(hgfe, 0x1B);
    __m128i abef = _mm_alignr_epi8(cdab, efgh, 8);
    __m128i cdgh = _mm_blend_epi16(efgh, cdab, 0xF0);
    const __m128i abef0 = abef, cdgh0 = cdgh;
    __m128i w[4];
#pragma clang loop unroll(full) /* w[] then lives in registers: fewer instructions, which is what TCG costs */
    for (int g = 0; g < 16; g++) {
        if (g < 4) {
            w[g] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 16 * g)), bswap);
        } else {
            /* W[t] = s1(W[t-2]) + W[t-7] + s0(W[t-15]) + W[t-16], four at a time */
            __m128i t = _mm_sha256msg1_epu32(w[g & 3], w[(g + 1) & 3]);
            t = _mm_add_epi32(t, _mm_alignr_epi8(w[(g + 3) & 3], w[(g + 2) & 3], 4));
            w[g & 3] = _mm_sha256msg2_epu32(t, w[(g + 3) & 3]);
        }
        __m128i m = _mm_add_epi32(w[g & 3], _mm_loadu_si128((const __m128i *)&K[4 * g]));
        cdgh = _mm_sha256rnds2_epu32(cdgh, abef, m);
        abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(m, 0x0E));
    }
    abef = _mm_add_epi32(abef, abef0);
    cdgh = _mm_add_epi32(cdgh, cdgh0);
    __m128i feba = _mm_shuffle_epi32(abef, 0x1B);
    __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);
    _mm_storeu_si128((__m128i *)&state[0], _mm_blend_epi16(feba, dchg, 0xF0));
    _mm_storeu_si128((__m128i *)&state[4], _mm_alignr_epi8(dchg, feba, 8));
}

/* ---- plain C (FIPS 180-4 6.2.2), a 16-word rolling message schedule ---- */
static inline uint32_t ror(uint32_t x, int n) {
    return (x >> n) | (x << (32 - n));
}

static void block_c(uint32_t state[8], const uint8_t *data) {
    uint32_t w[16], s[8];
    for (int i = 0; i < 8; i++) {
        s[i] = state[i];
    }
    for (int t = 0; t < 64; t++) {
        uint32_t wt;
        if (t < 16) {
            const uint8_t *p = data + 4 * t;
            wt = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        } else {
            uint32_t w2 = w[(t - 2) & 15], w15 = w[(t - 15) & 15];
            wt = (ror(w2, 17) ^ ror(w2, 19) ^ (w2 >> 10)) + w[(t - 7) & 15]
                 + (ror(w15, 7) ^ ror(w15, 18) ^ (w15 >> 3)) + w[t & 15];
        }
        w[t & 15] = wt;
        uint32_t a = s[0], e = s[4];
        uint32_t t1 = s[7] + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & s[5]) ^ (~e & s[6])) + K[t] + wt;
        uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & s[1]) ^ (a & s[2]) ^ (s[1] & s[2]));
        s[7] = s[6];
        s[6] = s[5];
        s[5] = e;
        s[4] = s[3] + t1;
        s[3] = s[2];
        s[2] = s[1];
        s[1] = a;
        s[0] = t1 + t2;
    }
    for (int i = 0; i < 8; i++) {
        state[i] += s[i];
    }
}

static int has_shani(void) {
    static int known = -1;
    if (known < 0) {
        uint32_t a, b, c, d, max;
        __asm__ volatile ("cpuid" : "=a" (max), "=b" (b), "=c" (c), "=d" (d) : "a" (0), "c" (0));
        __asm__ volatile ("cpuid" : "=a" (a), "=b" (b), "=c" (c), "=d" (d) : "a" (1), "c" (0));
        int sse = (c & (1u << 9)) && (c & (1u << 19)); /* SSSE3, SSE4.1 */
        b = 0;
        if (max >= 7) {
            __asm__ volatile ("cpuid" : "=a" (a), "=b" (b), "=c" (c), "=d" (d) : "a" (7), "c" (0));
        }
        known = sse && (b & (1u << 29)); /* CPUID.7.0:EBX.SHA */
    }
    return known;
}

int mbedtls_internal_sha256_process(mbedtls_sha256_context *ctx, const unsigned char data[64]) {
    if (has_shani()) {
        block_shani(ctx->state, data);
    } else {
        block_c(ctx->state, data);
    }
    return 0;
}
#endif
