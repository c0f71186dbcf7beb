/* cpu-selftest - exceptions, privilege levels and system instructions in long mode.
 *
 * Sets up its own GDT (kernel + user segments, a 64-bit TSS with RSP0 and IST1), an IDT
 * with stubs for all 32 exception vectors, its own 4-level page tables, and the
 * syscall MSRs; then provokes faults in ring 0 and ring 3 and checks vector, error
 * code, CR2, saved RIP/CS/SS/RSP and the stack the handler ran on. */
#include "libc.h"
#include "x86.h"
#include "selftest.h"

/* ---------------------------------------------------------------- layout */

#define RSVD_VA      0x8000000000ull /* PML4[1] has PS set: reserved-bit #PF */
#define UNMAPPED_VA  0x40000000ull   /* PDPT[1] not present */
#define NX_PAGE      0x1fd000ull     /* present, writable, NX, supervisor */
#define RO_PAGE      0x1fe000ull     /* present, read-only, supervisor */
#define NP_PAGE      0x1ff000ull     /* PTE not present */
#define SFMASK_BITS  0x47700ull      /* TF IF DF IOPL NT AC cleared on syscall */
#define RFLAGS_DF    0x400ull
#define RFLAGS_IOPL3 0x3000ull

struct frame {
    u64 r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
    u64 vector, err, rip, cs, rflags, rsp, ss;
};
_Static_assert(sizeof(struct frame) == 176, "frame layout");
_Static_assert(__builtin_offsetof(struct frame, vector) == FRAME_VECTOR, "frame layout");
_Static_assert(__builtin_offsetof(struct frame, cs) == FRAME_CS, "frame layout");

struct tss {
    u32 reserved0;
    u64 rsp[3];
    u64 reserved1;
    u64 ist[7];
    u64 reserved2;
    u16 reserved3;
    u16 iomap_base;
} __attribute__((packed));
_Static_assert(sizeof(struct tss) == 104, "tss layout");

struct idt_gate {
    u16 off_lo, sel;
    u8 ist, type_attr;
    u16 off_mid;
    u32 off_hi, zero;
};

struct desc_ptr {
    u16 limit;
    u64 base;
} __attribute__((packed));

struct percpu {
    u64 kernel_rsp; /* PERCPU_KERNEL_RSP */
    u64 user_rsp;   /* PERCPU_USER_RSP */
    u64 marker;
};

static u64 gdt[GDT_ENTRIES] __attribute__((aligned(16)));
static struct idt_gate idt[256] __attribute__((aligned(16)));
static struct tss tss __attribute__((aligned(16)));
static struct percpu percpu;
static struct percpu fs_block = {0, 0, 0xf5f5f5f5f5f5f5f5ull};

#define STACK_SIZE 16384
static u8 rsp0_stack[STACK_SIZE] __attribute__((aligned(16)));
static u8 ist1_stack[STACK_SIZE] __attribute__((aligned(16)));
static u8 syscall_stack[STACK_SIZE] __attribute__((aligned(16)));

static u64 pml4[512] __attribute__((aligned(4096)));
static u64 pdpt[512] __attribute__((aligned(4096)));
static u64 pdpt_rsvd[512] __attribute__((aligned(4096)));
static u64 pd[512] __attribute__((aligned(4096)));
static u64 pt0[512] __attribute__((aligned(4096)));

/* entry.S / user.S */
extern void *isr_table[32];
extern void isr128(void), isr130(void), syscall_entry(void), user_return(void);
extern u64 run_user(u64 rip, u64 rsp, u64 rflags, u64 arg);
extern char user_text_start[], user_text_end[], user_data_start[], user_data_end[];
extern char user_stack[], user_stack_top[];
extern volatile u64 user_results[8];
extern char u_hlt[], u_cli[], u_mov_cr0[], u_rdmsr[], u_rdmsr_insn[], u_in[], u_lgdt[], u_out[], u_in_insn[],
    u_rdtsc[], u_int82[], u_load[], u_store[], u_jump[], u_int80[], u_int80_ret[],
    u_syscall[], u_syscall_ret[], u_in_iopl3[];

/* ---------------------------------------------------------------- exception handling */

struct exc_record {
    u64 count, vector, err, cr2, rip, cs, rflags, rsp, ss, frame;
};
static volatile struct exc_record exc;
volatile u64 exc_recover_rip, exc_recover_rsp; /* ring-0 probes: where to resume */
u64 kernel_saved_rsp;                          /* run_user(): where ring 0 resumes */
static volatile int user_active;

static void exc_reset(void)
{
    exc.count = 0;
    exc.vector = exc.err = exc.cr2 = exc.rip = exc.cs = exc.rflags = exc.rsp = exc.ss = ~0ull;
    exc.frame = 0;
}

