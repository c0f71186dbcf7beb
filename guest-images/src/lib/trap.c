/* trap.c - GDT/TSS/IDT setup, exception dispatch, ring-0 probes and ring-3 calls. */
#include "trap.h"
#include "x86.h"

struct tss64 {
    u32 reserved0;
    u64 rsp[3];
    u64 reserved1;
    u64 ist[7];
    u64 reserved2;
    u16 reserved3;
    u16 iomap_base;
} __attribute__((packed));

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

#define STACK_SIZE 16384
static u64 gdt[8] __attribute__((aligned(16)));
static struct idt_gate idt[256] __attribute__((aligned(16)));
static struct tss64 tss __attribute__((aligned(16)));
static u8 rsp0_stack[STACK_SIZE] __attribute__((aligned(16)));
static u8 ist1_stack[STACK_SIZE] __attribute__((aligned(16)));

extern void *trap_isr_table[33]; /* vectors 0-31, then 0x80 */
extern u64 trap_enter_user(u64 rip, u64 rsp, u64 arg, u64 arg2);
extern void trap_user_return(void);
extern char trap_user_text[], trap_u_read[], trap_u_write[], trap_u_exec[], trap_user_stack[];

volatile struct trap_record trap_last;
int (*trap_hook)(struct trap_frame *f, u64 cr2);
volatile u64 trap_recover_rip, trap_recover_rsp;
u64 trap_kernel_saved_rsp;
static volatile int user_active;
static volatile u64 user_value;

void trap_reset(void)
{
    trap_last.count = 0;
    trap_last.vector = trap_last.err = trap_last.cr2 = trap_last.rip = trap_last.cs = ~0ull;
}

void trap_dispatch(struct trap_frame *f)
{
    u64 cr2 = read_cr2();
    if (trap_hook && f->vector != 0x80 && trap_hook(f, cr2))
        return;
    if (f->vector == 0x80 && (f->cs & 3) == 3 && user_active) { /* ring 3 finished */
        user_value = f->rsi;
        f->rip = (u64)(uintptr_t)trap_user_return;
        f->cs = TRAP_KERNEL_CS;
        f->ss = TRAP_KERNEL_DS;
        f->rsp = trap_kernel_saved_rsp;
        f->rflags = 0x2;
        f->rax = 1;
        return;
    }
    trap_last.count++;
    trap_last.vector = f->vector;
    trap_last.err = f->err;
    trap_last.cr2 = cr2;
    trap_last.rip = f->rip;
    trap_last.cs = f->cs;
    if ((f->cs & 3) == 3 && user_active) { /* ring-3 fault: back to ring 0, result 0 */
        f->rip = (u64)(uintptr_t)trap_user_return;
        f->cs = TRAP_KERNEL_CS;
        f->ss = TRAP_KERNEL_DS;
        f->rsp = trap_kernel_saved_rsp;
        f->rflags = 0x2;
        f->rax = 0;
        return;
    }
    if ((f->cs & 3) == 0 && trap_recover_rip) {
        f->rip = trap_recover_rip;
        f->rsp = trap_recover_rsp;
        trap_recover_rip = 0;
        return;
    }
    printf("FAIL: unexpected exception: vector %lu, error %#lx, RIP %#lx, CS %#lx, CR2 %#lx\n",
           f->vector, f->err, f->rip, f->cs, cr2);
    exit(EXIT_FAIL);
}

static void set_gate(int vec, void *handler, int dpl, int ist)
{
    u64 a = (u64)(uintptr_t)handler;
    idt[vec].off_lo = (u16)a;
    idt[vec].sel = TRAP_KERNEL_CS;
    idt[vec].ist = (u8)ist;
    idt[vec].type_attr = (u8)(0x80 | (dpl << 5) | 0xE);
    idt[vec].off_mid = (u16)(a >> 16);
    idt[vec].off_hi = (u32)(a >> 32);
    idt[vec].zero = 0;
}

