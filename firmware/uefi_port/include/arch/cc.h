/* lwIP's platform header for the UEFI port: no libc beyond our include/, diagnostics off, asserts fatal. */
#ifndef CB_LWIP_ARCH_CC_H
#define CB_LWIP_ARCH_CC_H
#include <stdint.h>
#include <limits.h>
#include <sys/types.h>

#define LWIP_NO_INTTYPES_H 1
#define LWIP_NO_CTYPE_H 1
#define SSIZE_MAX LONG_MAX
#define X8_F "02x"
#define U16_F "u"
#define S16_F "d"
#define X16_F "x"
#define U32_F "u"
#define S32_F "d"
#define X32_F "x"
#define SZT_F "lu"

void cb_lwip_assert(const char *msg, int line, const char *file);
#define LWIP_PLATFORM_DIAG(x) do { } while (0)
#define LWIP_PLATFORM_ASSERT(x) cb_lwip_assert((x), __LINE__, __FILE__)
#endif
