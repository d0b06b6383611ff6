/* setjmp/longjmp for arches without a native MicroPython NLR (loongarch64): setjmp_<arch>.S. */
#ifndef CB_SETJMP_H
#define CB_SETJMP_H
typedef unsigned long jmp_buf[24];
int setjmp(jmp_buf env) __attribute__((returns_twice));
__attribute__((noreturn)) void longjmp(jmp_buf env, int val);
#endif
