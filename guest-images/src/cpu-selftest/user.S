/* user.S - ring-3 code and data of cpu-selftest. The text and data sit in their own
 * 4 KiB pages, which the kernel maps with U/S = 1 (text read-only, data NX).
 * Every snippet starts with RDI = the argument passed to run_user(); the label
 * NAME_at marks the instruction expected to fault. If it does not fault, the snippet
 * leaves with syscall 0 and the result USER_NO_FAULT. */
#include "selftest.h"

#define USER_NO_FAULT 0xdead

.macro USER_EXIT_WITH code
        movl $\code, %edi
        xorl %eax, %eax
        syscall
.endm

.macro SNIPPET name
        .globl \name, \name\()_at
\name:
\name\()_at:
.endm

        .section .text.user, "ax", @progbits
        .balign 4096
        .globl user_text_start
user_text_start:

/* Privileged or IOPL-sensitive instructions: each must raise #GP(0). */
SNIPPET u_hlt
        hlt
        USER_EXIT_WITH USER_NO_FAULT
SNIPPET u_cli
        cli
        USER_EXIT_WITH USER_NO_FAULT
SNIPPET u_mov_cr0
        movq %cr0, %rax
        USER_EXIT_WITH USER_NO_FAULT
SNIPPET u_rdmsr
        movl $0xC0000080, %ecx
        .globl u_rdmsr_insn
u_rdmsr_insn:
        rdmsr
        USER_EXIT_WITH USER_NO_FAULT
SNIPPET u_lgdt
        lgdt (%rsp)
        USER_EXIT_WITH USER_NO_FAULT
SNIPPET u_out
        outb %al, $0x80
        USER_EXIT_WITH USER_NO_FAULT
SNIPPET u_in
        movl $0x3fd, %edx
        .globl u_in_insn
u_in_insn:
        inb %dx, %al
        USER_EXIT_WITH USER_NO_FAULT
SNIPPET u_rdtsc
        rdtsc
        USER_EXIT_WITH USER_NO_FAULT
SNIPPET u_int82
        int $0x82
        USER_EXIT_WITH USER_NO_FAULT

/* Memory accesses at the address in RDI. */
SNIPPET u_load
        movq (%rdi), %rax
        USER_EXIT_WITH USER_NO_FAULT
SNIPPET u_store
        movq $1, (%rdi)
        USER_EXIT_WITH USER_NO_FAULT
SNIPPET u_jump
        jmp *%rdi

/* int $0x80 through a DPL-3 interrupt gate: the handler adds 1000 to RAX and irets
 * back here; leave with the new RAX. */
        .globl u_int80, u_int80_ret
u_int80:
        movl $5, %eax
        int $0x80
u_int80_ret:
        movq %rax, %rdi
        xorl %eax, %eax
        syscall

/* syscall 1 with DF set: the kernel returns arg + 1 through sysretq. Records what
 * ring 3 sees afterwards in user_results: RAX, RFLAGS, CS, SS, RCX, R11. */
        .globl u_syscall, u_syscall_ret
u_syscall:
        std
        movl $1, %eax
        movl $41, %edi
        syscall
u_syscall_ret:
        pushfq
        popq %rsi
        cld
        movq %rax, user_results + 0
        movq %rsi, user_results + 8
        xorl %eax, %eax
        movw %cs, %ax
        movq %rax, user_results + 16
        movw %ss, %ax
        movq %rax, user_results + 24
        movq %rcx, user_results + 32
        movq %r11, user_results + 40
        USER_EXIT_WITH 0x600d

/* IN from ring 3 with IOPL = 3 is allowed (reads the UART line status register). */
        .globl u_in_iopl3
u_in_iopl3:
        movl $0x3fd, %edx
        inb %dx, %al
        USER_EXIT_WITH 0x600d

        .balign 4096
        .globl user_text_end
user_text_end:

        .section .data.user, "aw", @progbits
        .balign 4096
        .globl user_data_start, user_results
user_data_start:
user_results:
        .skip 64
        .balign 4096
        .globl user_data_end
user_data_end:

        .section .bss.user, "aw", @nobits
        .balign 4096
        .globl user_stack, user_stack_top
user_stack:
        .skip 8192
user_stack_top:

        .section .note.GNU-stack, "", @progbits
