#ifndef CB_SYS_AUXV_H
#define CB_SYS_AUXV_H
/* Only what Mbed TLS's Armv8 SHA-256 detection asks (modecdsa.c answers from the CPU's ID register). */
#define AT_HWCAP 16
#define AT_HWCAP2 26
#define HWCAP_SHA2 (1 << 6)
unsigned long getauxval(unsigned long type);
#endif
