/* HAL of the UEFI port: console over ConOut/ConIn, time from a calibrated CPU counter. */
#include <stdint.h>
#include "py/mpconfig.h"

#include "shared/runtime/interrupt_char.h"
mp_uint_t mp_hal_ticks_ms(void);
mp_uint_t mp_hal_ticks_us(void);
mp_uint_t mp_hal_ticks_cpu(void);
void mp_hal_delay_ms(mp_uint_t ms);
void mp_hal_delay_us(mp_uint_t us);
uint64_t mp_hal_time_ns(void);
