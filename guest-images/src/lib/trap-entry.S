/* trap.S - exception stubs, the ring-3 trampoline and ring-3 snippets of trap.c. */
#include "trap.h"

        .text
.macro ISR_NOERR n
isr\n:  pushq $0
        pushq $\n
        jmp trap_common
.endm
.macro ISR_ERR n
isr\n:  pushq $\n
        jmp trap_common
.endm
        .irp n, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31,128
        ISR_NOERR \n
        .endr
        .irp n, 8,10,11,12,13,14,17,21,29,30
        ISR_ERR \n
        .endr

trap_common:
        pushq %rax
        pushq %rbx
        pushq %rcx
        pushq %rdx
        pushq %rsi
        pushq %rdi
        pushq %rbp
        pushq %r8
        pushq %r9
        pushq %r10
        pushq %r11
        pushq %r12
        pushq %r13
        pushq %r14
        pushq %r15
        movq %rsp, %rdi
        cld
        call trap_dispatch
        popq %r15
        popq %r14
        popq %r13
        popq %r12
        popq %r11
        popq %r10
        popq %r9
        popq %r8
        popq %rbp
        popq %rdi
        popq %rsi
        popq %rdx
        popq %rcx
        popq %rbx
        popq %rax
        addq $16, %rsp
        iretq

        .section .rodata
        .balign 8
        .globl trap_isr_table
trap_isr_table:
        .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        .quad isr\n
        .endr
        .quad isr128
        .text

/* u64 trap_enter_user(u64 rip, u64 rsp, u64 arg, u64 arg2): iretq to ring 3 with
 * RDI = arg, RSI = arg2. Comes back through trap_user_return with RAX = result. */
        .globl trap_enter_user, trap_user_return
trap_enter_user:
        pushq %rbx
        pushq %rbp
        pushq %r12
        pushq %r13
        pushq %r14
        pushq %r15
        movq %rsp, trap_kernel_saved_rsp
        pushq $(TRAP_USER_DS | 3)
        pushq %rsi
        pushq $0x2
        pushq $(TRAP_USER_CS | 3)
        pushq %rdi
        movq %rdx, %rdi
        movq %rcx, %rsi
        xorl %eax, %eax
        iretq
trap_user_return:
        popq %r15
        popq %r14
        popq %r13
        popq %r12
        popq %rbp
        popq %rbx
        ret

/* Ring-3 snippets, position independent: they run from the user window alias.
 * Each ends with int $0x80 with RDI = status, RSI = value. */
        .section .text.user, "ax", @progbits
        .balign 4096
        .globl trap_user_text
trap_user_text:
        .globl trap_u_read
trap_u_read:                            /* RDI = address */
        movq (%rdi), %rsi
        movl $1, %edi
        int $0x80
        .globl trap_u_write
trap_u_write:                           /* RDI = address, RSI = value */
        movq %rsi, (%rdi)
        movl $1, %edi
        int $0x80
        .globl trap_u_exec
trap_u_exec:                            /* RDI = address holding int $0x80 */
        movl $1, %eax
        jmp *%rdi
        .balign 4096

        .section .bss.user, "aw", @nobits
        .balign 4096
        .globl trap_user_stack
trap_user_stack:
        .skip 4096

        .section .note.GNU-stack, "", @progbits
