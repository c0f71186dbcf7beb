/* entry.S - cpu-selftest's exception stubs, syscall entry and ring-3 trampoline. */
#include "selftest.h"

        .text

/* Exception/interrupt stubs: push a dummy error code where the CPU pushes none,
 * then the vector, and join the common path. */
.macro ISR_NOERR n
        .globl isr\n
isr\n:  pushq $0
        pushq $\n
        jmp isr_common
.endm
.macro ISR_ERR n
        .globl isr\n
isr\n:  pushq $\n
        jmp isr_common
.endm

ISR_NOERR 0
ISR_NOERR 1
ISR_NOERR 2
ISR_NOERR 3
ISR_NOERR 4
ISR_NOERR 5
ISR_NOERR 6
ISR_NOERR 7
ISR_ERR   8
ISR_NOERR 9
ISR_ERR   10
ISR_ERR   11
ISR_ERR   12
ISR_ERR   13
ISR_ERR   14
ISR_NOERR 15
ISR_NOERR 16
ISR_ERR   17
ISR_NOERR 18
ISR_NOERR 19
ISR_NOERR 20
ISR_ERR   21
ISR_NOERR 22
ISR_NOERR 23
ISR_NOERR 24
ISR_NOERR 25
ISR_NOERR 26
ISR_NOERR 27
ISR_NOERR 28
ISR_ERR   29
ISR_ERR   30
ISR_NOERR 31
ISR_NOERR 128
ISR_NOERR 130

/* Stack on entry: vector, error code, RIP, CS, RFLAGS, RSP, SS. If we came from
 * ring 3, swap to the kernel GS base; on the way out, swap back if we return to
 * ring 3 (the C handler may have redirected the frame to ring 0). */
isr_common:
        testb $3, 24(%rsp)
        jz 1f
        swapgs
1:      pushq %rax
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
        call exc_handler          /* 22 quadwords pushed: RSP is 16-byte aligned */
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
        testb $3, 24(%rsp)
        jz 2f
        swapgs
2:      addq $16, %rsp
        iretq

        .section .rodata
        .balign 8
        .globl isr_table
isr_table:
        .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        .quad isr\n
        .endr
        .text

/* syscall entry (LSTAR). RCX = user RIP, R11 = user RFLAGS, RFLAGS masked by SFMASK.
 * RAX = number, RDI = argument. Number 0 leaves user mode for good: it returns RDI
 * from run_user(). Other numbers call
 *   u64 syscall_c(u64 nr, u64 arg, u64 user_rip, u64 user_rflags, u64 entry_rflags)
 * and sysretq back to ring 3 with its result in RAX. */
        .globl syscall_entry
syscall_entry:
        swapgs
        movq %rsp, %gs:PERCPU_USER_RSP
        movq %gs:PERCPU_KERNEL_RSP, %rsp
        pushfq                          /* RFLAGS as syscall left them */
        popq %r8
        testq %rax, %rax
        jz syscall_leave_user
        pushq %gs:PERCPU_USER_RSP
        pushq %rcx
        pushq %r11
        pushq %rbp                      /* 4 pushes: RSP stays 16-byte aligned */
        movq %rdi, %rsi
        movq %rax, %rdi
        movq %rcx, %rdx
        movq %r11, %rcx
        call syscall_c
        popq %rbp
        popq %r11
        popq %rcx
        popq %rsp                       /* user RSP */
        swapgs
        sysretq

syscall_leave_user:
        movq %rdi, %rax
        movq kernel_saved_rsp, %rsp
        jmp user_return

/* u64 run_user(u64 rip, u64 rsp, u64 rflags, u64 arg): iretq to ring 3 at rip with
 * RDI = arg. Returns when ring 3 makes syscall 0 (result = its RDI) or when the
 * exception handler redirects a ring-3 fault to user_return (result in RAX). */
        .globl run_user, user_return
run_user:
        pushq %rbx
        pushq %rbp
        pushq %r12
        pushq %r13
        pushq %r14
        pushq %r15
        movq %rsp, kernel_saved_rsp
        pushq $(USER_DS | 3)
        pushq %rsi
        pushq %rdx
        pushq $(USER_CS | 3)
        pushq %rdi
        movq %rcx, %rdi
        xorl %eax, %eax
        xorl %ebx, %ebx
        xorl %ecx, %ecx
        xorl %edx, %edx
        xorl %esi, %esi
        xorl %ebp, %ebp
        swapgs
        iretq
user_return:
        popq %r15
        popq %r14
        popq %r13
        popq %r12
        popq %rbp
        popq %rbx
        ret

        .section .note.GNU-stack, "", @progbits
