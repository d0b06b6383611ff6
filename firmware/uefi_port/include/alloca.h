#ifndef CB_ALLOCA_H
#define CB_ALLOCA_H
#define alloca(n) __builtin_alloca(n)
#endif
