/* Start-up for the MPS2 boards: the vector table at address 0 and a reset handler that
   gives C what it expects (.data copied from flash, .bss zeroed, the FPU on where the
   build uses it) before it calls main and reports main's result to the host. */
#include <stdint.h>

#include "semihost.h"

/* Defined by board.ld. */
extern uint32_t __data_load__[], __data_start__[], __data_end__[];
extern uint32_t __bss_start__[], __bss_end__[], __stack_top__[];

int main(void);

void Reset_Handler(void)
{
    const uint32_t *from = __data_load__;
    for (uint32_t *to = __data_start__; to < __data_end__;)
        *to++ = *from++;
    for (uint32_t *to = __bss_start__; to < __bss_end__;)
        *to++ = 0;
#if defined(__ARM_FP)
    /* CP10 and CP11 full access in CPACR: until then every FPU instruction faults. */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    quiltc_semihost_exit(main());
}

/* A fault ends the run with a message instead of hanging the emulator until its timeout. */
static void Fault_Handler(void)
{
    quiltc_semihost_write0("fault\n");
    quiltc_semihost_exit(1);
}

__attribute__((section(".vectors"), used)) static void (*const vector_table[16])(void) = {
    (void (*)(void))__stack_top__, /* initial stack pointer */
    Reset_Handler,
    Fault_Handler, /* NMI */
    Fault_Handler, /* HardFault */
    Fault_Handler, /* MemManage */
    Fault_Handler, /* BusFault */
    Fault_Handler, /* UsageFault */
    0, 0, 0, 0,
    Fault_Handler, /* SVCall */
    Fault_Handler, /* DebugMonitor */
    0,
    Fault_Handler, /* PendSV */
    Fault_Handler, /* SysTick */
};
