/* Semihosting calls (SYS_WRITE0, SYS_EXIT) through `bkpt 0xAB`, with no C library. */
#include "semihost.h"

#define SYS_WRITE0 0x04
#define SYS_EXIT 0x18
/* SYS_EXIT's reason codes: only ApplicationExit means success to the host. */
#define ADP_STOPPED_APPLICATION_EXIT 0x20026
#define ADP_STOPPED_RUN_TIME_ERROR 0x20023

static int semihost_call(int operation, const void *argument)
{
    register int r0 __asm__("r0") = operation;
    register const void *r1 __asm__("r1") = argument;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void quiltc_semihost_write0(const char *text)
{
    semihost_call(SYS_WRITE0, text);
}

void quiltc_semihost_write_int(int value)
{
    char digits[12];
    char *cursor = digits + sizeof digits;
    unsigned magnitude = value < 0 ? 0u - (unsigned)value : (unsigned)value;
    *--cursor = '\0';
    do {
        *--cursor = (char)('0' + magnitude % 10u);
        magnitude /= 10u;
    } while (magnitude != 0u);
    if (value < 0)
        *--cursor = '-';
    quiltc_semihost_write0(cursor);
}

void quiltc_semihost_exit(int status)
{
    /* On 32-bit ARM the reason code itself is the argument, not a pointer to a block. */
    int reason = status == 0 ? ADP_STOPPED_APPLICATION_EXIT : ADP_STOPPED_RUN_TIME_ERROR;
    semihost_call(SYS_EXIT, (const void *)reason);
    for (;;) {
    }
}
