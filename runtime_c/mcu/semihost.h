/* Output and exit through ARM semihosting: the debugger (here QEMU) services a
   `bkpt 0xAB` trap, so a bare-metal program can print without a UART driver or libc. */
#ifndef QUILTC_SEMIHOST_H
#define QUILTC_SEMIHOST_H

/* Writes a NUL-terminated string to the host's console. */
void quiltc_semihost_write0(const char *text);

/* Writes a signed decimal integer (no newline). */
void quiltc_semihost_write_int(int value);

/* Stops the emulator: status 0 becomes QEMU's exit status 0, anything else status 1. */
void quiltc_semihost_exit(int status) __attribute__((noreturn));

#endif
