/* trap.h - a reusable GDT/TSS/IDT, exception recording, ring-0 fault probes and
 * ring-3 calls for the paging images (cpu-selftest has its own, richer version). */
#ifndef TRAP_H
#define TRAP_H

#define TRAP_KERNEL_CS 0x08
#define TRAP_KERNEL_DS 0x10
#define TRAP_USER_DS   0x20
#define TRAP_USER_CS   0x28
#define TRAP_TSS_SEL   0x30

/* Ring-3 code and stack are aliased at this address in every address space that
 * installs trap_user_pml4e() in PML4 slot TRAP_USER_PML4_SLOT. */
#define TRAP_USER_PML4_SLOT 255
#define TRAP_USER_WINDOW    0x7f8000000000 /* = 255 << 39 */

#ifndef __ASSEMBLER__
#include "libc.h"

struct trap_frame {
    u64 r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
    u64 vector, err, rip, cs, rflags, rsp, ss;
};

struct trap_record {
    u64 count, vector, err, cr2, rip, cs;
};
extern volatile struct trap_record trap_last;

/* Called first for every exception; return nonzero when it handled the event (the
 * frame is resumed as it stands, e.g. after demand-mapping a page). */
extern int (*trap_hook)(struct trap_frame *f, u64 cr2);

void trap_init(void);  /* GDT, TSS (RSP0, IST1 for #DF), IDT (0-31, 0x80 DPL 3) */
void trap_reset(void); /* clear trap_last */

/* Ring-0 probe: run one instruction with a recovery point right after it; the
 * instruction's address goes to operand %[at]. Clobbers r11. */
#define TRAP_PROBE_BEGIN                                                               \
    "leaq 2f(%%rip), %[at]\n\t"                                                        \
    "movq %%rsp, trap_recover_rsp\n\t"                                                 \
    "leaq 1f(%%rip), %%r11\n\t"                                                        \
    "movq %%r11, trap_recover_rip\n"                                                   \
    "2:\t"
#define TRAP_PROBE_END "\n1:\tmovq $0, trap_recover_rip\n\t"
extern volatile u64 trap_recover_rip, trap_recover_rsp;

/* Ring-0 accesses that may fault; return 1 if the access completed. */
int probe_read64(u64 va, u64 *val);
int probe_write64(u64 va, u64 val);
int probe_exec(u64 va); /* calls va; the target must hold a `ret` (0xC3) */

/* Ring 3: the PML4 entry that maps the user window (build with trap_user_setup()). */
void trap_user_setup(u64 (*alloc_page)(void));
u64 trap_user_pml4e(void);
/* Run ring-3 code (IOPL 0, IF 0) that performs one access at va; returns 1 if it
 * completed (the read value in *val), 0 if it faulted (see trap_last). */
int user_read64(u64 va, u64 *val);
int user_write64(u64 va, u64 val);
int user_exec(u64 va); /* jumps to va; the target must hold `int $0x80` (0xCD 0x80) */

#endif /* __ASSEMBLER__ */
#endif
