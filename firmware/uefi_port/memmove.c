/* memmove that returns at once when source and destination are the same. MicroPython's same-length slice
 * stores (buf[a:b] = data, py/obj.h mp_seq_replace_slice_no_grow) memmove the buffer's whole tail onto
 * itself: for a 1 KiB store into a 37 MB kernel buffer that was a 37 MB byte loop (~20 ms under TCG, 0.8 s
 * per kernel read through a sparse file's holes). string0.c's memmove is built as string0_memmove. */
#include <stddef.h>

void *string0_memmove(void *dst, const void *src, size_t n);

void *memmove(void *dst, const void *src, size_t n) {
    return dst == src ? dst : string0_memmove(dst, src, n);
}
