/* The few UEFI 2.10 structures the C side touches. Everything else is reached from Python via _uefi.call. */
#ifndef CB_EFI_H
#define CB_EFI_H
#include <stdint.h>
#include <stddef.h>

#if defined(__x86_64__)
#define EFIAPI __attribute__((ms_abi))
#else
#define EFIAPI
#endif

typedef uint64_t EFI_STATUS;
typedef void *EFI_HANDLE;
typedef void *EFI_EVENT;
typedef uint16_t CHAR16;

#define EFI_SUCCESS 0
#define EFI_ERROR_BIT (1ULL << 63)
#define EFI_NOT_READY (EFI_ERROR_BIT | 6)

typedef struct { uint64_t Signature; uint32_t Revision, HeaderSize, CRC32, Reserved; } EFI_TABLE_HEADER;
typedef struct { uint16_t ScanCode; CHAR16 UnicodeChar; } EFI_INPUT_KEY;

typedef struct EFI_SIMPLE_TEXT_INPUT_PROTOCOL {
    EFI_STATUS (EFIAPI *Reset)(struct EFI_SIMPLE_TEXT_INPUT_PROTOCOL *, uint8_t);
    EFI_STATUS (EFIAPI *ReadKeyStroke)(struct EFI_SIMPLE_TEXT_INPUT_PROTOCOL *, EFI_INPUT_KEY *);
    EFI_EVENT WaitForKey;
} EFI_SIMPLE_TEXT_INPUT_PROTOCOL;

typedef struct EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL {
    void *Reset;
    EFI_STATUS (EFIAPI *OutputString)(struct EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL *, CHAR16 *);
    void *TestString;
    EFI_STATUS (EFIAPI *QueryMode)(struct EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL *, uint64_t, uint64_t *, uint64_t *);
    EFI_STATUS (EFIAPI *SetMode)(struct EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL *, uint64_t);
    void *SetAttribute, *ClearScreen, *SetCursorPosition, *EnableCursor;
    struct { int32_t MaxMode, Mode, Attribute, CursorColumn, CursorRow; uint8_t CursorVisible; } *Mode;
} EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL;

typedef struct {
    EFI_TABLE_HEADER Hdr;
    void *RaiseTPL, *RestoreTPL;
    EFI_STATUS (EFIAPI *AllocatePages)(uint32_t Type, uint32_t MemoryType, uint64_t Pages, uint64_t *Memory);
    EFI_STATUS (EFIAPI *FreePages)(uint64_t Memory, uint64_t Pages);
    void *GetMemoryMap, *AllocatePool, *FreePool, *CreateEvent, *SetTimer;
    EFI_STATUS (EFIAPI *WaitForEvent)(uint64_t Count, EFI_EVENT *Events, uint64_t *Index);
    void *SignalEvent, *CloseEvent;
    EFI_STATUS (EFIAPI *CheckEvent)(EFI_EVENT Event);
    void *InstallProtocolInterface, *ReinstallProtocolInterface, *UninstallProtocolInterface, *HandleProtocol;
    void *Reserved, *RegisterProtocolNotify, *LocateHandle, *LocateDevicePath, *InstallConfigurationTable;
    void *LoadImage, *StartImage, *Exit, *UnloadImage, *ExitBootServices, *GetNextMonotonicCount;
    EFI_STATUS (EFIAPI *Stall)(uint64_t Microseconds);
    EFI_STATUS (EFIAPI *SetWatchdogTimer)(uint64_t Timeout, uint64_t Code, uint64_t Size, CHAR16 *Data);
    void *ConnectController, *DisconnectController, *OpenProtocol, *CloseProtocol, *OpenProtocolInformation;
    void *ProtocolsPerHandle, *LocateHandleBuffer;
    EFI_STATUS (EFIAPI *LocateProtocol)(const void *Protocol, void *Registration, void **Interface);
} EFI_BOOT_SERVICES;

typedef struct EFI_SERIAL_IO_PROTOCOL {
    uint32_t Revision;
    void *Reset, *SetAttributes, *SetControl, *GetControl;
    EFI_STATUS (EFIAPI *Write)(struct EFI_SERIAL_IO_PROTOCOL *, uint64_t *BufferSize, const void *Buffer);
} EFI_SERIAL_IO_PROTOCOL;

typedef struct {
    EFI_TABLE_HEADER Hdr;
    CHAR16 *FirmwareVendor;
    uint32_t FirmwareRevision;
    EFI_HANDLE ConsoleInHandle;
    EFI_SIMPLE_TEXT_INPUT_PROTOCOL *ConIn;
    EFI_HANDLE ConsoleOutHandle;
    EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL *ConOut;
    EFI_HANDLE StandardErrorHandle;
    EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL *StdErr;
    void *RuntimeServices;
    EFI_BOOT_SERVICES *BootServices;
    uint64_t NumberOfTableEntries;
    void *ConfigurationTable;
} EFI_SYSTEM_TABLE;

#define EFI_ALLOCATE_ANY_PAGES 0
#define EFI_LOADER_DATA 2

/* Set by efi_main before anything else runs. */
extern EFI_SYSTEM_TABLE *cb_st;
extern EFI_HANDLE cb_image;

#endif
