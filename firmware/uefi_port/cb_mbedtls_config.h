/* Mbed TLS for the firmware (MBEDTLS_CONFIG_FILE):
 * - TLS 1.2 client for https registries (MicroPython's extmod/modtls_mbedtls.c is the `tls` module): ECDHE with
 *   ECDSA or RSA certificates, AES-GCM; certificates checked against the image's `.cacerts` roots (Debian's
 *   ca-certificates + --ca-file at build time), the clock from UEFI GetTime floored at the build date,
 *   entropy from EFI_RNG_PROTOCOL (modtlsport.c);
 * - SHA-256 for hashlib (MicroPython's modhashlib.c uses Mbed TLS when MICROPY_SSL_MBEDTLS is set), with the
 *   Armv8 instructions when the CPU has them; every downloaded byte is hashed;
 * - ECDSA P-256 verification for cosign (modecdsa.c).
 * Memory comes from the firmware's pool (cb_calloc/cb_free), not the GC heap. */
#ifndef CB_MBEDTLS_CONFIG_H
#define CB_MBEDTLS_CONFIG_H
#include <stddef.h>
#include <stdio.h> /* snprintf for MBEDTLS_PLATFORM_SNPRINTF_MACRO */

#define MBEDTLS_SHA256_C
#define MBEDTLS_SHA224_C
#define MBEDTLS_SHA384_C
#define MBEDTLS_SHA512_C
#if defined(__aarch64__)
/* getauxval (modecdsa.c) answers from ID_AA64ISAR0_EL1: 4x the plain C under TCG */
#define MBEDTLS_SHA256_USE_ARMV8_A_CRYPTO_IF_PRESENT
#elif defined(__x86_64__)
/* sha256_x86.c: the SHA extensions when CPUID has them, else plain C */
#define MBEDTLS_SHA256_PROCESS_ALT
#endif
#define MBEDTLS_BIGNUM_C
#define MBEDTLS_ECP_C
#define MBEDTLS_ECP_DP_SECP256R1_ENABLED
#define MBEDTLS_ECP_DP_SECP384R1_ENABLED
#define MBEDTLS_ECP_DP_CURVE25519_ENABLED
#define MBEDTLS_ECP_NIST_OPTIM
#define MBEDTLS_ECDSA_C
#define MBEDTLS_ECDH_C
#define MBEDTLS_RSA_C
#define MBEDTLS_PKCS1_V15
#define MBEDTLS_PKCS1_V21
#define MBEDTLS_ASN1_PARSE_C
#define MBEDTLS_ASN1_WRITE_C
#define MBEDTLS_OID_C
#define MBEDTLS_BASE64_C
#define MBEDTLS_PEM_PARSE_C
#define MBEDTLS_PK_C
#define MBEDTLS_PK_PARSE_C
#define MBEDTLS_MD_C
#define MBEDTLS_CIPHER_C
#define MBEDTLS_AES_C
#define MBEDTLS_AES_ROM_TABLES
#define MBEDTLS_GCM_C
#define MBEDTLS_CTR_DRBG_C
#define MBEDTLS_ENTROPY_C
#define MBEDTLS_ENTROPY_HARDWARE_ALT
#define MBEDTLS_NO_PLATFORM_ENTROPY
#define MBEDTLS_ERROR_C
#define MBEDTLS_X509_USE_C
#define MBEDTLS_X509_CRT_PARSE_C
#define MBEDTLS_SSL_TLS_C
#define MBEDTLS_SSL_CLI_C
#define MBEDTLS_SSL_PROTO_TLS1_2
/* Not for DTLS itself: modtls_mbedtls.c gives TLS sockets recv (one read, whatever arrived) only with it,
 * and an HTTP client reading headers must not wait for a full buffer. */
#define MBEDTLS_SSL_PROTO_DTLS
#define MBEDTLS_SSL_SERVER_NAME_INDICATION
#define MBEDTLS_SSL_EXTENDED_MASTER_SECRET
#define MBEDTLS_SSL_ENCRYPT_THEN_MAC
#define MBEDTLS_KEY_EXCHANGE_ECDHE_ECDSA_ENABLED
#define MBEDTLS_KEY_EXCHANGE_ECDHE_RSA_ENABLED
#define MBEDTLS_SSL_MAX_CONTENT_LEN (16384)
#define MBEDTLS_SSL_IN_CONTENT_LEN  (16384)
#define MBEDTLS_SSL_OUT_CONTENT_LEN (4096)

#define MBEDTLS_PLATFORM_C
#define MBEDTLS_PLATFORM_MEMORY
#define MBEDTLS_PLATFORM_NO_STD_FUNCTIONS
void *cb_calloc(size_t n, size_t size);
void cb_free(void *p);
#define MBEDTLS_PLATFORM_STD_CALLOC cb_calloc
#define MBEDTLS_PLATFORM_STD_FREE cb_free
#define MBEDTLS_PLATFORM_SNPRINTF_MACRO snprintf

/* Time: certificate validity needs a date (modtlsport.c); ms ticks from the firmware's counter. */
#define MBEDTLS_HAVE_TIME
#define MBEDTLS_HAVE_TIME_DATE
#define MBEDTLS_PLATFORM_TIME_TYPE_MACRO long long
#define MBEDTLS_PLATFORM_MS_TIME_TYPE_MACRO long long
long long cb_tls_time(long long *t);
#define MBEDTLS_PLATFORM_TIME_MACRO cb_tls_time
#define MBEDTLS_PLATFORM_GMTIME_R_ALT
#define MBEDTLS_PLATFORM_MS_TIME_ALT
#endif