void exc_handler(struct frame *f)
{
    u64 cr2 = read_cr2();
    exc.count++;
    exc.vector = f->vector;
    exc.err = f->err;
    exc.cr2 = cr2;
    exc.rip = f->rip;
    exc.cs = f->cs;
    exc.rflags = f->rflags;
    exc.rsp = f->rsp;
    exc.ss = f->ss;
    exc.frame = (u64)(uintptr_t)f;

    if (f->vector == 0x80) { /* the DPL-3 "system call" gate */
        f->rax += 1000;
        return;
    }
    if ((f->cs & 3) == 3 && user_active) { /* ring-3 fault: resume ring 0 in run_user() */
        f->rip = (u64)(uintptr_t)user_return;
        f->cs = KERNEL_CS;
        f->ss = KERNEL_DS;
        f->rsp = kernel_saved_rsp;
        f->rflags = 0x2;
        f->rax = 0x1000 | f->vector;
        return;
    }
    if ((f->cs & 3) == 0 && exc_recover_rip) { /* expected ring-0 fault */
        f->rip = exc_recover_rip;
        f->rsp = exc_recover_rsp;
        exc_recover_rip = 0;
        return;
    }
    if (f->vector == 3) /* int3 is a trap: resume after it */
        return;
    printf("FAIL: unexpected exception: vector %lu, error %#lx, RIP %#lx, CS %#lx, CR2 %#lx\n",
           f->vector, f->err, f->rip, f->cs, cr2);
    exit(EXIT_FAIL);
}

/* Ring-0 probe: run one instruction with a recovery point right after it.
 * PROBE_BEGIN stores the instruction's address in operand %[at]. */
#define PROBE_BEGIN                                                                    \
    "leaq 2f(%%rip), %[at]\n\t"                                                        \
    "movq %%rsp, exc_recover_rsp\n\t"                                                  \
    "leaq 1f(%%rip), %%r11\n\t"                                                        \
    "movq %%r11, exc_recover_rip\n"                                                    \
    "2:\t"
#define PROBE_END "\n1:\tmovq $0, exc_recover_rip\n\t"

#define ANY (~0ull - 1)

/* One verdict line for the last exception against the expected vector / error code /
 * RIP / CR2 (ANY = not checked). */
static int check_exc(const char *name, u64 vector, u64 err, u64 rip, u64 cr2)
{
    int ok = exc.count == 1 && exc.vector == vector && (err == ANY || exc.err == err) &&
             (rip == ANY || exc.rip == rip) && (cr2 == ANY || exc.cr2 == cr2);
    check(name, ok);
    if (!ok)
        printf("      got %lu exception(s): vector %lu, error %#lx, RIP %#lx, CR2 %#lx\n"
               "      want vector %lu, error %#lx, RIP %#lx, CR2 %#lx\n",
               exc.count, exc.vector, exc.err, exc.rip, exc.cr2, vector, err, rip, cr2);
    return ok;
}

/* Run a ring-3 snippet; returns its result (0x1000 | vector if it faulted). */
static u64 user_run(const void *entry, u64 arg, u64 rflags)
{
    exc_reset();
    user_active = 1;
    u64 r = run_user((u64)(uintptr_t)entry, (u64)(uintptr_t)user_stack_top, rflags, arg);
    user_active = 0;
    return r;
}

/* A ring-3 snippet must fault with this vector/error/CR2 at `at`; also checks the
 * frame: CS/SS/RSP of ring 3, and the handler ran on TSS.RSP0. */
static void check_user_fault(const char *name, const void *entry, u64 arg, u64 vector, u64 err,
                             const void *at, u64 cr2)
{
    u64 r = user_run(entry, arg, 0x2);
    u64 frame_want = (u64)(uintptr_t)(rsp0_stack + STACK_SIZE) - sizeof(struct frame);
    int ok = r == (0x1000 | vector) && exc.count == 1 && exc.vector == vector &&
             (err == ANY || exc.err == err) && exc.rip == (u64)(uintptr_t)at &&
             (cr2 == ANY || exc.cr2 == cr2) && exc.cs == (USER_CS | 3) && exc.ss == (USER_DS | 3) &&
             exc.rsp == (u64)(uintptr_t)user_stack_top && exc.frame == frame_want;
    check(name, ok);
    if (!ok)
        printf("      result %#lx; %lu exception(s): vector %lu, error %#lx, RIP %#lx, CR2 %#lx,\n"
               "      CS %#lx, SS %#lx, RSP %#lx, frame %#lx; want vector %lu, error %#lx,\n"
               "      RIP %#lx, CR2 %#lx, frame %#lx\n",
               r, exc.count, exc.vector, exc.err, exc.rip, exc.cr2, exc.cs, exc.ss, exc.rsp,
               exc.frame, vector, err, (u64)(uintptr_t)at, cr2, frame_want);
}

