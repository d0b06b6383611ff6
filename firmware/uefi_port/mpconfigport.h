/* What the UEFI port enables. The portable core (firmware/modules) needs struct, binascii, hashlib.sha256,
 * deflate, json, re, uctypes, io and time; the C stays small and everything else is frozen Python. */
#include <stdint.h>
#include <stddef.h>
#include <alloca.h>

#define MICROPY_CONFIG_ROM_LEVEL          (MICROPY_CONFIG_ROM_LEVEL_EXTRA_FEATURES)

#define MICROPY_ENABLE_GC                 (1)
#define MICROPY_GC_SPLIT_HEAP             (1)
#define MICROPY_GC_SPLIT_HEAP_AUTO        (1)
#define MICROPY_ENABLE_FINALISER          (1)
#define MICROPY_STACK_CHECK               (1)
#define MICROPY_HELPER_REPL               (1)
#define MICROPY_REPL_AUTO_INDENT          (1)
#define MICROPY_KBD_EXCEPTION             (1)
#define MICROPY_ENABLE_EMERGENCY_EXCEPTION_BUF (1)
#define MICROPY_EMERGENCY_EXCEPTION_BUF_SIZE (256)
#define MICROPY_LONGINT_IMPL              (MICROPY_LONGINT_IMPL_MPZ)
#define MICROPY_FLOAT_IMPL                (MICROPY_FLOAT_IMPL_DOUBLE)
#define MICROPY_ENABLE_EXTERNAL_IMPORT    (1)
#define MICROPY_ALLOC_PATH_MAX            (256)
#define MICROPY_USE_INTERNAL_PRINTF       (1)
#define MICROPY_USE_INTERNAL_ERRNO        (1)
#define MICROPY_ERROR_REPORTING           (MICROPY_ERROR_REPORTING_DETAILED)
#define MICROPY_WARNINGS                  (1)

/* Native code emitters and the things UEFI has no use for. */
#define MICROPY_EMIT_X64                  (0)
#define MICROPY_PY_SYS_PLATFORM           "uefi"
#define MICROPY_PY_SYS_STDFILES           (1)
#define MICROPY_PY_SYS_STDIO_BUFFER       (1)
#define MICROPY_PY_SYS_EXIT               (1)
#define MICROPY_PY_OS                     (0)
#define MICROPY_PY_SELECT                 (0)
#define MICROPY_PY_MACHINE                (0)
#define MICROPY_PY_ASYNCIO                (0)
#define MICROPY_PY_THREAD                 (0)
#define MICROPY_PY_BTREE                  (0)
#define MICROPY_PY_FRAMEBUF               (0)
#define MICROPY_PY_PLATFORM               (0)
#define MICROPY_PY_CRYPTOLIB              (0)
uintptr_t mp_hal_ticks_cpu(void);
#define MICROPY_PY_RANDOM_SEED_INIT_FUNC  (mp_hal_ticks_cpu())
#define MICROPY_VFS                       (0)
#define MICROPY_READER_VFS                (0)

/* The portable core's needs. */
#define MICROPY_PY_UCTYPES                (1)
#define MICROPY_PY_STRUCT                 (1)
#define MICROPY_PY_BINASCII               (1)
#define MICROPY_PY_BINASCII_CRC32         (1)
#define MICROPY_PY_HASHLIB                (1)
#define MICROPY_PY_HASHLIB_SHA256         (1)
#define MICROPY_PY_HASHLIB_SHA1           (0)
#define MICROPY_PY_HASHLIB_MD5            (0)
#define MICROPY_PY_DEFLATE                (1)
#define MICROPY_PY_JSON                   (1)
#define MICROPY_PY_RE                     (1)
#define MICROPY_PY_TIME                   (1)
#define MICROPY_PY_TIME_TIME_TIME_NS      (0)
#define MICROPY_PY_ERRNO                  (1)

/* 32-bit MPZ digits on every 64-bit arch (mpz.h picks them only for x86_64); mpy-tool is told the same. */
#define MPZ_DIG_SIZE                      (32)
#define MP_SSIZE_MAX                      (0x7fffffffffffffffL)
#define UINT_FMT                          "%lu"
#define INT_FMT                           "%ld"
typedef intptr_t mp_int_t;
typedef uintptr_t mp_uint_t;
typedef long mp_off_t;

#define MICROPY_HW_BOARD_NAME             "uefi"
#if defined(__x86_64__)
#define MICROPY_HW_MCU_NAME               "x86_64"
#elif defined(__aarch64__)
#define MICROPY_HW_MCU_NAME               "aarch64"
#elif defined(__riscv)
#define MICROPY_HW_MCU_NAME               "riscv64"
#elif defined(__loongarch__)
#define MICROPY_HW_MCU_NAME               "loongarch64"
#endif
/* No native NLR for LoongArch in MicroPython: use setjmp (setjmp_loongarch64.S). */
#if defined(__loongarch__)
#define MICROPY_NLR_SETJMP                (1)
#endif

/* Extra heap areas come from AllocatePages when the GC runs out (main.c). */
void *cb_alloc_heap(size_t bytes);
void cb_free_heap(void *area);
#define MP_PLAT_ALLOC_HEAP(size)          cb_alloc_heap(size)
#define MP_PLAT_FREE_HEAP(area)           cb_free_heap(area)

/* Ctrl-C: poll the console every so many bytecodes (cheap next to the interpreter loop). */
void cb_poll_interrupt(void);
#define MICROPY_VM_HOOK_COUNT             (20000)
#define MICROPY_VM_HOOK_INIT              static unsigned int vm_hook_divisor = MICROPY_VM_HOOK_COUNT;
#define MICROPY_VM_HOOK_POLL              if (--vm_hook_divisor == 0) { \
        vm_hook_divisor = MICROPY_VM_HOOK_COUNT; \
        cb_poll_interrupt(); \
}
#define MICROPY_VM_HOOK_LOOP              MICROPY_VM_HOOK_POLL
#define MICROPY_VM_HOOK_RETURN            MICROPY_VM_HOOK_POLL
#define MICROPY_ENABLE_SCHEDULER          (1)

/* The network has no interrupts: whenever MicroPython waits (a socket in modlwip.c polls), the NIC's
 * receive ring and lwIP's timers are serviced (modnet.c). */
void cb_net_poll(void);
#define MICROPY_INTERNAL_EVENT_HOOK       cb_net_poll()

#define MP_STATE_PORT MP_STATE_VM
