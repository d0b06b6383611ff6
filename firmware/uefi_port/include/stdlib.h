#ifndef CB_STDLIB_H
#define CB_STDLIB_H
#include <stddef.h>
__attribute__((noreturn)) void abort(void);
#endif
