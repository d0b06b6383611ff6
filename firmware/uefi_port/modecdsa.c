/* _ecdsa: ECDSA P-256 signature verification for cosign (Mbed TLS from Debian's pinned source; the public key
 * and the signature arrive as bytes, the policy and everything around it is Python: netboot/signing.py). */
#include <string.h>
#include "py/runtime.h"
#include "py/mphal.h"
#include "mbedtls/ecdsa.h"
#include "mbedtls/platform.h"
#include "efi.h"

/* Mbed TLS's allocator: the firmware's pool (bignums during one verify; never the GC heap). */
void *cb_calloc(size_t n, size_t size) {
    if (size && n > (size_t)-1 / size) {
        return NULL;
    }
    void *p = NULL;
    typedef EFI_STATUS (EFIAPI *alloc_pool_t)(uint32_t, uint64_t, void **);
    if (((alloc_pool_t)cb_st->BootServices->AllocatePool)(EFI_LOADER_DATA, n * size ? n * size : 1, &p)) {
        return NULL;
    }
    memset(p, 0, n * size);
    return p;
}

void cb_free(void *p) {
    typedef EFI_STATUS (EFIAPI *free_pool_t)(void *);
    if (p) {
        ((free_pool_t)cb_st->BootServices->FreePool)(p);
    }
}

#if defined(__aarch64__)
#include <sys/auxv.h>
/* Mbed TLS asks getauxval(AT_HWCAP) whether the SHA-256 instructions exist (it takes this build for Linux);
 * the answer is the CPU's own ID register (readable at EL1 and EL2, where UEFI runs). */
unsigned long getauxval(unsigned long type) {
    uint64_t isar0;
    __asm__ volatile ("mrs %0, ID_AA64ISAR0_EL1" : "=r" (isar0));
    return type == AT_HWCAP && ((isar0 >> 12) & 0xF) ? HWCAP_SHA2 : 0;
}
#endif

mbedtls_ms_time_t mbedtls_ms_time(void) {
    return (mbedtls_ms_time_t)mp_hal_ticks_ms();
}

/* verify_p256(point, sha256, der_signature) -> bool. point: the 65-byte uncompressed public key (04 X Y). */
static mp_obj_t ecdsa_verify_p256(mp_obj_t point_in, mp_obj_t hash_in, mp_obj_t sig_in) {
    mp_buffer_info_t point, hash, sig;
    mp_get_buffer_raise(point_in, &point, MP_BUFFER_READ);
    mp_get_buffer_raise(hash_in, &hash, MP_BUFFER_READ);
    mp_get_buffer_raise(sig_in, &sig, MP_BUFFER_READ);
    mbedtls_ecdsa_context ctx;
    mbedtls_ecdsa_init(&ctx);
    int ret = mbedtls_ecp_group_load(&ctx.MBEDTLS_PRIVATE(grp), MBEDTLS_ECP_DP_SECP256R1);
    if (!ret) {
        ret = mbedtls_ecp_point_read_binary(&ctx.MBEDTLS_PRIVATE(grp), &ctx.MBEDTLS_PRIVATE(Q), point.buf, point.len);
    }
    if (!ret) {
        ret = mbedtls_ecp_check_pubkey(&ctx.MBEDTLS_PRIVATE(grp), &ctx.MBEDTLS_PRIVATE(Q));
    }
    if (ret) {
        mbedtls_ecdsa_free(&ctx);
        mp_raise_ValueError(MP_ERROR_TEXT("not a P-256 public key"));
    }
    ret = mbedtls_ecdsa_read_signature(&ctx, hash.buf, hash.len, sig.buf, sig.len);
    mbedtls_ecdsa_free(&ctx);
    return mp_obj_new_bool(ret == 0);
}
static MP_DEFINE_CONST_FUN_OBJ_3(ecdsa_verify_p256_obj, ecdsa_verify_p256);

static const mp_rom_map_elem_t ecdsa_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR__ecdsa) },
    { MP_ROM_QSTR(MP_QSTR_verify_p256), MP_ROM_PTR(&ecdsa_verify_p256_obj) },
};
static MP_DEFINE_CONST_DICT(ecdsa_globals, ecdsa_globals_table);

const mp_obj_module_t mp_module_ecdsa = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&ecdsa_globals,
};
MP_REGISTER_MODULE(MP_QSTR__ecdsa, mp_module_ecdsa);
