/* lwIP for the firmware's network boot (modnet.c drives it, extmod/modlwip.c is the `socket` module).
 *
 * No OS, no threads, no interrupts: everything runs when MicroPython polls (modnet.c's cb_net_poll, called
 * from the VM's event hook while a socket waits). Sized for one fast TCP download: a 512 KiB window
 * (window scaling), enough pool pbufs to hold it, fast retransmit is lwIP's default. IPv4 only. */
#ifndef CB_LWIPOPTS_H
#define CB_LWIPOPTS_H
#include <stdint.h>
#include "modnet.h"                  /* the hooks named below */

#define NO_SYS                          1
#define SYS_LIGHTWEIGHT_PROT            0
typedef uint32_t sys_prot_t;        /* modlwip.c defines sys_arch_protect() with it */
#define LWIP_NETCONN                    0
#define LWIP_SOCKET                     0
#define LWIP_IPV4                       1
#define LWIP_IPV6                       0
#define LWIP_ARP                        1
#define LWIP_ETHERNET                   1
#define LWIP_ICMP                       1
#define LWIP_RAW                        1
#define LWIP_UDP                        1
#define LWIP_TCP                        1
#define LWIP_IGMP                       1
#define LWIP_STATS                      0
#define LWIP_NETIF_HOSTNAME             1
#define LWIP_NETIF_STATUS_CALLBACK      0
#define LWIP_NETIF_LINK_CALLBACK        0
#define LWIP_CHKSUM_ALGORITHM           3
#define LWIP_TIMERS                     1
#define LWIP_TCP_KEEPALIVE              0
#define SO_REUSE                        1
#define TCP_LISTEN_BACKLOG              1

/* DHCP: lwIP's client, the BOOTP `file` field kept; modnet.c's parse hook keeps options 15 and 67 and
 * the xid starts from the MAC address. */
#define LWIP_DHCP                       1
#define LWIP_DHCP_BOOTP_FILE            1
#define LWIP_DHCP_DOES_ACD_CHECK        0
#define LWIP_DHCP_CHECK_LINK_UP         0
#define LWIP_DHCP_GET_NTP_SRV           0
#define DHCP_CREATE_RAND_XID            0
#define DHCP_GLOBAL_XID_HEADER          "modnet.h"
#define DHCP_GLOBAL_XID                 cb_net_xid()
#define LWIP_HOOK_FILENAME              "modnet.h"
#define LWIP_HOOK_DHCP_PARSE_OPTION(netif, dhcp, state, msg, msg_type, option, len, pbuf, offset) \
    cb_dhcp_option((msg_type), (option), (len), (pbuf), (offset))
#define LWIP_DNS                        1
#define DNS_MAX_SERVERS                 3
#define LWIP_DHCP_PROVIDE_DNS_SERVERS   DNS_MAX_SERVERS
#define DNS_TABLE_SIZE                  8
#define LWIP_RAND()                     cb_net_rand()

/* Memory: lwIP's own heap and pools (static, in .bss: not stored in the EFI file). */
#define MEM_ALIGNMENT                   8
#define MEM_SIZE                        (1024 * 1024)
#define MEMP_NUM_PBUF                   64
#define MEMP_NUM_TCP_PCB                8
#define MEMP_NUM_TCP_SEG                512
#define MEMP_NUM_UDP_PCB                6
#define MEMP_NUM_SYS_TIMEOUT            (LWIP_NUM_SYS_TIMEOUT_INTERNAL + 4)
#define PBUF_POOL_SIZE                  640
#define PBUF_POOL_BUFSIZE               1536

/* TCP tuned for bulk download. */
#define TCP_MSS                         1460
#define LWIP_WND_SCALE                  1
#define TCP_RCV_SCALE                   4
#define TCP_WND                         (512 * 1024)
#define TCP_SND_BUF                     (16 * TCP_MSS)
#define TCP_SND_QUEUELEN                (4 * TCP_SND_BUF / TCP_MSS)
/* A window update is a frame and a kick (~20 us under TCG): one per 16 segments the application read, not 4. */
#define TCP_WND_UPDATE_THRESHOLD        (16 * TCP_MSS)
#define TCP_QUEUE_OOSEQ                 1
#define TCP_OOSEQ_MAX_PBUFS             128
#define LWIP_TCP_SACK_OUT               0

#define sys_jiffies                     sys_now

#endif
