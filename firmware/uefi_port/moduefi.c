/* _uefi: the firmware as seen from Python. System table, image handle, and a call of any firmware
 * function pointer under the UEFI calling convention. Memory access goes through uctypes. */
#include "py/runtime.h"
#include <string.h>
#include "py/objstr.h"
#include "efi.h"

typedef uint64_t (EFIAPI *efi_fn10_t)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t,
    uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);

/* An argument is an int (address or value), None (NULL), or a buffer (its address). */
static uint64_t arg_value(mp_obj_t o) {
    if (o == mp_const_none) {
        return 0;
    }
    if (mp_obj_is_int(o)) {
        return (uint64_t)mp_obj_int_get_uint_checked(o);
    }
    mp_buffer_info_t bi;
    if (mp_get_buffer(o, &bi, MP_BUFFER_READ)) {
        return (uint64_t)(uintptr_t)bi.buf;
    }
    mp_raise_TypeError(MP_ERROR_TEXT("firmware call arguments must be int, None or a buffer"));
}

/* call(fn, *args) -> int: up to 10 arguments; the result is the raw 64-bit return (EFI_STATUS). */
static mp_obj_t uefi_call(size_t n_args, const mp_obj_t *args) {
    uint64_t a[10] = {0};
    if (n_args > 11) {
        mp_raise_ValueError(MP_ERROR_TEXT("at most 10 arguments"));
    }
    uint64_t fn = arg_value(args[0]);
    if (!fn) {
        mp_raise_ValueError(MP_ERROR_TEXT("NULL function pointer"));
    }
    for (size_t i = 1; i < n_args; i++) {
        a[i - 1] = arg_value(args[i]);
    }
    uint64_t r = ((efi_fn10_t)(uintptr_t)fn)(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9]);
    return mp_obj_new_int_from_ull(r);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(uefi_call_obj, 1, 11, uefi_call);

static mp_obj_t uefi_system_table(void) {
    return mp_obj_new_int_from_ull((uintptr_t)cb_st);
}
static MP_DEFINE_CONST_FUN_OBJ_0(uefi_system_table_obj, uefi_system_table);

static mp_obj_t uefi_image_handle(void) {
    return mp_obj_new_int_from_ull((uintptr_t)cb_image);
}
static MP_DEFINE_CONST_FUN_OBJ_0(uefi_image_handle_obj, uefi_image_handle);

/* addressof(buf) -> int, also for read-only bytes (uctypes.addressof wants a writable buffer). */
static mp_obj_t uefi_addressof(mp_obj_t o) {
    mp_buffer_info_t bi;
    mp_get_buffer_raise(o, &bi, MP_BUFFER_READ);
    return mp_obj_new_int_from_ull((uintptr_t)bi.buf);
}
static MP_DEFINE_CONST_FUN_OBJ_1(uefi_addressof_obj, uefi_addressof);

/* The one firmware callback that must be C: EFI_LOAD_FILE2_PROTOCOL serving the initrd to the Linux EFI
 * stub (installed from Python, uefi/handoff.py, on a handle with the LINUX_EFI_INITRD_MEDIA_GUID path). */
typedef struct {
    EFI_STATUS (EFIAPI *LoadFile)(void *This, void *FilePath, uint8_t BootPolicy, uint64_t *BufferSize, void *Buffer);
} LOAD_FILE2_PROTOCOL;

static struct { uint64_t addr, size; } initrd;

static EFI_STATUS EFIAPI initrd_load_file(void *This, void *FilePath, uint8_t BootPolicy, uint64_t *BufferSize,
    void *Buffer) {
    if (BootPolicy) {
        return EFI_ERROR_BIT | 3; /* EFI_UNSUPPORTED: only LoadFile2 semantics */
    }
    if (!BufferSize) {
        return EFI_ERROR_BIT | 2; /* EFI_INVALID_PARAMETER */
    }
    if (!initrd.size) {
        return EFI_ERROR_BIT | 14; /* EFI_NOT_FOUND */
    }
    if (!Buffer || *BufferSize < initrd.size) {
        *BufferSize = initrd.size;
        return EFI_ERROR_BIT | 5; /* EFI_BUFFER_TOO_SMALL: the size query */
    }
    memcpy(Buffer, (void *)(uintptr_t)initrd.addr, initrd.size);
    *BufferSize = initrd.size;
    return EFI_SUCCESS;
}

static LOAD_FILE2_PROTOCOL initrd_protocol = { initrd_load_file };

/* initrd_protocol(addr, size) -> int: serve `size` bytes at `addr`; returns the interface address. */
static mp_obj_t uefi_initrd_protocol(mp_obj_t addr, mp_obj_t size) {
    initrd.addr = mp_obj_int_get_uint_checked(addr);
    initrd.size = mp_obj_int_get_uint_checked(size);
    return mp_obj_new_int_from_ull((uintptr_t)&initrd_protocol);
}
static MP_DEFINE_CONST_FUN_OBJ_2(uefi_initrd_protocol_obj, uefi_initrd_protocol);

#if defined(__x86_64__)
#define ARCH_QSTR MP_QSTR_x86_64
#elif defined(__aarch64__)
#define ARCH_QSTR MP_QSTR_aarch64
#elif defined(__riscv)
#define ARCH_QSTR MP_QSTR_riscv64
#elif defined(__loongarch__)
#define ARCH_QSTR MP_QSTR_loongarch64
#endif

static const mp_rom_map_elem_t uefi_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR__uefi) },
    { MP_ROM_QSTR(MP_QSTR_call), MP_ROM_PTR(&uefi_call_obj) },
    { MP_ROM_QSTR(MP_QSTR_system_table), MP_ROM_PTR(&uefi_system_table_obj) },
    { MP_ROM_QSTR(MP_QSTR_image_handle), MP_ROM_PTR(&uefi_image_handle_obj) },
    { MP_ROM_QSTR(MP_QSTR_addressof), MP_ROM_PTR(&uefi_addressof_obj) },
    { MP_ROM_QSTR(MP_QSTR_initrd_protocol), MP_ROM_PTR(&uefi_initrd_protocol_obj) },
    { MP_ROM_QSTR(MP_QSTR_ARCH), MP_ROM_QSTR(ARCH_QSTR) },
};
static MP_DEFINE_CONST_DICT(uefi_globals, uefi_globals_table);

const mp_obj_module_t mp_module_uefi = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&uefi_globals,
};
MP_REGISTER_MODULE(MP_QSTR__uefi, mp_module_uefi);