/* ---------------------------------------------------------------- setup */

static void set_gate(int vec, void *handler, int dpl, int ist, int present)
{
    u64 a = (u64)(uintptr_t)handler;
    idt[vec].off_lo = (u16)a;
    idt[vec].sel = KERNEL_CS;
    idt[vec].ist = (u8)ist;
    idt[vec].type_attr = (u8)((present ? 0x80 : 0) | (dpl << 5) | 0xE); /* 64-bit interrupt gate */
    idt[vec].off_mid = (u16)(a >> 16);
    idt[vec].off_hi = (u32)(a >> 32);
    idt[vec].zero = 0;
}

static void setup_paging(void)
{
    u64 ut0 = (u64)(uintptr_t)user_text_start, ut1 = (u64)(uintptr_t)user_text_end;
    u64 ud0 = (u64)(uintptr_t)user_data_start, ud1 = (u64)(uintptr_t)user_data_end;
    u64 us0 = (u64)(uintptr_t)user_stack, us1 = (u64)(uintptr_t)user_stack_top;

    for (u64 i = 0; i < 512; i++) {
        u64 pa = i << 12, e = pa | PTE_P | PTE_RW;
        if (pa == 0 || pa == NP_PAGE)
            e = 0;
        else if (pa == RO_PAGE)
            e = pa | PTE_P;
        else if (pa == NX_PAGE)
            e = pa | PTE_P | PTE_RW | PTE_NX;
        else if (pa >= ut0 && pa < ut1)
            e = pa | PTE_P | PTE_US;
        else if ((pa >= ud0 && pa < ud1) || (pa >= us0 && pa < us1))
            e = pa | PTE_P | PTE_RW | PTE_US | PTE_NX;
        pt0[i] = e;
    }
    pd[0] = (u64)(uintptr_t)pt0 | PTE_P | PTE_RW | PTE_US;
    for (u64 i = 1; i < 512; i++)
        pd[i] = (i << 21) | PTE_P | PTE_RW | PTE_PS;
    pdpt[0] = (u64)(uintptr_t)pd | PTE_P | PTE_RW | PTE_US;
    pml4[0] = (u64)(uintptr_t)pdpt | PTE_P | PTE_RW | PTE_US;
    pml4[1] = (u64)(uintptr_t)pdpt_rsvd | PTE_P | PTE_RW | PTE_PS; /* PS is reserved in a PML4E */

    /* A `ret` at the start of the NX page, so a missing NX check returns instead of crashing. */
    *(volatile u8 *)(uintptr_t)NX_PAGE = 0xC3;
    *(volatile u64 *)(uintptr_t)(RO_PAGE + 8) = 0x1111;

    wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_NXE);
    write_cr3((u64)(uintptr_t)pml4);
    write_cr0(read_cr0() | CR0_WP);
}

static void setup_gdt_idt(void)
{
    gdt[0] = 0;
    gdt[KERNEL_CS >> 3] = 0x00AF9A000000FFFFull; /* 64-bit code, DPL 0 */
    gdt[KERNEL_DS >> 3] = 0x00CF92000000FFFFull; /* data, DPL 0 */
    gdt[USER32_CS >> 3] = 0x00CFFA000000FFFFull; /* 32-bit code, DPL 3 (sysret base) */
    gdt[USER_DS >> 3] = 0x00CFF2000000FFFFull;   /* data, DPL 3 */
    gdt[USER_CS >> 3] = 0x00AFFA000000FFFFull;   /* 64-bit code, DPL 3 */
    u64 base = (u64)(uintptr_t)&tss, limit = sizeof(tss) - 1;
    gdt[TSS_SEL >> 3] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ull << 40) |
                        (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
    gdt[(TSS_SEL >> 3) + 1] = base >> 32;
    gdt[NP_DS >> 3] = 0x00CF12000000FFFFull; /* data, DPL 0, P = 0 */

    tss.rsp[0] = (u64)(uintptr_t)(rsp0_stack + STACK_SIZE);
    tss.ist[0] = (u64)(uintptr_t)(ist1_stack + STACK_SIZE);
    tss.iomap_base = sizeof(tss); /* no I/O permission bitmap */

    struct desc_ptr gp = {sizeof(gdt) - 1, (u64)(uintptr_t)gdt};
    __asm__ volatile("lgdt %0" : : "m"(gp));
    /* Reload CS with a far return, then the data segments, then TR. */
    __asm__ volatile("pushq %[cs]\n\t"
                     "leaq 1f(%%rip), %%rax\n\t"
                     "pushq %%rax\n\t"
                     "lretq\n"
                     "1:\tmovl %[ds], %%eax\n\t"
                     "movw %%ax, %%ds\n\t"
                     "movw %%ax, %%es\n\t"
                     "movw %%ax, %%ss\n\t"
                     "ltr %w[tr]"
                     :
                     : [cs] "i"(KERNEL_CS), [ds] "i"(KERNEL_DS), [tr] "r"(TSS_SEL)
                     : "rax", "memory");

    for (int v = 0; v < 32; v++)
        set_gate(v, isr_table[v], 0, v == 8 ? 1 : 0, 1);
    set_gate(3, isr_table[3], 3, 0, 1);      /* int3 allowed from ring 3 */
    set_gate(0x80, isr128, 3, 0, 1);         /* the ring-3 system call gate */
    set_gate(0x81, isr130, 0, 0, 0);         /* not present */
    set_gate(0x82, isr130, 0, 0, 1);         /* DPL 0: int from ring 3 must #GP */
    struct desc_ptr ip = {sizeof(idt) - 1, (u64)(uintptr_t)idt};
    __asm__ volatile("lidt %0" : : "m"(ip));
}

