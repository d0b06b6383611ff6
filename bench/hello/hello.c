/* The smallest useful EFI application: the bench's reference for "firmware start -> banner" cost.
 * Prints one line through ConOut and powers the machine off. Own types, no headers beyond the compiler's. */
#include <stdint.h>

#if defined(__x86_64__)
#define EFIAPI __attribute__((ms_abi))
#else
#define EFIAPI
#endif

typedef struct {
    void *Reset;
    uint64_t (EFIAPI *OutputString)(void *This, const uint16_t *s);
} TEXT_OUT;

typedef struct {
    char Hdr[24];
    void *Fns[10];
    void (EFIAPI *ResetSystem)(uint32_t Type, uint64_t Status, uint64_t Size, void *Data);
} RUNTIME;

typedef struct {
    char Hdr[24];
    void *FirmwareVendor;
    uint32_t FirmwareRevision;
    void *ConsoleInHandle, *ConIn, *ConsoleOutHandle;
    TEXT_OUT *ConOut;
    void *StandardErrorHandle, *StdErr;
    RUNTIME *RuntimeServices;
} SYSTEM_TABLE;

/* A pointer table in .data, read through a volatile index so it stays: the image needs base relocations
 * like the real firmware. */
static const uint16_t banner[] = u"HELLO-UEFI banner\r\n";
static const uint16_t other[] = u"unused\r\n";
const uint16_t *lines[] = { banner, other }; /* not static: it must stay a table in memory */
static volatile int which;

uint64_t EFIAPI efi_main(void *image, SYSTEM_TABLE *st) {
    (void)image;
    st->ConOut->OutputString(st->ConOut, lines[which]);
    st->RuntimeServices->ResetSystem(2 /* EfiResetShutdown */, 0, 0, 0);
    return 0;
}
