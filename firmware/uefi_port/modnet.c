/* _net: the network's per-packet path in C. A virtio-net (modern PCI) device's split virtqueues, set up
 * from Python (firmware/modules/netboot/virtio.py: PciIo, capabilities, features, queue memory), are
 * drained and filled here and joined to lwIP as its one netif; or, for NICs that are not virtio, the
 * firmware's EFI_SIMPLE_NETWORK_PROTOCOL does the frames. lwIP's DHCP client brings the address up; the
 * `socket` module (MicroPython's extmod/modlwip.c) is the interface Python uses.
 *
 * Why C: a Python per-packet path would see every 1.5 KB frame twice (virtio ring + lwIP), far below the
 * ~30 MiB/s iPXE reaches under TCG. Nothing here runs by itself: cb_net_poll runs whenever MicroPython
 * waits on a socket (MICROPY_INTERNAL_EVENT_HOOK) or Python calls _net.poll(). */
#include <string.h>
#include "py/runtime.h"
#include "py/mphal.h"
#include "lwip/init.h"
#include "lwip/netif.h"
#include "lwip/etharp.h"
#include "lwip/dhcp.h"
#include "lwip/dns.h"
#include "lwip/pbuf.h"
#include "lwip/timeouts.h"
#include "lwip/prot/dhcp.h"
#include "netif/ethernet.h"
#include "efi.h"
#include "modnet.h"

#define VIRTIO_NET_HDR 12 /* struct virtio_net_hdr with num_buffers: always this size under VERSION_1 */
#define DESC_F_WRITE 2
#define AVAIL_F_NO_INTERRUPT 1
#define USED_F_NO_NOTIFY 1

typedef struct { uint64_t addr; uint32_t len; uint16_t flags, next; } vdesc_t;
typedef struct { uint32_t id, len; } vused_elem_t;

typedef struct {
    uint16_t index, size, avail_idx, last_used;
    volatile vdesc_t *desc;
    volatile uint16_t *avail; /* flags, idx, ring[size] */
    volatile uint16_t *used;  /* flags, idx, then vused_elem_t ring[size] */
    uint8_t *buf;             /* size buffers of buf_size bytes, device address buf_dev */
    uint64_t buf_dev;
    uint32_t buf_size;
    uint64_t notify_offset;
    uint16_t free[1024];      /* TX: free descriptor ids */
    uint16_t nfree;
} vq_t;

typedef EFI_STATUS (EFIAPI *pciio_mem_write_t)(void *This, uint32_t Width, uint8_t Bar, uint64_t Offset,
    uint64_t Count, void *Buffer);
typedef EFI_STATUS (EFIAPI *snp_transmit_t)(void *This, uint64_t HeaderSize, uint64_t BufferSize, void *Buffer,
    void *Src, void *Dest, uint16_t *Protocol);
typedef EFI_STATUS (EFIAPI *snp_receive_t)(void *This, uint64_t *HeaderSize, uint64_t *BufferSize, void *Buffer,
    void *Src, void *Dest, uint16_t *Protocol);
typedef EFI_STATUS (EFIAPI *snp_status_t)(void *This, uint32_t *InterruptStatus, void **TxBuf);

enum { BACKEND_NONE, BACKEND_VIRTIO, BACKEND_SNP };

static struct {
    int backend;
    void *pciio;
    pciio_mem_write_t mem_write;
    uint8_t notify_bar;
    vq_t rx, tx;
    void *snp;
    uint8_t frame[1536];
    uint8_t mac[6];
    uint64_t rx_packets, tx_packets, rx_bytes, rx_dropped, tx_busy, tx_kicks;
    bool lwip_ready;
    bool in_poll, tx_pending; /* inside cb_net_poll frames are posted at once, the device kicked at the end */
} nic;

static struct netif nif;

/* modlwip.c's getaddrinfo reads it (network_lwip.c, which defines it, is not built: IPv4 only). */
int mp_mod_network_prefer_dns_use_ip_version = 4;

/* ---- randomness for lwIP (ports, ISNs); TLS takes its entropy elsewhere ---- */
static uint64_t rand_state = 0x9e3779b97f4a7c15ULL;

uint32_t cb_net_rand(void) {
    uint64_t x = rand_state ^ mp_hal_ticks_cpu();
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rand_state = x;
    return (uint32_t)(x >> 16);
}

/* DHCP transaction ids start from the MAC's low four bytes (then lwIP counts up). */
uint32_t cb_net_xid(void) {
    return ((uint32_t)nic.mac[2] << 24 | (uint32_t)nic.mac[3] << 16 | (uint32_t)nic.mac[4] << 8 | nic.mac[5]);
}

