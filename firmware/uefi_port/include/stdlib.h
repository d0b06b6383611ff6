#ifndef CB_STDLIB_H
#define CB_STDLIB_H
#include <stddef.h>
__attribute__((noreturn)) void abort(void);
/* Declared for libzstd (modzstd.c defines them; its static context never calls them). */
void *malloc(size_t n);
void *calloc(size_t n, size_t s);
void free(void *p);
/* lwIP's netif_find parses interface numbers with it (modnet.c). */
int atoi(const char *s);
#endif
