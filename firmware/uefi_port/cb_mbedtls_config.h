/* Mbed TLS for the firmware (MBEDTLS_CONFIG_FILE): SHA-256 for hashlib (MicroPython's modhashlib.c uses
 * Mbed TLS when MICROPY_SSL_MBEDTLS is set: several times faster than lib/crypto-algorithms under TCG, and
 * every blob the firmware downloads is hashed) and ECDSA P-256 verification for cosign (modecdsa.c).
 * Memory comes from the firmware's pool (modecdsa.c's cb_calloc/cb_free), not the GC heap. */
#ifndef CB_MBEDTLS_CONFIG_H
#define CB_MBEDTLS_CONFIG_H
#include <stddef.h>

#define MBEDTLS_SHA256_C
#if defined(__aarch64__)
/* The Armv8 SHA-256 instructions when the CPU has them (modecdsa.c's getauxval reads ID_AA64ISAR0_EL1):
 * 4x the plain C under TCG, which every downloaded byte goes through. */
#define MBEDTLS_SHA256_USE_ARMV8_A_CRYPTO_IF_PRESENT
#endif
#define MBEDTLS_BIGNUM_C
#define MBEDTLS_ECP_C
#define MBEDTLS_ECP_DP_SECP256R1_ENABLED
#define MBEDTLS_ECP_NIST_OPTIM
#define MBEDTLS_ECDSA_C
#define MBEDTLS_ASN1_PARSE_C
#define MBEDTLS_ASN1_WRITE_C

#define MBEDTLS_PLATFORM_C
#define MBEDTLS_PLATFORM_MEMORY
#define MBEDTLS_PLATFORM_NO_STD_FUNCTIONS
void *cb_calloc(size_t n, size_t size);
void cb_free(void *p);
#define MBEDTLS_PLATFORM_STD_CALLOC cb_calloc
#define MBEDTLS_PLATFORM_STD_FREE cb_free
#define MBEDTLS_NO_PLATFORM_ENTROPY
/* Neither SHA-256 nor ECDSA reads a clock; these keep platform_time.h from wanting <time.h> and
 * <inttypes.h>, and mbedtls_ms_time (modecdsa.c) is the firmware's tick counter. */
#define MBEDTLS_HAVE_TIME
#define MBEDTLS_PLATFORM_TIME_TYPE_MACRO long long
#define MBEDTLS_PLATFORM_MS_TIME_TYPE_MACRO long long
#define MBEDTLS_PLATFORM_MS_TIME_ALT
#endif
