/*
 * boot32.S - boot stub for the 32-bit guest images (pt-torture-32, pt-torture-pae).
 *
 * Entered by a multiboot (v1) loader in 32-bit protected mode, paging off, with
 * EAX = 0x2BADB002 and EBX = physical address of the multiboot info structure. It
 * zeroes .bss, loads its own flat GDT (the loader's may be gone), sets a stack and calls
 *     void kmain(uint32_t magic, uint32_t mbi);
 * in 32-bit protected mode with paging still off: each image builds its own 2-level or
 * PAE tables. If kmain returns, the stub writes 0x11 (fail) to the debug-exit port 0xf4.
 */

#define MB_MAGIC   0x1BADB002
#define MB_FLAGS   0x00000003          /* bit 0: page-align modules, bit 1: memory info */
#define BOOT_STACK_SIZE 0x10000        /* 64 KiB */

        .section .multiboot, "a"
        .balign 4
multiboot_header:
        .long MB_MAGIC
        .long MB_FLAGS
        .long -(MB_MAGIC + MB_FLAGS)

        .section .text.boot, "ax"
        .code32
        .globl _start
_start:
        cli
        cld
        movl %eax, boot_mb_magic
        movl %ebx, boot_mb_info

        movl $__bss_start, %edi
        movl $__bss_end, %ecx
        subl %edi, %ecx
        shrl $2, %ecx
        xorl %eax, %eax
        rep stosl

        lgdt boot32_gdt_ptr
        ljmp $0x08, $1f
1:      movl $0x10, %eax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %ss
        movw %ax, %fs
        movw %ax, %gs
        movl $boot_stack_top, %esp
        xorl %ebp, %ebp

        pushl boot_mb_info
        pushl boot_mb_magic
        call kmain

        movb $0x11, %al
        outb %al, $0xf4
2:      cli
        hlt
        jmp 2b

        .section .data
        .balign 16
boot32_gdt:
        .quad 0x0000000000000000        /* 0x00: null */
        .quad 0x00CF9A000000FFFF        /* 0x08: 32-bit code, DPL 0, flat */
        .quad 0x00CF92000000FFFF        /* 0x10: data, DPL 0, flat */
boot32_gdt_end:
        .balign 4
        .word 0
boot32_gdt_ptr:
        .word boot32_gdt_end - boot32_gdt - 1
        .long boot32_gdt

        .balign 4
        .globl boot_mb_magic, boot_mb_info
boot_mb_magic:  .long 0
boot_mb_info:   .long 0

        .section .bss
        .balign 4096
        .globl boot_stack_top
boot_stack:     .skip BOOT_STACK_SIZE
boot_stack_top:

        .section .note.GNU-stack, "", @progbits
