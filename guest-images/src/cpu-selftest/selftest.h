/* selftest.h - layout shared by the C and assembly parts of cpu-selftest. */
#ifndef SELFTEST_H
#define SELFTEST_H

/* GDT selectors. STAR[47:32] = KERNEL_CS (syscall: CS = 0x08, SS = 0x10);
 * STAR[63:48] = USER32_CS (sysretq: CS = 0x18 + 16 = 0x28 | 3, SS = 0x18 + 8 = 0x20 | 3). */
#define KERNEL_CS 0x08
#define KERNEL_DS 0x10
#define USER32_CS 0x18
#define USER_DS   0x20
#define USER_CS   0x28
#define TSS_SEL   0x30 /* 16-byte descriptor: 0x30 and 0x38 */
#define NP_DS     0x40 /* a data descriptor with P = 0 */
#define GDT_ENTRIES 9

/* Offsets in the per-CPU block that GS points to in ring 0 (swapgs on kernel entry). */
#define PERCPU_KERNEL_RSP 0 /* syscall stack top */
#define PERCPU_USER_RSP   8 /* scratch: user RSP during a syscall */

/* Offsets of struct frame (pushed by the exception stubs). */
#define FRAME_VECTOR 120
#define FRAME_CS     144

#endif