static void setup_syscall(void)
{
    percpu.kernel_rsp = (u64)(uintptr_t)(syscall_stack + STACK_SIZE);
    wrmsr(MSR_GS_BASE, (u64)(uintptr_t)&percpu); /* ring 0 runs with GS = percpu */
    wrmsr(MSR_KERNEL_GS_BASE, 0);
    wrmsr(MSR_STAR, ((u64)USER32_CS << 48) | ((u64)KERNEL_CS << 32));
    wrmsr(MSR_LSTAR, (u64)(uintptr_t)syscall_entry);
    wrmsr(MSR_SFMASK, SFMASK_BITS);
    wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_SCE);
}

/* ---------------------------------------------------------------- syscall 1 */

static struct {
    u64 count, nr, arg, user_rip, user_rflags, entry_rflags, gs_marker;
} sys;

u64 syscall_c(u64 nr, u64 arg, u64 user_rip, u64 user_rflags, u64 entry_rflags)
{
    u64 m;
    __asm__ volatile("movq %%gs:%c1, %0" : "=r"(m) : "i"(PERCPU_KERNEL_RSP));
    sys.count++;
    sys.nr = nr;
    sys.arg = arg;
    sys.user_rip = user_rip;
    sys.user_rflags = user_rflags;
    sys.entry_rflags = entry_rflags;
    sys.gs_marker = m;
    return arg + 1;
}

/* ---------------------------------------------------------------- tests */

static void test_cpuid(void)
{
    u32 a, b, c, d, max, maxext;
    char vendor[13];
    cpuid(0, 0, &max, &b, &c, &d);
    memcpy(vendor, &b, 4);
    memcpy(vendor + 4, &d, 4);
    memcpy(vendor + 8, &c, 4);
    vendor[12] = 0;
    int printable = 1;
    for (int i = 0; i < 12; i++)
        printable &= vendor[i] >= 0x20 && vendor[i] < 0x7f;
    /* The vendor string differs between emulators: checked for shape, never printed. */
    check("cpuid leaf 0: max leaf >= 1, vendor string is 12 printable characters", max >= 1 && printable);
    cpuid(0x80000000u, 0, &maxext, &b, &c, &d);
    cpuid(0x80000001u, 0, &a, &b, &c, &d);
    check("cpuid 0x80000001: LM, NX and SYSCALL advertised",
          maxext >= 0x80000001u && (d & (1u << 29)) && (d & (1u << 20)) && (d & (1u << 11)));
}

static void test_divide(void)
{
    u64 at;
    exc_reset();
    __asm__ volatile(PROBE_BEGIN "divl %%ecx" PROBE_END
                     : [at] "=&r"(at) : "a"(7), "d"(0), "c"(0) : "r11", "memory", "cc");
    check_exc("#DE: div by zero (vector 0, RIP = the div)", 0, 0, at, ANY);

    exc_reset();
    __asm__ volatile(PROBE_BEGIN "idivq %%rcx" PROBE_END
                     : [at] "=&r"(at) : "a"(0x8000000000000000ull), "d"(~0ull), "c"(~0ull)
                     : "r11", "memory", "cc");
    check_exc("#DE: idiv INT64_MIN / -1 overflow", 0, 0, at, ANY);

    exc_reset();
    __asm__ volatile(PROBE_BEGIN "idivl %%ecx" PROBE_END
                     : [at] "=&r"(at) : "a"(0x80000000u), "d"(0xffffffffu), "c"(0xffffffffu)
                     : "r11", "memory", "cc");
    check_exc("#DE: idiv INT32_MIN / -1 overflow", 0, 0, at, ANY);

    u64 q, r;
    exc_reset();
    __asm__ volatile("divq %[d]" : "=a"(q), "=d"(r) : "a"(1000003ull), "d"(0ull), [d] "r"(10ull) : "cc");
    check("div without fault: 1000003 / 10 = 100000 rem 3, no exception", q == 100000 && r == 3 && exc.count == 0);
}

