/* _libzstd: one zstd frame decoded by libzstd's decompressor (Debian's libzstd source, pinned and fetched at
 * build time by host/cloudboot/toolchain/zstd.py; not kept in this repository).
 *
 * Why C: compat.zstd (portable Python) decodes ~0.1 MB/s in this firmware under QEMU TCG, minutes for a
 * zstd-compressed kernel. compat.zstd keeps the frame loop, limits and error messages and calls in here per
 * frame when the module exists. No allocation inside libzstd: its context lives in a GC block per call. */
#include "py/runtime.h"
#define ZSTD_STATIC_LINKING_ONLY
#include "zstd.h"

/* frame_size(src, offset) -> (compressed size, output bound) of the frame at src[offset:]. */
static mp_obj_t zstd_frame_size(mp_obj_t src_in, mp_obj_t offset_in) {
    mp_buffer_info_t src;
    mp_get_buffer_raise(src_in, &src, MP_BUFFER_READ);
    size_t off = mp_obj_get_int(offset_in);
    if (off > src.len) {
        mp_raise_ValueError(MP_ERROR_TEXT("offset beyond input"));
    }
    const uint8_t *p = (const uint8_t *)src.buf + off;
    size_t fsize = ZSTD_findFrameCompressedSize(p, src.len - off);
    if (ZSTD_isError(fsize)) {
        mp_raise_msg_varg(&mp_type_ValueError, MP_ERROR_TEXT("%s"), ZSTD_getErrorName(fsize));
    }
    unsigned long long bound = ZSTD_decompressBound(p, fsize);
    if (bound == ZSTD_CONTENTSIZE_ERROR) {
        mp_raise_ValueError(MP_ERROR_TEXT("corrupt frame header"));
    }
    mp_obj_t t[2] = { mp_obj_new_int_from_uint(fsize), mp_obj_new_int_from_ull(bound) };
    return mp_obj_new_tuple(2, t);
}
static MP_DEFINE_CONST_FUN_OBJ_2(zstd_frame_size_obj, zstd_frame_size);

/* decode(src, offset, size, dst, dst_offset, dst_limit, check) -> bytes written into dst[dst_offset:dst_limit]. */
static mp_obj_t zstd_decode(size_t n_args, const mp_obj_t *args) {
    mp_buffer_info_t src, dst;
    mp_get_buffer_raise(args[0], &src, MP_BUFFER_READ);
    size_t off = mp_obj_get_int(args[1]), size = mp_obj_get_int(args[2]);
    mp_get_buffer_raise(args[3], &dst, MP_BUFFER_WRITE);
    size_t doff = mp_obj_get_int(args[4]), dlim = mp_obj_get_int(args[5]);
    if (off > src.len || size > src.len - off || doff > dlim || dlim > dst.len) {
        mp_raise_ValueError(MP_ERROR_TEXT("bad buffer range"));
    }
    size_t wsize = ZSTD_estimateDCtxSize();
    void *ws = m_new(uint8_t, wsize);
    ZSTD_DCtx *dctx = ZSTD_initStaticDCtx(ws, wsize);
    if (!dctx) {
        m_del(uint8_t, ws, wsize);
        mp_raise_ValueError(MP_ERROR_TEXT("decoder context does not fit its workspace"));
    }
    size_t r = 0;
    if (!mp_obj_is_true(args[6])) {
        r = ZSTD_DCtx_setParameter(dctx, ZSTD_d_forceIgnoreChecksum, ZSTD_d_ignoreChecksum);
    }
    if (!ZSTD_isError(r)) {
        r = ZSTD_decompressDCtx(dctx, (uint8_t *)dst.buf + doff, dlim - doff, (const uint8_t *)src.buf + off, size);
    }
    m_del(uint8_t, ws, wsize);
    if (ZSTD_isError(r)) {
        mp_raise_msg_varg(&mp_type_ValueError, MP_ERROR_TEXT("%s"), ZSTD_getErrorName(r));
    }
    return mp_obj_new_int_from_uint(r);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(zstd_decode_obj, 7, 7, zstd_decode);

static const mp_rom_map_elem_t zstd_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR__libzstd) },
    { MP_ROM_QSTR(MP_QSTR_frame_size), MP_ROM_PTR(&zstd_frame_size_obj) },
    { MP_ROM_QSTR(MP_QSTR_decode), MP_ROM_PTR(&zstd_decode_obj) },
};
static MP_DEFINE_CONST_DICT(zstd_globals, zstd_globals_table);

const mp_obj_module_t mp_module_zstd = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&zstd_globals,
};
MP_REGISTER_MODULE(MP_QSTR__libzstd, mp_module_zstd);

/* libzstd's allocator hooks: never called (static context), present so that the library links. */
void *malloc(size_t n) {
    (void)n;
    return NULL;
}
void *calloc(size_t n, size_t s) {
    (void)n;
    (void)s;
    return NULL;
}
void free(void *p) {
    (void)p;
}