void trap_init(void)
{
    gdt[0] = 0;
    gdt[1] = 0x00AF9A000000FFFFull; /* 0x08 kernel code64 */
    gdt[2] = 0x00CF92000000FFFFull; /* 0x10 kernel data */
    gdt[3] = 0x00CFFA000000FFFFull; /* 0x18 user code32 (unused) */
    gdt[4] = 0x00CFF2000000FFFFull; /* 0x20 user data */
    gdt[5] = 0x00AFFA000000FFFFull; /* 0x28 user code64 */
    u64 base = (u64)(uintptr_t)&tss, limit = sizeof(tss) - 1;
    gdt[6] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ull << 40) |
             (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
    gdt[7] = base >> 32;
    tss.rsp[0] = (u64)(uintptr_t)(rsp0_stack + STACK_SIZE);
    tss.ist[0] = (u64)(uintptr_t)(ist1_stack + STACK_SIZE);
    tss.iomap_base = sizeof(tss);

    struct desc_ptr gp = {sizeof(gdt) - 1, (u64)(uintptr_t)gdt};
    __asm__ volatile("lgdt %0" : : "m"(gp));
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
                     : [cs] "i"(TRAP_KERNEL_CS), [ds] "i"(TRAP_KERNEL_DS), [tr] "r"(TRAP_TSS_SEL)
                     : "rax", "memory");

    for (int v = 0; v < 32; v++)
        set_gate(v, trap_isr_table[v], 0, v == 8 ? 1 : 0);
    set_gate(0x80, trap_isr_table[32], 3, 0);
    struct desc_ptr ip = {sizeof(idt) - 1, (u64)(uintptr_t)idt};
    __asm__ volatile("lidt %0" : : "m"(ip));
    trap_reset();
}

/* ---------------------------------------------------------------- ring-0 probes */

int probe_read64(u64 va, u64 *val)
{
    u64 at, v = 0;
    u64 before = trap_last.count;
    __asm__ volatile(TRAP_PROBE_BEGIN "movq (%[va]), %[v]" TRAP_PROBE_END
                     : [at] "=&r"(at), [v] "+r"(v) : [va] "r"(va) : "r11", "memory");
    *val = v;
    return trap_last.count == before;
}

int probe_write64(u64 va, u64 val)
{
    u64 at;
    u64 before = trap_last.count;
    __asm__ volatile(TRAP_PROBE_BEGIN "movq %[v], (%[va])" TRAP_PROBE_END
                     : [at] "=&r"(at) : [va] "r"(va), [v] "r"(val) : "r11", "memory");
    return trap_last.count == before;
}

int probe_exec(u64 va)
{
    u64 ret_to, before = trap_last.count;
    __asm__ volatile("movq %%rsp, trap_recover_rsp\n\t"
                     "leaq 1f(%%rip), %0\n\t"
                     "movq %0, trap_recover_rip\n\t"
                     "call *%1\n"
                     "1:\tmovq $0, trap_recover_rip"
                     : "=&r"(ret_to) : "r"(va) : "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "memory");
    return trap_last.count == before;
}

/* ---------------------------------------------------------------- ring 3 */

static u64 user_pdpt_pa;

void trap_user_setup(u64 (*alloc_page)(void))
{
    u64 pdpt = alloc_page(), pd = alloc_page(), pt = alloc_page();
    ((u64 *)(uintptr_t)pdpt)[0] = pd | PTE_P | PTE_RW | PTE_US;
    ((u64 *)(uintptr_t)pd)[0] = pt | PTE_P | PTE_RW | PTE_US;
    ((u64 *)(uintptr_t)pt)[0] = (u64)(uintptr_t)trap_user_text | PTE_P | PTE_US;          /* code, RO */
    ((u64 *)(uintptr_t)pt)[1] = (u64)(uintptr_t)trap_user_stack | PTE_P | PTE_RW | PTE_US; /* stack */
    user_pdpt_pa = pdpt;
}

u64 trap_user_pml4e(void) { return user_pdpt_pa | PTE_P | PTE_RW | PTE_US; }

static int user_call(char *snippet, u64 arg, u64 arg2)
{
    u64 rip = TRAP_USER_WINDOW + (u64)(snippet - trap_user_text);
    u64 rsp = TRAP_USER_WINDOW + 0x2000;
    user_active = 1;
    u64 r = trap_enter_user(rip, rsp, arg, arg2);
    user_active = 0;
    return (int)r;
}

int user_read64(u64 va, u64 *val)
{
    user_value = 0;
    int ok = user_call(trap_u_read, va, 0);
    *val = user_value;
    return ok;
}

int user_write64(u64 va, u64 val) { return user_call(trap_u_write, va, val); }

int user_exec(u64 va) { return user_call(trap_u_exec, va, 0); }
