#ifndef CB_SIGNAL_H
#define CB_SIGNAL_H
/* Included by Mbed TLS's sha256.c on "unix" targets; its SIGILL probe is not compiled (getauxval answers). */
#endif
