/* An SMP AP start-up trampoline in the style of Linux's trampoline_64.S,
 * run by test/cpu/realmode.test.ts. It is loaded at physical 0x8000 and
 * entered as after a STARTUP IPI with vector 8: real mode, CS = 0x0800,
 * IP = 0. It checks real-mode segment arithmetic on the way, then enters
 * protected mode (lgdt with a 16-bit operand size, CR0.PE, a far jump into
 * 32-bit code) and long mode (CR4.PAE, CR3, EFER.LME, CR0.PG, a far jump to
 * a 64-bit code segment), and halts in 64-bit mode.
 *
 * Regenerate the bytes in realmode.test.ts with:
 *   gcc -c -o t.o trampoline.S && objcopy -O binary -j .text t.o t.bin && xxd -i t.bin
 */
#define BASE 0x8000
#define PML4 0x1000          /* the identity map built by test/support/longmode.ts */
#define ABS(x) (BASE + (x) - start)

        .text
        .code16
start:
        cli
        mov     %cs, %ax                /* 0x0800: DS = CS, base 0x8000 */
        mov     %ax, %ds
        mov     $0x2000, %ax            /* SS base 0x20000 */
        mov     %ax, %ss
        xor     %sp, %sp                /* SP 0: the push wraps to SS:0xfffe */
        pushw   $0x1234                 /* -> linear 0x2fffe */
        mov     $0x3000, %bx            /* ES base 0x30000 */
        mov     %bx, %es
        movw    $0xbeef, %es:0x10       /* -> linear 0x30010 */
        mov     $0xffff, %bx
        movb    $0x5a, %es:2(%bx)       /* offset 0xffff + 2 wraps to 1 -> linear 0x30001 */
        movw    data16 - start, %si     /* a DS-relative load: 0x8000 + offset */

        lgdtw   gdt_desc - start        /* 16-bit operand size: a 24-bit base */
        mov     %cr0, %eax
        or      $1, %eax                /* PE */
        mov     %eax, %cr0
        ljmpl   $0x08, $ABS(pm32)       /* 66 EA: into the 32-bit code segment */

        .code32
pm32:
        mov     $0x10, %ax
        mov     %ax, %ds
        mov     %ax, %es
        mov     %ax, %ss
        mov     $0x7000, %esp
        mov     %cr4, %eax
        or      $0x20, %eax             /* PAE */
        mov     %eax, %cr4
        mov     $PML4, %eax
        mov     %eax, %cr3
        mov     $0xc0000080, %ecx       /* EFER */
        rdmsr
        or      $0x100, %eax            /* LME */
        wrmsr
        mov     %cr0, %eax
        or      $0x80000000, %eax       /* PG: activates long mode (LMA) */
        mov     %eax, %cr0
        ljmp    $0x18, $ABS(lm64)       /* into the 64-bit code segment */

        .code64
lm64:
        pushq   $0x42                   /* a 64-bit push on the 32-bit stack pointer */
        movabs  $0x1122334455667788, %rax
        lea     data16(%rip), %rdx      /* RIP-relative: ABS(data16) */
        hlt

        .balign 8
gdt:
        .quad   0
        .quad   0x00cf9a000000ffff      /* 0x08: 32-bit code */
        .quad   0x00cf92000000ffff      /* 0x10: data */
        .quad   0x00af9a000000ffff      /* 0x18: 64-bit code */
gdt_end:
gdt_desc:
        .word   gdt_end - gdt - 1
        .long   0xaa000000 + ABS(gdt)   /* the top byte is ignored by a 16-bit lgdt */
data16:
        .word   0x6789
