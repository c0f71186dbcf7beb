/* trap32-entry.S - exception stubs, the ring-3 trampoline and ring-3 snippets of trap32.c. */
#include "trap32.h"

        .text
.macro ISR_NOERR n
isr\n:  pushl $0
        pushl $\n
        jmp trap_common
.endm
.macro ISR_ERR n
isr\n:  pushl $\n
        jmp trap_common
.endm
        .irp n, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31,128
        ISR_NOERR \n
        .endr
        .irp n, 8,10,11,12,13,14,17,21,29,30
        ISR_ERR \n
        .endr

trap_common:
        pushal
        pushl %ds
        pushl %es
        movl $TRAP_KERNEL_DS, %eax
        movw %ax, %ds
        movw %ax, %es
        movl %esp, %eax
        pushl %eax
        cld
        call trap_dispatch
        addl $4, %esp
        testl %eax, %eax
        jnz 1f
        popl %es
        popl %ds
        popal
        addl $8, %esp
        iret
1:      /* leave ring 3 for good: back to trap_enter_user's caller */
        movl trap_kernel_saved_esp, %esp
        movl trap_user_result, %eax
        jmp trap_user_return

        .section .rodata
        .balign 4
        .globl trap_isr_table
trap_isr_table:
        .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        .long isr\n
        .endr
        .long isr128
        .text

/* u32 trap_enter_user(u32 eip, u32 esp, u32 arg, u32 arg2): iret to ring 3 with
 * EDI = arg, ESI = arg2. Comes back through trap_user_return with EAX = result. */
        .globl trap_enter_user, trap_user_return
trap_enter_user:
        pushl %ebp
        pushl %ebx
        pushl %esi
        pushl %edi
        movl %esp, trap_kernel_saved_esp
        movl 20(%esp), %eax             /* eip */
        movl 24(%esp), %ecx             /* esp */
        movl 28(%esp), %edi             /* arg */
        movl 32(%esp), %esi             /* arg2 */
        pushl $(TRAP_USER_DS | 3)
        pushl %ecx
        pushl $0x2
        pushl $(TRAP_USER_CS | 3)
        pushl %eax
        movl $(TRAP_USER_DS | 3), %eax
        movw %ax, %ds
        movw %ax, %es
        xorl %eax, %eax
        iret
trap_user_return:
        movl $TRAP_KERNEL_DS, %ecx
        movw %cx, %ds
        movw %cx, %es
        popl %edi
        popl %esi
        popl %ebx
        popl %ebp
        ret

/* Ring-3 snippets; each ends with int $0x80 with ESI = value. */
        .section .text.user, "ax", @progbits
        .balign 4096
        .globl trap_u_read, trap_u_write, trap_u_exec
trap_u_read:                            /* EDI = address */
        movl (%edi), %esi
        int $0x80
trap_u_write:                           /* EDI = address, ESI = value */
        movl %esi, (%edi)
        int $0x80
trap_u_exec:                            /* EDI = address holding int $0x80 */
        jmp *%edi
        .balign 4096

        .section .note.GNU-stack, "", @progbits
