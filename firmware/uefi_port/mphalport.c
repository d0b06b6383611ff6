/* The only place that touches the platform for MicroPython's HAL: console and time. */
#include <string.h>
#include "py/mphal.h"
#include "py/mpconfig.h"
#include "py/runtime.h"
#include "py/stream.h"
#include "shared/runtime/pyexec.h"
#include "efi.h"

/* ---- console output: UTF-8 -> UCS-2 in chunks to ConOut (the serial console on QEMU) ----
 * ConOut only carries printable characters plus BS, TAB, LF and CR (EDK2's terminal turns the rest into
 * '?' on VT100/UTF-8 terminals), so other control characters go out in caret notation. ESC passes
 * unchanged for the terminals that understand it. */

/* The raw REPL is a machine protocol over the serial line: it goes straight to EFI_SERIAL_IO, byte for
 * byte (no '?' for EOT, no line wrapping at the terminal's column count). */
static EFI_SERIAL_IO_PROTOCOL *serial_io(void) {
    static const uint8_t guid[16] = { 0x6f, 0xcf, 0x25, 0xbb, 0xd4, 0xf1, 0xd2, 0x11,
                                      0x9a, 0x0c, 0x00, 0x90, 0x27, 0x3f, 0xc1, 0xfd };
    static EFI_SERIAL_IO_PROTOCOL *serial;
    static bool probed;
    if (!probed) {
        probed = true;
        if (cb_st->BootServices->LocateProtocol(guid, NULL, (void **)&serial) != EFI_SUCCESS) {
            serial = NULL;
        }
    }
    return serial;
}

static bool serial_write(const char *str, size_t len) {
    EFI_SERIAL_IO_PROTOCOL *serial = serial_io();
    while (serial && len) {
        uint64_t n = len;
        if (serial->Write(serial, &n, str) != EFI_SUCCESS && n == 0) {
            return false;
        }
        str += n;
        len -= n;
    }
    return serial != NULL;
}

mp_uint_t mp_hal_stdout_tx_strn(const char *str, size_t len) {
    if (pyexec_mode_kind == PYEXEC_MODE_RAW_REPL && serial_write(str, len)) {
        return len;
    }
    CHAR16 buf[129];
    size_t n = 0;
    const uint8_t *s = (const uint8_t *)str, *end = s + len;
    while (s < end) {
        uint32_t c = *s++;
        int more = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;
        if (more) {
            c &= 0x3F >> more;
            while (more-- && s < end) {
                c = (c << 6) | (*s++ & 0x3F);
            }
        }
        if (c < 0x20 && c != '\b' && c != '\t' && c != '\n' && c != '\r' && c != 0x1B) {
            buf[n++] = '^';
            c += 0x40;
        }
        buf[n++] = c > 0xFFFF ? 0xFFFD : (CHAR16)c; /* UCS-2 has no surrogates: replacement char */
        if (n >= 127) {
            buf[n] = 0;
            cb_st->ConOut->OutputString(cb_st->ConOut, buf);
            n = 0;
        }
    }
    if (n) {
        buf[n] = 0;
        cb_st->ConOut->OutputString(cb_st->ConOut, buf);
    }
    return len;
}

/* ---- console input: ConIn keys -> bytes (UTF-8, arrows as VT100 sequences for readline) ---- */

/* Bytes decoded from keys but not yet consumed: a key can become several bytes, and the Ctrl-C poll
 * below must keep the keys it reads that are not the interrupt character. */
static uint8_t pending[64];
static unsigned int head, tail;

static void queue(const char *bytes, int n) {
    while (n-- > 0 && tail - head < sizeof(pending)) {
        pending[tail++ % sizeof(pending)] = (uint8_t)*bytes++;
    }
}

