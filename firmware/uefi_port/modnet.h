/* modnet.c's hooks into lwIP (named by lwipopts.h). */
#ifndef CB_MODNET_H
#define CB_MODNET_H
#include <stdint.h>
struct pbuf;
uint32_t cb_net_xid(void);
uint32_t cb_net_rand(void);
void cb_dhcp_option(uint8_t msg_type, uint8_t option, uint8_t len, struct pbuf *p, uint16_t offset);
void cb_net_poll(void);
#endif
