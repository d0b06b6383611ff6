/* memcpy and memmove (string0.c's are built as string0_memcpy / string0_memmove).
 *
 * memcpy moves 8 bytes a step whatever the alignment: string0.c's copies bytes one by one unless both
 * pointers are 4-aligned, and lwIP's TCP payloads sit 2 bytes off (14-byte Ethernet header), so every
 * downloaded byte went through a byte loop on its way to Python (~0.5 s of a 64 MiB download under TCG).
 * memmove returns at once when source and destination are the same: MicroPython's same-length slice stores
 * (buf[a:b] = data, py/obj.h mp_seq_replace_slice_no_grow) memmove the buffer's whole tail onto itself. */
#include <stddef.h>
#include <stdint.h>

void *string0_memmove(void *dst, const void *src, size_t n);

typedef uint64_t u64 __attribute__((may_alias));
typedef uint64_t u64_any __attribute__((aligned(1), may_alias));

void *memcpy(void *dst, const void *src, size_t n) {
    uint8_t *d = dst;
    const uint8_t *s = src;
    if (n >= 16) {
        for (; (uintptr_t)d & 7; n--) {
            *d++ = *s++;
        }
#if defined(__x86_64__) || defined(__loongarch__)
        /* unaligned loads are cheap here */
        for (; n >= 8; n -= 8, d += 8, s += 8) {
            *(u64 *)d = *(const u64_any *)s;
        }
#else
        /* strict alignment (aarch64 with SCTLR.A, riscv64 traps): aligned loads, shifted together; the
         * last load stays within the aligned word that holds the last byte copied */
        unsigned shift = ((uintptr_t)s & 7) * 8;
        if (!shift) {
            for (; n >= 8; n -= 8, d += 8, s += 8) {
                *(u64 *)d = *(const u64 *)s;
            }
        } else {
            const u64 *w = (const u64 *)((uintptr_t)s & ~(uintptr_t)7);
            uint64_t lo = *w++;
            for (; n >= 8; n -= 8, d += 8, s += 8) {
                uint64_t hi = *w++;
                *(u64 *)d = lo >> shift | hi << (64 - shift);
                lo = hi;
            }
        }
#endif
    }
    for (; n; n--) {
        *d++ = *s++;
    }
    return dst;
}

void *memmove(void *dst, const void *src, size_t n) {
    if (dst == src) {
        return dst;
    }
    /* forward is safe unless the destination starts inside the source */
    if ((const uint8_t *)dst < (const uint8_t *)src || (const uint8_t *)dst >= (const uint8_t *)src + n) {
        return memcpy(dst, src, n);
    }
    return string0_memmove(dst, src, n);
}
