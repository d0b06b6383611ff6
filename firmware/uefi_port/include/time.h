#ifndef CB_TIME_H
#define CB_TIME_H
/* The types Mbed TLS's X.509 code names; the clock is modtlsport.c's (UEFI GetTime, floored at build time). */
typedef long long time_t;
struct tm {
    int tm_sec, tm_min, tm_hour, tm_mday, tm_mon, tm_year, tm_wday, tm_yday, tm_isdst;
};
#endif
