/*
 * boot.S - shared multiboot boot stub for every 64-bit shadow86 guest image.
 *
 * Entered by a multiboot (v1) loader in 32-bit protected mode, paging off, with
 * EAX = 0x2BADB002 and EBX = physical address of the multiboot info structure.
 * It zeroes .bss, builds identity page tables for the first 4 GiB with 2 MiB
 * pages (PML4 -> 1 PDPT -> 4 PDs, no 1 GiB pages), enables PAE, EFER.LME and
 * paging, loads a 64-bit GDT, far-jumps to 64-bit code and calls
 *     void kmain(uint32_t magic, uint32_t mbi);
 * If kmain returns, the stub writes 0x11 (fail) to the debug-exit port 0xf4.
 *
 * Exported for images that want to edit the boot tables: boot_pml4, boot_pdpt,
 * boot_pd (4 consecutive 4 KiB page directories), boot_stack_top, boot_gdt.
 */

#define MB_MAGIC   0x1BADB002
#define MB_FLAGS   0x00000003          /* bit 0: page-align modules, bit 1: memory info */

#define CR0_PE     0x00000001
#define CR0_PG     0x80000000
#define CR4_PAE    0x00000020
#define MSR_EFER   0xC0000080
#define EFER_LME   0x00000100

#define PTE_P      0x001
#define PTE_RW     0x002
#define PTE_PS     0x080

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
        /* Save the loader's registers in .data (not .bss: .bss is zeroed next). */
        movl %eax, boot_mb_magic
        movl %ebx, boot_mb_info

        /* Zero .bss (the linker script aligns both ends to 4 KiB). */
        movl $__bss_start, %edi
        movl $__bss_end, %ecx
        subl %edi, %ecx
        shrl $2, %ecx
        xorl %eax, %eax
        rep stosl

        movl $boot_stack_top, %esp

        /* PML4[0] -> PDPT */
        movl $boot_pdpt, %eax
        orl $(PTE_P | PTE_RW), %eax
        movl %eax, boot_pml4

        /* PDPT[0..3] -> the four page directories */
        movl $boot_pd, %eax
        orl $(PTE_P | PTE_RW), %eax
        movl $boot_pdpt, %edi
        movl $4, %ecx
1:      movl %eax, (%edi)
        addl $0x1000, %eax
        addl $8, %edi
        decl %ecx
        jnz 1b

        /* 4 x 512 PDEs: 2 MiB pages identity-mapping 0 .. 4 GiB (high dwords stay 0). */
        movl $boot_pd, %edi
        movl $(PTE_P | PTE_RW | PTE_PS), %eax
        movl $2048, %ecx
2:      movl %eax, (%edi)
        addl $0x200000, %eax
        addl $8, %edi
        decl %ecx
        jnz 2b

        /* CR4.PAE */
        movl %cr4, %eax
        orl $CR4_PAE, %eax
        movl %eax, %cr4

        /* CR3 = PML4 */
        movl $boot_pml4, %eax
        movl %eax, %cr3

        /* EFER.LME */
        movl $MSR_EFER, %ecx
        rdmsr
        orl $EFER_LME, %eax
        wrmsr

        /* CR0.PG (and PE, already set): enters IA-32e compatibility mode */
        movl %cr0, %eax
        orl $(CR0_PG | CR0_PE), %eax
        movl %eax, %cr0

        lgdt boot_gdt_ptr
        ljmp $0x08, $long_mode_entry

        .code64
long_mode_entry:
        movl $0x10, %eax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %ss
        xorl %eax, %eax
        movw %ax, %fs
        movw %ax, %gs
        movq $boot_stack_top, %rsp
        xorl %ebp, %ebp

        movl boot_mb_magic, %edi
        movl boot_mb_info, %esi
        call kmain

        /* kmain returned: report failure and halt forever. */
        movb $0x11, %al
        outb %al, $0xf4
3:      cli
        hlt
        jmp 3b

        .section .data
        .balign 16
        .globl boot_gdt
boot_gdt:
        .quad 0x0000000000000000        /* 0x00: null */
        .quad 0x00AF9A000000FFFF        /* 0x08: 64-bit code, DPL 0 */
        .quad 0x00CF92000000FFFF        /* 0x10: data, DPL 0 */
boot_gdt_end:

        .balign 8
        .globl boot_gdt_ptr
boot_gdt_ptr:
        .word boot_gdt_end - boot_gdt - 1
        .quad boot_gdt

        .balign 4
        .globl boot_mb_magic, boot_mb_info
boot_mb_magic:  .long 0
boot_mb_info:   .long 0

        .section .bss
        .balign 4096
        .globl boot_pml4, boot_pdpt, boot_pd, boot_stack_top
boot_pml4:      .skip 4096
boot_pdpt:      .skip 4096
boot_pd:        .skip 4 * 4096
boot_stack:     .skip BOOT_STACK_SIZE
boot_stack_top:

        .section .note.GNU-stack, "", @progbits