static void test_ud_bp(void)
{
    u64 at;
    exc_reset();
    __asm__ volatile(PROBE_BEGIN "ud2" PROBE_END : [at] "=&r"(at) : : "r11", "memory");
    check_exc("#UD: ud2 (vector 6, RIP = the ud2)", 6, 0, at, ANY);

    u64 after;
    exc_reset();
    __asm__ volatile("leaq 1f(%%rip), %0\n\tint3\n1:" : "=&r"(after) : : "memory");
    check_exc("#BP: int3 is a trap (vector 3, RIP = the next instruction)", 3, 0, after, ANY);
}

static void test_gp(void)
{
    u64 at;
    /* Not tested: #GP from rdmsr/wrmsr of unknown MSRs, reserved EFER/CR4 bits, CR0.PE=0
     * with PG=1 or non-canonical FS_BASE writes. QEMU TCG 7.2 raises no #GP for them
     * (and hangs on a CR4 reserved-bit write), so they cannot be checked against it. */
    exc_reset();
    __asm__ volatile(PROBE_BEGIN "movq (%%rcx), %%rax" PROBE_END
                     : [at] "=&r"(at) : "c"(0x0000800000000000ull) : "rax", "r11", "memory");
    check_exc("#GP(0): load from non-canonical address 0x800000000000", 13, 0, at, ANY);

    exc_reset();
    __asm__ volatile(PROBE_BEGIN "movq (%%rcx), %%rax" PROBE_END
                     : [at] "=&r"(at) : "c"(0xffff7fffffff0000ull) : "rax", "r11", "memory");
    check_exc("#GP(0): load from non-canonical address 0xffff7fffffff0000", 13, 0, at, ANY);

    exc_reset();
    __asm__ volatile(PROBE_BEGIN "movw %%ax, %%ds" PROBE_END
                     : [at] "=&r"(at) : "a"(0x80) : "r11", "memory");
    check_exc("#GP(0x80): mov to DS of selector 0x80, beyond the GDT limit", 13, 0x80, at, ANY);

    exc_reset();
    __asm__ volatile(PROBE_BEGIN "movw %%ax, %%ds" PROBE_END
                     : [at] "=&r"(at) : "a"(TSS_SEL) : "r11", "memory");
    check_exc("#GP(0x30): mov to DS of the TSS (system) selector", 13, TSS_SEL, at, ANY);

    exc_reset();
    __asm__ volatile(PROBE_BEGIN "movw %%ax, %%ss" PROBE_END
                     : [at] "=&r"(at) : "a"(KERNEL_CS) : "r11", "memory");
    check_exc("#GP(0x08): mov to SS of a code selector", 13, KERNEL_CS, at, ANY);

    exc_reset();
    __asm__ volatile(PROBE_BEGIN "movw %%ax, %%ss" PROBE_END
                     : [at] "=&r"(at) : "a"(USER_DS | 3) : "r11", "memory");
    check_exc("#GP(0x20): mov to SS of a DPL-3 data selector at CPL 0", 13, USER_DS, at, ANY);

    exc_reset();
    __asm__ volatile(PROBE_BEGIN "movw %%ax, %%es" PROBE_END
                     : [at] "=&r"(at) : "a"(NP_DS) : "r11", "memory");
    check_exc("#NP(0x40): mov to ES of a not-present data descriptor", 11, NP_DS, at, ANY);

    u16 ds;
    __asm__ volatile("movw %%ds, %0" : "=r"(ds));
    check_eq("DS unchanged after the faulting loads", ds, KERNEL_DS);

    exc_reset();
    __asm__ volatile(PROBE_BEGIN "int $0x81" PROBE_END : [at] "=&r"(at) : : "r11", "memory");
    /* Error code: IDT flag (bit 1) set, EXT (bit 0) clear for INT n; the index field is
     * not checked because QEMU TCG reports vector*16 there in long mode. */
    check_exc("#NP: int $0x81 through a not-present gate (vector 11)", 11, ANY, at, ANY);
    check_eq("#NP: int $0x81 error code has IDT=1, EXT=0", exc.err & 3, 2);
}

