/* What Mbed TLS needs from the firmware (cb_mbedtls_config.h names these): memory from the UEFI pool, a
 * clock (UEFI GetTime, never earlier than the build date: a machine whose RTC was never set must still
 * accept certificates issued since), entropy (EFI_RNG_PROTOCOL; without one, CPU-counter jitter, which is
 * weak and said so by netboot/tls.py), and, on aarch64, whether the SHA-256 instructions exist. */
#include <string.h>
#include <time.h>
#include "py/mphal.h"
#include "mbedtls/platform.h"
#include "mbedtls/platform_util.h"
#include "mbedtls/entropy.h"
#include "efi.h"

void *cb_calloc(size_t n, size_t size) {
    if (size && n > (size_t)-1 / size) {
        return NULL;
    }
    void *p = NULL;
    typedef EFI_STATUS (EFIAPI *alloc_pool_t)(uint32_t, uint64_t, void **);
    if (((alloc_pool_t)cb_st->BootServices->AllocatePool)(EFI_LOADER_DATA, n * size ? n * size : 1, &p)) {
        return NULL;
    }
    memset(p, 0, n * size);
    return p;
}

void cb_free(void *p) {
    typedef EFI_STATUS (EFIAPI *free_pool_t)(void *);
    if (p) {
        ((free_pool_t)cb_st->BootServices->FreePool)(p);
    }
}

mbedtls_ms_time_t mbedtls_ms_time(void) {
    return (mbedtls_ms_time_t)mp_hal_ticks_ms();
}

/* ---- clock ---- */
typedef struct {
    uint16_t Year;
    uint8_t Month, Day, Hour, Minute, Second, Pad1;
    uint32_t Nanosecond;
    int16_t TimeZone;
    uint8_t Daylight, Pad2;
} EFI_TIME;

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static long long days_from_civil(long long y, unsigned m, unsigned d) {
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

/* Seconds since the epoch from the firmware's RTC, floored at the build date. */
long long cb_tls_time(long long *t) {
    long long now = 0;
    EFI_TIME tm;
    typedef EFI_STATUS (EFIAPI *get_time_t)(EFI_TIME *, void *);
    get_time_t get_time = *(get_time_t *)((uint8_t *)cb_st->RuntimeServices + 24);
    if (get_time(&tm, NULL) == EFI_SUCCESS && tm.Month >= 1 && tm.Month <= 12 && tm.Day >= 1 && tm.Day <= 31) {
        now = days_from_civil(tm.Year, tm.Month, tm.Day) * 86400 + tm.Hour * 3600 + tm.Minute * 60 + tm.Second;
        if (tm.TimeZone != 2047 && tm.TimeZone >= -1440 && tm.TimeZone <= 1440) {
            now += tm.TimeZone * 60; /* UEFI: local = UTC - TimeZone */
        }
    }
    if (now < CLOUDBOOT_BUILD_EPOCH) {
        now = CLOUDBOOT_BUILD_EPOCH;
    }
    if (t) {
        *t = now;
    }
    return now;
}

struct tm *mbedtls_platform_gmtime_r(const mbedtls_time_t *tt, struct tm *out) {
    long long z = *tt / 86400, secs = *tt % 86400;
    if (secs < 0) {
        secs += 86400;
        z--;
    }
    z += 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long y = (long long)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    unsigned d = doy - (153 * mp + 2) / 5 + 1;
    unsigned m = mp < 10 ? mp + 3 : mp - 9;
    memset(out, 0, sizeof(*out));
    out->tm_year = (int)(y + (m <= 2) - 1900);
    out->tm_mon = (int)m - 1;
    out->tm_mday = (int)d;
    out->tm_hour = (int)(secs / 3600);
    out->tm_min = (int)(secs / 60 % 60);
    out->tm_sec = (int)(secs % 60);
    return out;
}

/* ---- entropy ---- */
static const uint8_t rng_guid[16] = { 0xa5, 0xbc, 0x52, 0x31, 0xde, 0xea, 0x3d, 0x43,
                                      0x86, 0x2e, 0xc0, 0x1c, 0xdc, 0x29, 0x1f, 0x44 };
typedef struct {
    void *GetInfo;
    EFI_STATUS (EFIAPI *GetRNG)(void *This, void *Algorithm, uint64_t Length, uint8_t *Value);
} EFI_RNG_PROTOCOL;

/* The firmware's EFI_RNG_PROTOCOL, or NULL (netboot/tls.py reports which source TLS gets). */
void *cb_rng_protocol(void) {
    void *rng = NULL;
    if (cb_st->BootServices->LocateProtocol(rng_guid, NULL, &rng) != EFI_SUCCESS) {
        return NULL;
    }
    return rng;
}

int mbedtls_hardware_poll(void *data, unsigned char *output, size_t len, size_t *olen) {
    EFI_RNG_PROTOCOL *rng = cb_rng_protocol();
    if (rng && rng->GetRNG(rng, NULL, len, output) == EFI_SUCCESS) {
        *olen = len;
        return 0;
    }
    /* Fallback: the low bits of the CPU counter around firmware Stall calls (jitter), mixed. Weak. */
    uint64_t x = mp_hal_ticks_cpu() ^ 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < len; i++) {
        cb_st->BootServices->Stall(1);
        x ^= mp_hal_ticks_cpu() + (x << 6) + (x >> 2);
        x *= 0xff51afd7ed558ccdULL;
        output[i] = (uint8_t)(x >> 56);
    }
    *olen = len;
    return 0;
}

#if defined(__aarch64__)
#include <sys/auxv.h>
/* Mbed TLS asks getauxval(AT_HWCAP) whether the SHA-256 instructions exist (it takes this build for Linux);
 * the answer is the CPU's own ID register (readable at EL1 and EL2, where UEFI runs). */
unsigned long getauxval(unsigned long type) {
    uint64_t isar0;
    __asm__ volatile ("mrs %0, ID_AA64ISAR0_EL1" : "=r" (isar0));
    return type == AT_HWCAP && ((isar0 >> 12) & 0xF) ? HWCAP_SHA2 : 0;
}
#endif