/* One key from ConIn into the queue; false if no key was waiting. */
static bool read_key(void) {
    EFI_INPUT_KEY key;
    if (cb_st->ConIn->ReadKeyStroke(cb_st->ConIn, &key) != EFI_SUCCESS) {
        return false;
    }
    uint32_t c = key.UnicodeChar;
    if (c == 0) {
        static const char *const seq[] = {
            [1] = "\x1b[A", [2] = "\x1b[B", [3] = "\x1b[C", [4] = "\x1b[D", [5] = "\x1b[H", [6] = "\x1b[F",
            [8] = "\x1b[3~", [0x17] = "\x1b",
        };
        if (key.ScanCode < sizeof(seq) / sizeof(seq[0]) && seq[key.ScanCode]) {
            queue(seq[key.ScanCode], strlen(seq[key.ScanCode]));
        }
    } else if (c < 0x80) {
        char b = (char)c;
        queue(&b, 1);
    } else if (c < 0x800) {
        char u[2] = { (char)(0xC0 | (c >> 6)), (char)(0x80 | (c & 0x3F)) };
        queue(u, 2);
    } else {
        char u[3] = { (char)(0xE0 | (c >> 12)), (char)(0x80 | ((c >> 6) & 0x3F)), (char)(0x80 | (c & 0x3F)) };
        queue(u, 3);
    }
    return true;
}

int mp_hal_stdin_rx_chr(void) {
    while (head == tail) {
        if (!read_key()) {
            uint64_t index;
            cb_st->BootServices->WaitForEvent(1, &cb_st->ConIn->WaitForKey, &index);
        }
    }
    return pending[head++ % sizeof(pending)];
}

/* Called from the VM hook every few thousand bytecodes: Ctrl-C raises KeyboardInterrupt. */
void cb_poll_interrupt(void) {
    if (mp_interrupt_char < 0 || cb_st->BootServices->CheckEvent(cb_st->ConIn->WaitForKey) != EFI_SUCCESS) {
        return;
    }
    unsigned int before = tail;
    if (read_key() && tail == before + 1 && pending[before % sizeof(pending)] == mp_interrupt_char) {
        tail = before;
        mp_sched_keyboard_interrupt();
    }
}

uintptr_t mp_hal_stdio_poll(uintptr_t poll_flags) {
    uintptr_t ret = poll_flags & MP_STREAM_POLL_WR;
    if ((poll_flags & MP_STREAM_POLL_RD) &&
        (head != tail || cb_st->BootServices->CheckEvent(cb_st->ConIn->WaitForKey) == EFI_SUCCESS)) {
        ret |= MP_STREAM_POLL_RD;
    }
    return ret;
}

/* ---- time: a free-running CPU counter, calibrated once against BootServices->Stall ---- */

static inline uint64_t read_counter(void) {
    uint64_t v;
#if defined(__x86_64__)
    uint32_t lo, hi;
    __asm__ volatile ("rdtsc" : "=a" (lo), "=d" (hi));
    v = ((uint64_t)hi << 32) | lo;
#elif defined(__aarch64__)
    __asm__ volatile ("isb; mrs %0, cntvct_el0" : "=r" (v));
#elif defined(__riscv)
    __asm__ volatile ("rdtime %0" : "=r" (v));
#elif defined(__loongarch__)
    __asm__ volatile ("rdtime.d %0, $zero" : "=r" (v));
#else
#error "no cycle counter for this arch"
#endif
    return v;
}

static uint64_t counter_hz, counter_base;

static uint64_t counter_freq(void) {
    if (!counter_hz) {
        uint64_t t0 = read_counter();
        cb_st->BootServices->Stall(10000);
        uint64_t hz = (read_counter() - t0) * 100;
        counter_hz = hz ? hz : 1;
        counter_base = t0;
    }
    return counter_hz;
}

uint64_t mp_hal_time_ns(void) {
    uint64_t hz = counter_freq();
    uint64_t t = read_counter() - counter_base;
    return (t / hz) * 1000000000ULL + (t % hz) * 1000000000ULL / hz;
}

mp_uint_t mp_hal_ticks_ms(void) {
    return mp_hal_time_ns() / 1000000;
}

mp_uint_t mp_hal_ticks_us(void) {
    return mp_hal_time_ns() / 1000;
}

mp_uint_t mp_hal_ticks_cpu(void) {
    return read_counter();
}

void mp_hal_delay_us(mp_uint_t us) {
    cb_st->BootServices->Stall(us);
}

void mp_hal_delay_ms(mp_uint_t ms) {
    cb_st->BootServices->Stall((uint64_t)ms * 1000);
}