static void test_pf_kernel(void)
{
    u64 at;
    exc_reset();
    __asm__ volatile(PROBE_BEGIN "movq (%%rcx), %%rax" PROBE_END
                     : [at] "=&r"(at) : "c"(NP_PAGE + 0x123) : "rax", "r11", "memory");
    check_exc("#PF: ring-0 read of not-present PTE: error 0x0, CR2 0x1ff123", 14, 0x0, at, NP_PAGE + 0x123);

    exc_reset();
    __asm__ volatile(PROBE_BEGIN "movq %%rax, (%%rcx)" PROBE_END
                     : [at] "=&r"(at) : "c"(NP_PAGE + 0xff8), "a"(0) : "r11", "memory");
    check_exc("#PF: ring-0 write of not-present PTE: error 0x2, CR2 0x1ffff8", 14, 0x2, at, NP_PAGE + 0xff8);

    exc_reset();
    __asm__ volatile(PROBE_BEGIN "movb (%%rcx), %%al" PROBE_END
                     : [at] "=&r"(at) : "c"(UNMAPPED_VA + 0x10) : "rax", "r11", "memory");
    check_exc("#PF: ring-0 read with PDPTE not present: error 0x0, CR2 0x40000010", 14, 0x0, at, UNMAPPED_VA + 0x10);

    exc_reset();
    __asm__ volatile(PROBE_BEGIN "movq %%rax, (%%rcx)" PROBE_END
                     : [at] "=&r"(at) : "c"(RO_PAGE + 8), "a"(0x2222) : "r11", "memory");
    check_exc("#PF: ring-0 write to read-only page with CR0.WP=1: error 0x3, CR2 0x1fe008", 14, 0x3, at, RO_PAGE + 8);
    check_eq("read-only page kept its value", *(volatile u64 *)(uintptr_t)(RO_PAGE + 8), 0x1111);

    exc_reset();
    write_cr0(read_cr0() & ~(u64)CR0_WP);
    *(volatile u64 *)(uintptr_t)(RO_PAGE + 8) = 0x3333;
    write_cr0(read_cr0() | CR0_WP);
    check("ring-0 write to read-only page with CR0.WP=0 succeeds",
          exc.count == 0 && *(volatile u64 *)(uintptr_t)(RO_PAGE + 8) == 0x3333);

    exc_reset();
    __asm__ volatile(PROBE_BEGIN "movq (%%rcx), %%rax" PROBE_END
                     : [at] "=&r"(at) : "c"(RSVD_VA) : "rax", "r11", "memory");
    /* The SDM sets P (bit 0) on reserved-bit faults (error 0x9); QEMU TCG 7.2 reports 0x8.
     * Only RSVD, W, U/S and I/D are judged. */
    check_exc("#PF: PML4E with PS set is a reserved-bit fault, CR2 0x8000000000", 14, ANY, at, RSVD_VA);
    check_eq("#PF: reserved-bit fault error code has RSVD=1, W=0, U/S=0, I/D=0", exc.err & 0x1e, 0x8);

    u64 ret_to;
    exc_reset();
    __asm__ volatile("movq %%rsp, exc_recover_rsp\n\t"
                     "leaq 1f(%%rip), %0\n\t"
                     "movq %0, exc_recover_rip\n\t"
                     "call *%%rcx\n"
                     "1:\tmovq $0, exc_recover_rip"
                     : "=&r"(ret_to) : "c"(NX_PAGE) : "memory");
    check_exc("#PF: ring-0 fetch from NX page (EFER.NXE=1): error 0x11, CR2 = RIP = 0x1fd000", 14, 0x11, NX_PAGE, NX_PAGE);
}

static void test_double_fault(void)
{
    u64 ist_frame = (u64)(uintptr_t)(ist1_stack + STACK_SIZE) - sizeof(struct frame);
    u64 at;

    /* #GP (a bad selector load) whose gate is not present: delivering it raises #NP,
     * contributory on contributory = #DF (error code 0), delivered on IST1. */
    idt[13].type_attr &= 0x7f;
    exc_reset();
    __asm__ volatile(PROBE_BEGIN "movw %%ax, %%ds" PROBE_END
                     : [at] "=&r"(at) : "a"(0x80) : "r11", "memory");
    idt[13].type_attr |= 0x80;
    check_exc("#DF: #GP with a not-present gate escalates to #DF, error 0", 8, 0, ANY, ANY);
    check_eq("#DF ran on the IST1 stack", exc.frame, ist_frame);

    /* #PF whose gate is not present: #PF then #NP = #DF. */
    idt[14].type_attr &= 0x7f;
    exc_reset();
    __asm__ volatile(PROBE_BEGIN "movq (%%rcx), %%rax" PROBE_END
                     : [at] "=&r"(at) : "c"(NP_PAGE) : "rax", "r11", "memory");
    idt[14].type_attr |= 0x80;
    check_exc("#DF: #PF with a not-present gate escalates to #DF, error 0", 8, 0, ANY, ANY);
    check_eq("#DF ran on the IST1 stack (second time)", exc.frame, ist_frame);
    (void)at;
}

