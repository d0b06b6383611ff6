/* _ecdsa: ECDSA P-256 signature verification for cosign (Mbed TLS from Debian's pinned source; the public key
 * and the signature arrive as bytes, the policy and everything around it is Python: netboot/signing.py). */
#include <string.h>
#include "py/runtime.h"
#include "mbedtls/ecdsa.h"

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
