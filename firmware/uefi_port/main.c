/* efi_main: banner, GC heap from AllocatePages, MicroPython VM, the frozen boot module, then the REPL. */
#include <stdio.h>
#include <string.h>
#include "py/compile.h"
#include "py/builtin.h"
#include "py/gc.h"
#include "py/lexer.h"
#include "py/mperrno.h"
#include "py/runtime.h"
#include "py/stackctrl.h"
#include "shared/runtime/pyexec.h"
#include "efi.h"

EFI_SYSTEM_TABLE *cb_st;
EFI_HANDLE cb_image;

#define MIB (1024UL * 1024UL)
/* The VM runs on a stack of its own (stack.c); the limit leaves room for firmware calls and interrupts. */
#define CB_STACK_SIZE (1024 * 1024)
#define CB_STACK_LIMIT (CB_STACK_SIZE - 32 * 1024)

void cb_call_on_stack(void (*fn)(void), void *top);

static size_t heap_total;
/* Heap areas handed to the GC, remembered so that FreePages gets the page count back. */
static struct { void *addr; size_t bytes; } areas[64];

static void *alloc_pages(size_t bytes) {
    uint64_t addr = 0;
    if (cb_st->BootServices->AllocatePages(EFI_ALLOCATE_ANY_PAGES, EFI_LOADER_DATA, (bytes + 4095) / 4096, &addr)) {
        return NULL;
    }
    return (void *)(uintptr_t)addr;
}

void *cb_alloc_heap(size_t bytes) {
    for (size_t i = 0; i < sizeof(areas) / sizeof(areas[0]); i++) {
        if (!areas[i].addr) {
            void *p = alloc_pages(bytes);
            if (p) {
                areas[i].addr = p;
                areas[i].bytes = bytes;
                heap_total += bytes;
            }
            return p;
        }
    }
    return NULL;
}

void cb_free_heap(void *area) {
    for (size_t i = 0; i < sizeof(areas) / sizeof(areas[0]); i++) {
        if (areas[i].addr == area) {
            cb_st->BootServices->FreePages((uintptr_t)area, (areas[i].bytes + 4095) / 4096);
            heap_total -= areas[i].bytes;
            areas[i].addr = NULL;
            return;
        }
    }
}

/* How much more the GC may add, on demand, through MP_PLAT_ALLOC_HEAP. */
size_t gc_get_max_new_split(void) {
    size_t cap = (size_t)CLOUDBOOT_HEAP_MAX_MB * MIB;
    return heap_total < cap ? cap - heap_total : 0;
}

/* __builtin_unwind_init() makes the compiler spill every callee-saved register into this frame, so the
 * conservative scan from a deeper frame up to the stack top sees them on every arch (as Boehm GC does). */
static __attribute__((noinline)) uintptr_t deeper_frame(void) {
    return (uintptr_t)__builtin_frame_address(0);
}

static __attribute__((noinline)) void gc_collect_regs_and_stack(void) {
    __builtin_unwind_init();
    uintptr_t sp = deeper_frame();
    gc_collect_root((void **)sp, ((uintptr_t)MP_STATE_THREAD(stack_top) - sp) / sizeof(uintptr_t));
}

void gc_collect(void) {
    gc_collect_start();
    gc_collect_regs_and_stack();
    gc_collect_end();
}

static void console_init(void) {
    /* The widest text mode keeps the firmware's terminal from wrapping long lines. */
    EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL *out = cb_st->ConOut;
    int32_t best = -1;
    uint64_t best_cols = 0, cols, rows;
    for (int32_t m = 0; m < out->Mode->MaxMode; m++) {
        if (out->QueryMode(out, m, &cols, &rows) == EFI_SUCCESS && cols > best_cols) {
            best = m;
            best_cols = cols;
        }
    }
    if (best >= 0 && best != out->Mode->Mode) {
        out->SetMode(out, best);
    }
}

__attribute__((noreturn)) static void die(const char *msg) {
    printf("cloud-boot: FATAL: %s\n", msg);
    EFI_STATUS (EFIAPI *exit_fn)(EFI_HANDLE, EFI_STATUS, uint64_t, CHAR16 *) = cb_st->BootServices->Exit;
    exit_fn(cb_image, EFI_ERROR_BIT | 21 /* EFI_ABORTED */, 0, NULL);
    for (;;) {
    }
}

void nlr_jump_fail(void *val) {
    die("uncaught exception outside any handler (nlr_jump_fail)");
}

void abort(void) {
    die("abort()");
}

static int vm_start(void *heap, size_t heap_size, void *stack_top) {
    mp_stack_set_top(stack_top);
    mp_stack_set_limit(CB_STACK_LIMIT);
    gc_init(heap, (char *)heap + heap_size);
    mp_init();
    return 0;
}

static void *heap;
static size_t heap_size;

/* Everything MicroPython does happens here, on the big stack. */
static void vm_main(void) {
    int stack_top;
    vm_start(heap, heap_size, &stack_top);
    pyexec_frozen_module("_boot.py", false);
    for (;;) {
        int ret = pyexec_mode_kind == PYEXEC_MODE_RAW_REPL ? pyexec_raw_repl() : pyexec_friendly_repl();
        if (ret & PYEXEC_FORCED_EXIT) {
            /* Ctrl-D in the friendly REPL: soft reset keeps the heap pages and restarts the VM. */
            gc_sweep_all();
            mp_deinit();
            vm_start(heap, heap_size, &stack_top);
            printf("MPY: soft reboot\n");
        }
    }
}

EFI_STATUS EFIAPI efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *st) {
    cb_st = st;
    cb_image = image;
    /* The boot manager arms a 5-minute watchdog for every boot option; a REPL session may be longer. */
    st->BootServices->SetWatchdogTimer(0, 0, 0, NULL);
    console_init();
    printf("cloud-boot firmware %s (MicroPython %s) %s\n", CLOUDBOOT_VERSION, MICROPY_VERSION_STRING,
        MICROPY_HW_MCU_NAME);

    char *stack = alloc_pages(CB_STACK_SIZE);
    heap_size = (size_t)CLOUDBOOT_HEAP_MB * MIB;
    while (heap_size >= 4 * MIB && !(heap = cb_alloc_heap(heap_size))) {
        heap_size /= 2; /* small VMs: take what there is, the GC adds areas later if it can */
    }
    if (!heap || !stack) {
        die("cannot allocate the GC heap (4 MiB at least) and a 1 MiB stack with AllocatePages");
    }
    cb_call_on_stack(vm_main, stack + CB_STACK_SIZE);
    return EFI_SUCCESS;
}

mp_lexer_t *mp_lexer_new_from_file(qstr filename) {
    mp_raise_OSError(MP_ENOENT); /* no filesystem: code arrives frozen or through the REPL */
}

mp_import_stat_t mp_import_stat(const char *path) {
    return MP_IMPORT_STAT_NO_EXIST;
}

mp_obj_t mp_builtin_open(size_t n_args, const mp_obj_t *args, mp_map_t *kwargs) {
    mp_raise_msg(&mp_type_OSError, MP_ERROR_TEXT("no filesystem in the firmware: read disks through diskfs"));
}
MP_DEFINE_CONST_FUN_OBJ_KW(mp_builtin_open_obj, 1, mp_builtin_open);