static void test_swapgs_fs(void)
{
    static u64 gs_a[2] = {0xaaaa000011110000ull, 0}, gs_b[2] = {0xbbbb000022220000ull, 0};
    u64 saved_gs = rdmsr(MSR_GS_BASE), saved_kgs = rdmsr(MSR_KERNEL_GS_BASE);
    wrmsr(MSR_GS_BASE, (u64)(uintptr_t)gs_a);
    wrmsr(MSR_KERNEL_GS_BASE, (u64)(uintptr_t)gs_b);
    u64 v1, v2;
    __asm__ volatile("movq %%gs:0, %0" : "=r"(v1));
    __asm__ volatile("swapgs\n\tmovq %%gs:0, %0\n\tswapgs" : "=r"(v2) : : "memory");
    u64 gs_after = rdmsr(MSR_GS_BASE), kgs_after = rdmsr(MSR_KERNEL_GS_BASE);
    __asm__ volatile("swapgs" ::: "memory");
    u64 gs_swapped = rdmsr(MSR_GS_BASE), kgs_swapped = rdmsr(MSR_KERNEL_GS_BASE);
    __asm__ volatile("swapgs" ::: "memory");
    check("GS base: %gs:0 reads through IA32_GS_BASE", v1 == gs_a[0]);
    check("swapgs exchanges IA32_GS_BASE and IA32_KERNEL_GS_BASE",
          v2 == gs_b[0] && gs_after == (u64)(uintptr_t)gs_a && kgs_after == (u64)(uintptr_t)gs_b &&
              gs_swapped == (u64)(uintptr_t)gs_b && kgs_swapped == (u64)(uintptr_t)gs_a);
    wrmsr(MSR_GS_BASE, saved_gs);
    wrmsr(MSR_KERNEL_GS_BASE, saved_kgs);

    u64 f;
    wrmsr(MSR_FS_BASE, (u64)(uintptr_t)&fs_block);
    __asm__ volatile("movq %%fs:16, %0" : "=r"(f));
    wrmsr(MSR_FS_BASE, 0);
    check("FS base: %fs:16 reads through IA32_FS_BASE", f == fs_block.marker);
}

static void test_tss_busy(void)
{
    check("ltr marked the TSS descriptor busy (type 0xB)", ((gdt[TSS_SEL >> 3] >> 40) & 0xf) == 0xB);
}

