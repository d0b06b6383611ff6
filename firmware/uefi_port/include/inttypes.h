#ifndef CB_INTTYPES_H
#define CB_INTTYPES_H
/* The printf formats Mbed TLS's debug.h names (LP64: 64-bit is long). */
#include <stdint.h>
#define PRId64 "ld"
#define PRIu64 "lu"
#define PRIx64 "lx"
#define PRId32 "d"
#define PRIu32 "u"
#define PRIx32 "x"
#endif
