/* exit.c - leave through the isa-debug-exit device at port 0xf4. */
#include "libc.h"
#include "x86.h"

int exit_port_width = 1;

void exit(int code)
{
    if (exit_port_width == 4)
        __asm__ volatile("outl %0, %1" : : "a"((uint32_t)code), "Nd"((uint16_t)0xf4));
    else if (exit_port_width == 2)
        __asm__ volatile("outw %0, %1" : : "a"((uint16_t)code), "Nd"((uint16_t)0xf4));
    else
        outb(0xf4, (uint8_t)code);
    for (;;)
        __asm__ volatile("cli; hlt");
}