static void test_user(void)
{
    u64 kdata = (u64)(uintptr_t)&percpu;
    u64 kcode = (u64)(uintptr_t)&exc_handler;

    /* Ring 3 -> ring 0 via syscall, back via sysretq. */
    u64 r = user_run(u_syscall, 0, 0x2);
    check("iretq to ring 3, syscall 1 and sysretq back, syscall 0 to leave", r == 0x600d && sys.count == 1 && exc.count == 0);
    check_eq("syscall: number and argument reach the kernel", (sys.nr << 32) | sys.arg, (1ull << 32) | 41);
    check_eq("syscall: RCX = RIP of the next instruction", sys.user_rip, (u64)(uintptr_t)u_syscall_ret);
    check_eq("syscall: R11 = user RFLAGS (DF set)", sys.user_rflags, 0x402);
    check_eq("syscall: SFMASK cleared DF in ring 0", sys.entry_rflags, 0x2);
    check_eq("syscall: swapgs gave the kernel its per-CPU GS", sys.gs_marker, percpu.kernel_rsp);
    check_eq("sysretq: RAX = result 42", user_results[0], 42);
    check_eq("sysretq: RFLAGS restored from R11", user_results[1], 0x402);
    check_eq("sysretq: CS = 0x2b", user_results[2], USER_CS | 3);
    check_eq("sysretq: SS = 0x23", user_results[3], USER_DS | 3);
    check_eq("sysretq: RCX, R11 as the kernel saw them", user_results[4] ^ user_results[5],
             (u64)(uintptr_t)u_syscall_ret ^ 0x402);

    /* int $0x80 through a DPL-3 gate. */
    r = user_run(u_int80, 0, 0x2);
    check("int $0x80 from ring 3 through a DPL-3 gate, iretq back", r == 1005 && exc.count == 1 &&
          exc.vector == 0x80 && exc.rip == (u64)(uintptr_t)u_int80_ret && exc.cs == (USER_CS | 3) &&
          exc.frame == (u64)(uintptr_t)(rsp0_stack + STACK_SIZE) - sizeof(struct frame));

    /* Privileged instructions in ring 3: #GP(0). */
    check_user_fault("#GP(0): hlt in ring 3", u_hlt, 0, 13, 0, u_hlt, ANY);
    check_user_fault("#GP(0): cli in ring 3 with IOPL 0", u_cli, 0, 13, 0, u_cli, ANY);
    check_user_fault("#GP(0): mov from CR0 in ring 3", u_mov_cr0, 0, 13, 0, u_mov_cr0, ANY);
    check_user_fault("#GP(0): rdmsr in ring 3", u_rdmsr, 0, 13, 0, u_rdmsr_insn, ANY);
    check_user_fault("#GP(0): lgdt in ring 3", u_lgdt, 0, 13, 0, u_lgdt, ANY);
    check_user_fault("#GP(0): out in ring 3 with IOPL 0", u_out, 0, 13, 0, u_out, ANY);
    check_user_fault("#GP(0): in in ring 3 with IOPL 0", u_in, 0, 13, 0, u_in_insn, ANY);
    r = user_run(u_in_iopl3, 0, 0x2 | RFLAGS_IOPL3);
    check("in from ring 3 with IOPL 3 is allowed", r == 0x600d && exc.count == 0);

    write_cr4(read_cr4() | (1u << 2)); /* CR4.TSD */
    check_user_fault("#GP(0): rdtsc in ring 3 with CR4.TSD=1", u_rdtsc, 0, 13, 0, u_rdtsc, ANY);
    write_cr4(read_cr4() & ~(u64)(1u << 2));

    u64 r82 = user_run(u_int82, 0, 0x2);
    check("#GP: int $0x82 from ring 3 through a DPL-0 gate", r82 == (0x1000 | 13) && exc.count == 1 &&
          exc.vector == 13 && exc.rip == (u64)(uintptr_t)u_int82);
    check_eq("#GP: int $0x82 error code has IDT=1, EXT=0", exc.err & 3, 2);

    /* Page faults from ring 3. */
    check_user_fault("#PF: ring-3 read of supervisor page: error 0x5, CR2 exact", u_load, kdata, 14, 0x5, u_load, kdata);
    check_user_fault("#PF: ring-3 write of supervisor page: error 0x7, CR2 exact", u_store, kdata, 14, 0x7, u_store, kdata);
    check_user_fault("#PF: ring-3 read of not-present page: error 0x4, CR2 0x1ff040", u_load, NP_PAGE + 0x40, 14, 0x4,
                     u_load, NP_PAGE + 0x40);
    check_user_fault("#PF: ring-3 write to read-only user page: error 0x7, CR2 exact", u_store,
                     (u64)(uintptr_t)u_hlt, 14, 0x7, u_store, (u64)(uintptr_t)u_hlt);
    check_user_fault("#PF: ring-3 fetch from supervisor page: error 0x15, CR2 = RIP", u_jump, kcode, 14, 0x15,
                     (void *)(uintptr_t)kcode, kcode);
    check_user_fault("#PF: ring-3 fetch from NX user page: error 0x15, CR2 = RIP", u_jump,
                     (u64)(uintptr_t)user_data_start, 14, 0x15, user_data_start, (u64)(uintptr_t)user_data_start);

    /* A ring-3 read of its own data works. */
    user_results[7] = 0x77;
    r = user_run(u_load, (u64)(uintptr_t)&user_results[7], 0x2);
    check("ring-3 read of its own user page does not fault", r == 0xdead && exc.count == 0);
}

static void test_tsc(void)
{
    u64 prev = rdtsc();
    int ok = 1;
    for (int i = 0; i < 8; i++) {
        for (volatile int k = 0; k < 1000; k++)
            ;
        u64 t = rdtsc();
        ok &= t > prev;
        prev = t;
    }
    check("rdtsc strictly increases across busy loops", ok);
}

void kmain(uint32_t magic, uint32_t mbi)
{
    serial_init();
    puts("cpu-selftest: exceptions, privilege levels, syscall/sysret, paging faults");
    check_eq("multiboot magic", magic, MULTIBOOT_BOOTLOADER_MAGIC);
    if (!check("image ends below the test pages at 0x1fd000", (u64)(uintptr_t)_end <= NX_PAGE))
        check_finish();

    test_cpuid();
    setup_paging();
    setup_gdt_idt();
    setup_syscall();
    puts("setup done: own GDT/TSS/IDT, 4-level page tables, EFER.NXE/SCE, CR0.WP");

    test_tss_busy();
    test_divide();
    test_ud_bp();
    test_gp();
    test_pf_kernel();
    test_double_fault();
    test_swapgs_fs();
    test_user();
    test_tsc();
    check_finish();
}
