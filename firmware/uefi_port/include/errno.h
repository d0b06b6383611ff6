#ifndef CB_ERRNO_H
#define CB_ERRNO_H
extern int errno;
#endif