void cb_lwip_assert(const char *msg, int line, const char *file) {
    mp_raise_msg_varg(&mp_type_RuntimeError, MP_ERROR_TEXT("lwIP assertion %s at %s:%d"), msg, file, line);
}

int atoi(const char *s) {
    int v = 0;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (*s++ - '0');
    }
    return v;
}

u32_t sys_now(void) {
    return (u32_t)mp_hal_ticks_ms();
}

/* ---- DHCP options lwIP itself does not keep: 15 (domain name) and 67 (boot file name) ---- */
static char dhcp_domain[256], dhcp_bootfile[256];

void cb_dhcp_option(uint8_t msg_type, uint8_t option, uint8_t len, struct pbuf *p, uint16_t offset) {
    char *dst = option == 15 ? dhcp_domain : option == 67 ? dhcp_bootfile : NULL;
    if (!dst || (msg_type != DHCP_ACK && msg_type != DHCP_OFFER)) {
        return;
    }
    uint16_t n = pbuf_copy_partial(p, dst, len, offset);
    while (n && dst[n - 1] == 0) {
        n--;
    }
    dst[n] = 0;
}

/* ---- virtio split queues ---- */
static inline void barrier(void) {
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static void vq_notify(vq_t *q) {
    barrier();
    if (q->used[0] & USED_F_NO_NOTIFY) {
        return;
    }
    uint16_t v = q->index;
    nic.mem_write(nic.pciio, 1 /* Uint16 */, nic.notify_bar, q->notify_offset, 1, &v);
}

static void vq_post(vq_t *q, uint16_t id) {
    q->avail[2 + q->avail_idx % q->size] = id;
    q->avail_idx++;
}

static void vq_publish(vq_t *q) {
    barrier();
    q->avail[1] = q->avail_idx;
}

static bool vq_used(vq_t *q, uint32_t *id, uint32_t *len) {
    barrier();
    if (q->last_used == q->used[1]) {
        return false;
    }
    volatile vused_elem_t *ring = (volatile vused_elem_t *)(q->used + 2);
    volatile vused_elem_t *e = &ring[q->last_used % q->size];
    *id = e->id;
    *len = e->len;
    q->last_used++;
    return true;
}

static void tx_reclaim(void) {
    uint32_t id, len;
    while (vq_used(&nic.tx, &id, &len)) {
        if (id < nic.tx.size) {
            nic.tx.free[nic.tx.nfree++] = (uint16_t)id;
        }
    }
}

/* A kick is an MMIO write: under TCG it takes QEMU's big lock, ~20-30 us on a busy host, so the ACKs lwIP
 * sends while a burst is drained share one (measured: 30000 kicks were half of a 64 MiB download's time). */
static void tx_kick(void) {
    nic.tx_pending = false;
    nic.tx_kicks++;
    vq_notify(&nic.tx);
}

static void input_frame(const uint8_t *data, size_t len) {
    struct pbuf *p = pbuf_alloc(PBUF_RAW, (u16_t)len, PBUF_POOL);
    if (!p) {
        nic.rx_dropped++;
        return;
    }
    pbuf_take(p, data, (u16_t)len);
    nic.rx_packets++;
    nic.rx_bytes += len;
    if (nif.input(p, &nif) != ERR_OK) {
        pbuf_free(p);
    }
}

static void virtio_rx(void) {
    uint32_t id, len;
    int n = 0;
    while (vq_used(&nic.rx, &id, &len)) {
        if (id < nic.rx.size && len > VIRTIO_NET_HDR && len <= nic.rx.buf_size) {
            input_frame(nic.rx.buf + (size_t)id * nic.rx.buf_size + VIRTIO_NET_HDR, len - VIRTIO_NET_HDR);
        }
        if (id < nic.rx.size) {
            vq_post(&nic.rx, (uint16_t)id);
            n++;
        }
        if (n >= 64) { /* give buffers back while a burst is still arriving */
            vq_publish(&nic.rx);
            vq_notify(&nic.rx);
            n = 0;
        }
    }
    if (n) {
        vq_publish(&nic.rx);
        vq_notify(&nic.rx);
    }
}

static err_t virtio_output(struct netif *n, struct pbuf *p) {
    if (p->tot_len + VIRTIO_NET_HDR > nic.tx.buf_size) {
        return ERR_BUF;
    }
    tx_reclaim();
    if (!nic.tx.nfree && nic.tx_pending) { /* a full ring: let the device drain what is posted */
        tx_kick();
    }
    for (int spin = 0; !nic.tx.nfree; spin++) {
        if (spin > 1000000) {
            nic.tx_busy++;
            return ERR_MEM;
        }
        tx_reclaim();
    }
    uint16_t id = nic.tx.free[--nic.tx.nfree];
    uint8_t *buf = nic.tx.buf + (size_t)id * nic.tx.buf_size;
    memset(buf, 0, VIRTIO_NET_HDR);
    pbuf_copy_partial(p, buf + VIRTIO_NET_HDR, p->tot_len, 0);
    nic.tx.desc[id].len = p->tot_len + VIRTIO_NET_HDR;
    vq_post(&nic.tx, id);
    vq_publish(&nic.tx);
    nic.tx_pending = true;
    if (!nic.in_poll) {
        tx_kick();
    }
    nic.tx_packets++;
    return ERR_OK;
}

/* ---- EFI_SIMPLE_NETWORK_PROTOCOL (non-virtio NICs): GetStatus at +88, Transmit +96, Receive +104 ---- */
static void *snp_fn(size_t off) {
    return *(void **)((uint8_t *)nic.snp + off);
}

static void snp_rx(void) {
    for (int i = 0; i < 256; i++) {
        uint64_t size = sizeof(nic.frame);
        EFI_STATUS st = ((snp_receive_t)snp_fn(104))(nic.snp, NULL, &size, nic.frame, NULL, NULL, NULL);
        if (st != EFI_SUCCESS) {
            return;
        }
        input_frame(nic.frame, size);
    }
}

static err_t snp_output(struct netif *n, struct pbuf *p) {
    if (p->tot_len > sizeof(nic.frame)) {
        return ERR_BUF;
    }
    pbuf_copy_partial(p, nic.frame, p->tot_len, 0);
    for (int spin = 0; spin < 100000; spin++) {
        EFI_STATUS st = ((snp_transmit_t)snp_fn(96))(nic.snp, 0, p->tot_len, nic.frame, NULL, NULL, NULL);
        if (st == EFI_SUCCESS) {
            /* the buffer is ours again once GetStatus hands it back */
            for (int w = 0; w < 100000; w++) {
                void *done = NULL;
                ((snp_status_t)snp_fn(88))(nic.snp, NULL, &done);
                if (done) {
                    break;
                }
            }
            nic.tx_packets++;
            return ERR_OK;
        }
        if (st != EFI_NOT_READY) {
            return ERR_IF;
        }
    }
    nic.tx_busy++;
    return ERR_MEM;
}

void cb_net_poll(void) {
    if (nic.backend == BACKEND_VIRTIO) {
        nic.in_poll = true;
        virtio_rx();
        sys_check_timeouts();
        nic.in_poll = false;
        if (nic.tx_pending) {
            tx_kick();
        }
        tx_reclaim();
    } else if (nic.backend == BACKEND_SNP) {
        snp_rx();
        sys_check_timeouts();
    }
}

static err_t nif_init(struct netif *n) {
    n->name[0] = 'e';
    n->name[1] = 'n';
    n->output = etharp_output;
    n->linkoutput = nic.backend == BACKEND_VIRTIO ? virtio_output : snp_output;
    n->hwaddr_len = 6;
    memcpy(n->hwaddr, nic.mac, 6);
    n->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET | NETIF_FLAG_IGMP;
    return ERR_OK;
}

static void netif_start(int backend, mp_obj_t mac_in, mp_int_t mtu) {
    mp_buffer_info_t mac;
    mp_get_buffer_raise(mac_in, &mac, MP_BUFFER_READ);
    if (mac.len != 6) {
        mp_raise_ValueError(MP_ERROR_TEXT("MAC address must be 6 bytes"));
    }
    if (nic.backend != BACKEND_NONE) {
        netif_remove(&nif);
    }
    if (!nic.lwip_ready) {
        lwip_init();
        nic.lwip_ready = true;
    }
    memcpy(nic.mac, mac.buf, 6);
    rand_state ^= (uint64_t)cb_net_xid() << 20;
    nic.backend = backend;
    nic.rx_packets = nic.tx_packets = nic.rx_bytes = nic.rx_dropped = nic.tx_busy = nic.tx_kicks = 0;
    nic.in_poll = nic.tx_pending = false;
    netif_add(&nif, IP4_ADDR_ANY4, IP4_ADDR_ANY4, IP4_ADDR_ANY4, NULL, nif_init, netif_input);
    nif.mtu = (u16_t)(mtu > 0 && mtu < 1500 ? mtu : 1500);
    netif_set_hostname(&nif, "cloud-boot");
    netif_set_default(&nif);
    netif_set_link_up(&nif);
    netif_set_up(&nif);
}

static void vq_from_tuple(vq_t *q, mp_obj_t t, bool rx) {
    /* (index, size, desc, avail, used, buf, buf_dev, buf_size, notify_offset) */
    size_t n;
    mp_obj_t *f;
    mp_obj_get_array(t, &n, &f);
    if (n != 9) {
        mp_raise_ValueError(MP_ERROR_TEXT("queue tuple needs 9 fields"));
    }
    q->index = mp_obj_get_int(f[0]);
    q->size = mp_obj_get_int(f[1]);
    if (!q->size || q->size > 1024 || (q->size & (q->size - 1))) {
        mp_raise_ValueError(MP_ERROR_TEXT("queue size must be a power of two up to 1024"));
    }
    q->desc = (volatile vdesc_t *)(uintptr_t)mp_obj_int_get_uint_checked(f[2]);
    q->avail = (volatile uint16_t *)(uintptr_t)mp_obj_int_get_uint_checked(f[3]);
    q->used = (volatile uint16_t *)(uintptr_t)mp_obj_int_get_uint_checked(f[4]);
    q->buf = (uint8_t *)(uintptr_t)mp_obj_int_get_uint_checked(f[5]);
    q->buf_dev = mp_obj_int_get_uint_checked(f[6]);
    q->buf_size = mp_obj_get_int(f[7]);
    q->notify_offset = mp_obj_int_get_uint_checked(f[8]);
    q->avail_idx = q->last_used = 0;
    q->avail[0] = AVAIL_F_NO_INTERRUPT;
    q->avail[1] = 0;
    q->nfree = 0;
    for (uint16_t i = 0; i < q->size; i++) {
        q->desc[i].addr = q->buf_dev + (uint64_t)i * q->buf_size;
        q->desc[i].len = rx ? q->buf_size : 0;
        q->desc[i].flags = rx ? DESC_F_WRITE : 0;
        q->desc[i].next = 0;
        if (rx) {
            vq_post(q, i);
        } else {
            q->free[q->nfree++] = i;
        }
    }
}

/* attach_virtio(pciio, notify_bar, mac, mtu, rxq, txq): the device is DRIVER_OK with both queues enabled;
 * descriptors are written here, every RX buffer posted, lwIP's netif brought up. */
static mp_obj_t net_attach_virtio(size_t n_args, const mp_obj_t *args) {
    nic.pciio = (void *)(uintptr_t)mp_obj_int_get_uint_checked(args[0]);
    nic.mem_write = *(pciio_mem_write_t *)((uint8_t *)nic.pciio + 24);
    nic.notify_bar = mp_obj_get_int(args[1]);
    vq_from_tuple(&nic.rx, args[4], true);
    vq_from_tuple(&nic.tx, args[5], false);
    netif_start(BACKEND_VIRTIO, args[2], mp_obj_get_int(args[3]));
    vq_publish(&nic.rx);
    vq_notify(&nic.rx);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(net_attach_virtio_obj, 6, 6, net_attach_virtio);

/* attach_snp(snp, mac, mtu): frames through an initialized, started EFI_SIMPLE_NETWORK_PROTOCOL. */
static mp_obj_t net_attach_snp(mp_obj_t snp, mp_obj_t mac, mp_obj_t mtu) {
    nic.snp = (void *)(uintptr_t)mp_obj_int_get_uint_checked(snp);
    netif_start(BACKEND_SNP, mac, mp_obj_get_int(mtu));
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_3(net_attach_snp_obj, net_attach_snp);

/* detach(): the netif goes down and away (Python resets the device before anything boots). */
static mp_obj_t net_detach(void) {
    if (nic.backend != BACKEND_NONE) {
        dhcp_stop(&nif);
        netif_remove(&nif);
        nic.backend = BACKEND_NONE;
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_0(net_detach_obj, net_detach);

static void check_up(void) {
    if (nic.backend == BACKEND_NONE) {
        mp_raise_msg(&mp_type_OSError, MP_ERROR_TEXT("no network interface attached"));
    }
}

static mp_obj_t net_poll(void) {
    cb_net_poll();
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_0(net_poll_obj, net_poll);

static mp_obj_t net_dhcp_start(void) {
    check_up();
    dhcp_domain[0] = dhcp_bootfile[0] = 0;
    if (dhcp_start(&nif) != ERR_OK) {
        mp_raise_msg(&mp_type_OSError, MP_ERROR_TEXT("DHCP client could not start (out of memory)"));
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_0(net_dhcp_start_obj, net_dhcp_start);

static mp_obj_t ip_str(const ip_addr_t *a) {
    char buf[IP4ADDR_STRLEN_MAX];
    ip4addr_ntoa_r(ip_2_ip4(a), buf, sizeof(buf));
    return mp_obj_new_str(buf, strlen(buf));
}

/* lease() -> None until DHCP is bound, then (address, netmask, gateway, [dns...], bootfile, domain,
 * server, lease seconds). bootfile: option 67, else the BOOTP header's `file` field. */
static mp_obj_t net_lease(void) {
    check_up();
    if (!dhcp_supplied_address(&nif)) {
        return mp_const_none;
    }
    struct dhcp *d = netif_dhcp_data(&nif);
    mp_obj_t dns = mp_obj_new_list(0, NULL);
    for (int i = 0; i < DNS_MAX_SERVERS; i++) {
        const ip_addr_t *s = dns_getserver(i);
        if (!ip_addr_isany(s)) {
            mp_obj_list_append(dns, ip_str(s));
        }
    }
    const char *boot = dhcp_bootfile[0] ? dhcp_bootfile : d->boot_file_name; /* both NUL-terminated */
    ip_addr_t server;
    ip_addr_copy(server, d->server_ip_addr);
    mp_obj_t t[8] = {
        ip_str(&nif.ip_addr), ip_str(&nif.netmask), ip_str(&nif.gw), dns,
        mp_obj_new_str(boot, strlen(boot)), mp_obj_new_str(dhcp_domain, strlen(dhcp_domain)),
        ip_str(&server), mp_obj_new_int_from_uint(d->offered_t0_lease),
    };
    return mp_obj_new_tuple(8, t);
}
static MP_DEFINE_CONST_FUN_OBJ_0(net_lease_obj, net_lease);

/* set_dns([servers]): replace the DNS servers (DHCP's, or the plan's). */
static mp_obj_t net_set_dns(mp_obj_t list) {
    size_t n;
    mp_obj_t *items;
    mp_obj_get_array(list, &n, &items);
    for (int i = 0; i < DNS_MAX_SERVERS; i++) {
        ip_addr_t a = *IP_ADDR_ANY;
        if ((size_t)i < n && !ipaddr_aton(mp_obj_str_get_str(items[i]), &a)) {
            mp_raise_ValueError(MP_ERROR_TEXT("not an IPv4 address"));
        }
        dns_setserver(i, &a);
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(net_set_dns_obj, net_set_dns);

/* stats() -> (rx packets, tx packets, rx bytes, rx dropped for want of a pbuf, tx queue full, tx kicks) */
static mp_obj_t net_stats(void) {
    mp_obj_t t[6] = { mp_obj_new_int_from_ull(nic.rx_packets), mp_obj_new_int_from_ull(nic.tx_packets),
                      mp_obj_new_int_from_ull(nic.rx_bytes), mp_obj_new_int_from_ull(nic.rx_dropped),
                      mp_obj_new_int_from_ull(nic.tx_busy), mp_obj_new_int_from_ull(nic.tx_kicks) };
    return mp_obj_new_tuple(6, t);
}
static MP_DEFINE_CONST_FUN_OBJ_0(net_stats_obj, net_stats);

static const mp_rom_map_elem_t net_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR__net) },
    { MP_ROM_QSTR(MP_QSTR_attach_virtio), MP_ROM_PTR(&net_attach_virtio_obj) },
    { MP_ROM_QSTR(MP_QSTR_attach_snp), MP_ROM_PTR(&net_attach_snp_obj) },
    { MP_ROM_QSTR(MP_QSTR_detach), MP_ROM_PTR(&net_detach_obj) },
    { MP_ROM_QSTR(MP_QSTR_poll), MP_ROM_PTR(&net_poll_obj) },
    { MP_ROM_QSTR(MP_QSTR_dhcp_start), MP_ROM_PTR(&net_dhcp_start_obj) },
    { MP_ROM_QSTR(MP_QSTR_lease), MP_ROM_PTR(&net_lease_obj) },
    { MP_ROM_QSTR(MP_QSTR_set_dns), MP_ROM_PTR(&net_set_dns_obj) },
    { MP_ROM_QSTR(MP_QSTR_stats), MP_ROM_PTR(&net_stats_obj) },
};
static MP_DEFINE_CONST_DICT(net_globals, net_globals_table);

const mp_obj_module_t mp_module_net = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&net_globals,
};
MP_REGISTER_MODULE(MP_QSTR__net, mp_module_net);
