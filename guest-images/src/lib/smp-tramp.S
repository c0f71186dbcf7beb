/*
 * smp-tramp.S - the AP start-up trampoline. smp_start_aps() copies the bytes between
 * smp_tramp_start and smp_tramp_end to SMP_TRAMP_BASE (0x8000) and fills in the
 * parameters at its end; a STARTUP IPI with vector 0x08 starts the AP in real mode at
 * CS = 0x0800, IP = 0. Real mode -> 32-bit protected mode (its own GDT) -> PAE, the
 * BSP's CR3, EFER.LME, CR0.PG -> 64-bit mode -> the kernel's C entry.
 */
#define TRAMP_BASE 0x8000
#define REL(x) (TRAMP_BASE + (x) - smp_tramp_start)

        .section .rodata
        .code16
        .globl smp_tramp_start, smp_tramp_end, smp_tramp_params
smp_tramp_start:
        cli
        cld
        movw %cs, %ax
        movw %ax, %ds
        lgdtl tramp_gdtr - smp_tramp_start
        movl %cr0, %eax
        orl $1, %eax
        movl %eax, %cr0
        ljmpl $0x08, $REL(tramp_pm32)

        .code32
tramp_pm32:
        movw $0x10, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %ss
        movl %cr4, %eax
        orl $0x20, %eax                         /* PAE */
        movl %eax, %cr4
        movl REL(tramp_cr3), %eax
        movl %eax, %cr3
        movl $0xC0000080, %ecx                  /* EFER.LME */
        rdmsr
        orl $0x100, %eax
        wrmsr
        movl %cr0, %eax
        orl $0x80000001, %eax                   /* PG */
        movl %eax, %cr0
        ljmp $0x18, $REL(tramp_lm64)

        .code64
tramp_lm64:
        movw $0x10, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %ss
        xorl %eax, %eax
        movw %ax, %fs
        movw %ax, %gs
        movq REL(tramp_stack), %rsp
        movq REL(tramp_arg), %rdi
        movq REL(tramp_entry), %rax
        xorl %ebp, %ebp
        callq *%rax
1:      cli
        hlt
        jmp 1b

        .balign 8
tramp_gdt:
        .quad 0
        .quad 0x00CF9A000000FFFF                /* 0x08: 32-bit code */
        .quad 0x00CF92000000FFFF                /* 0x10: data */
        .quad 0x00AF9A000000FFFF                /* 0x18: 64-bit code */
tramp_gdtr:
        .word tramp_gdtr - tramp_gdt - 1
        .long REL(tramp_gdt)
        .balign 8
smp_tramp_params:                               /* struct smp_tramp_params (smp.c) */
tramp_cr3:      .quad 0
tramp_stack:    .quad 0
tramp_entry:    .quad 0
tramp_arg:      .quad 0
smp_tramp_end:

        .section .note.GNU-stack, "", @progbits
