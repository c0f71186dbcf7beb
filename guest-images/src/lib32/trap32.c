/* trap32.c - GDT/TSS/IDT setup, exception dispatch, ring-0 probes and ring-3 calls for
 * the 32-bit images. */
#include "trap32.h"
#include "x86.h"

struct tss32 {
    u16 link, r0;
    u32 esp0;
    u16 ss0, r1;
    u32 esp1;
    u16 ss1, r2;
    u32 esp2;
    u16 ss2, r3;
    u32 cr3, eip, eflags, eax, ecx, edx, ebx, esp, ebp, esi, edi;
    u16 es, r4, cs, r5, ss, r6, ds, r7, fs, r8, gs, r9, ldt, r10, trap, iomap_base;
} __attribute__((packed));
_Static_assert(sizeof(struct tss32) == 104, "tss32 layout");

struct idt_gate32 {
    u16 off_lo, sel;
    u8 zero, type_attr;
    u16 off_hi;
};

struct desc_ptr32 {
    u16 limit;
    u32 base;
} __attribute__((packed));

#define STACK_SIZE 16384
static u64 gdt[6] __attribute__((aligned(16)));
static struct idt_gate32 idt[256] __attribute__((aligned(16)));
static struct tss32 tss __attribute__((aligned(16)));
static u8 esp0_stack[STACK_SIZE] __attribute__((aligned(16)));
static u8 user_stack[4096] __attribute__((aligned(4096)));

extern void *trap_isr_table[33]; /* vectors 0-31, then 0x80 */
extern u32 trap_enter_user(u32 eip, u32 esp, u32 arg, u32 arg2);
extern char trap_u_read[], trap_u_write[], trap_u_exec[];

volatile struct trap_record trap_last;
int (*trap_hook)(struct trap_frame *f, u32 cr2);
volatile u32 trap_recover_eip, trap_recover_esp;
u32 trap_kernel_saved_esp, trap_user_result;
static volatile int user_active;
static volatile u32 user_value;

void trap_reset(void)
{
    trap_last.count = 0;
    trap_last.vector = trap_last.err = trap_last.cr2 = trap_last.eip = trap_last.cs = ~0u;
}

/* Returns 1 when the stub must leave ring 3 for good (back into trap_enter_user's
 * caller with trap_user_result), 0 to resume the frame with iret. */
int trap_dispatch(struct trap_frame *f)
{
    u32 cr2 = read_cr2_32();
    if (trap_hook && f->vector != 0x80 && trap_hook(f, cr2))
        return 0;
    if (f->vector == 0x80 && (f->cs & 3) == 3 && user_active) { /* ring 3 finished */
        user_value = f->esi;
        trap_user_result = 1;
        return 1;
    }
    trap_last.count++;
    trap_last.vector = f->vector;
    trap_last.err = f->err;
    trap_last.cr2 = cr2;
    trap_last.eip = f->eip;
    trap_last.cs = f->cs;
    if ((f->cs & 3) == 3 && user_active) { /* ring-3 fault: back to ring 0, result 0 */
        trap_user_result = 0;
        return 1;
    }
    if ((f->cs & 3) == 0 && trap_recover_eip) {
        f->eip = trap_recover_eip; /* the recovery code reloads ESP itself */
        trap_recover_eip = 0;
        return 0;
    }
    printf("FAIL: unexpected exception: vector %u, error %#x, EIP %#x, CS %#x, CR2 %#x\n", f->vector, f->err,
           f->eip, f->cs, cr2);
    exit(EXIT_FAIL);
}

static void set_gate(int vec, void *handler, int dpl)
{
    u32 a = (u32)(uintptr_t)handler;
    idt[vec].off_lo = (u16)a;
    idt[vec].sel = TRAP_KERNEL_CS;
    idt[vec].zero = 0;
    idt[vec].type_attr = (u8)(0x80 | (dpl << 5) | 0xE);
    idt[vec].off_hi = (u16)(a >> 16);
}

void trap_init(void)
{
    gdt[0] = 0;
    gdt[1] = 0x00CF9A000000FFFFull; /* 0x08 kernel code32 */
    gdt[2] = 0x00CF92000000FFFFull; /* 0x10 kernel data */
    gdt[3] = 0x00CFFA000000FFFFull; /* 0x18 user code32 */
    gdt[4] = 0x00CFF2000000FFFFull; /* 0x20 user data */
    u64 base = (u32)(uintptr_t)&tss, limit = sizeof(tss) - 1;
    gdt[5] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ull << 40) | (((limit >> 16) & 0xf) << 48) |
             (((base >> 24) & 0xff) << 56);
    tss.esp0 = (u32)(uintptr_t)(esp0_stack + STACK_SIZE);
    tss.ss0 = TRAP_KERNEL_DS;
    tss.iomap_base = sizeof(tss);

    struct desc_ptr32 gp = {sizeof(gdt) - 1, (u32)(uintptr_t)gdt};
    __asm__ volatile("lgdt %0" : : "m"(gp));
    __asm__ volatile("ljmp %[cs], $1f\n"
                     "1:\tmovl %[ds], %%eax\n\t"
                     "movw %%ax, %%ds\n\t"
                     "movw %%ax, %%es\n\t"
                     "movw %%ax, %%ss\n\t"
                     "ltr %w[tr]"
                     :
                     : [cs] "i"(TRAP_KERNEL_CS), [ds] "i"(TRAP_KERNEL_DS), [tr] "r"(TRAP_TSS_SEL)
                     : "eax", "memory");
    for (int v = 0; v < 32; v++)
        set_gate(v, trap_isr_table[v], 0);
    set_gate(0x80, trap_isr_table[32], 3);
    struct desc_ptr32 ip = {sizeof(idt) - 1, (u32)(uintptr_t)idt};
    __asm__ volatile("lidt %0" : : "m"(ip));
    trap_reset();
}

/* ---------------------------------------------------------------- ring-0 probes */

#define PROBE_BEGIN                                                                                  \
    "movl %%esp, trap_recover_esp\n\t"                                                               \
    "movl $1f, trap_recover_eip\n\t"
#define PROBE_END "\n1:\tmovl trap_recover_esp, %%esp\n\tmovl $0, trap_recover_eip"

int probe_read32(u32 va, u32 *val)
{
    u32 v = 0, before = trap_last.count;
    __asm__ volatile(PROBE_BEGIN "movl (%[va]), %[v]" PROBE_END : [v] "+r"(v) : [va] "r"(va) : "memory");
    *val = v;
    return trap_last.count == before;
}

int probe_write32(u32 va, u32 val)
{
    u32 before = trap_last.count;
    __asm__ volatile(PROBE_BEGIN "movl %[v], (%[va])" PROBE_END : : [va] "r"(va), [v] "r"(val) : "memory");
    return trap_last.count == before;
}

int probe_exec(u32 va)
{
    u32 before = trap_last.count;
    __asm__ volatile(PROBE_BEGIN "call *%0" PROBE_END : : "r"(va) : "eax", "ecx", "edx", "memory");
    return trap_last.count == before;
}

/* ---------------------------------------------------------------- ring 3 */

static int user_call(char *snippet, u32 arg, u32 arg2)
{
    user_active = 1;
    u32 r = trap_enter_user((u32)(uintptr_t)snippet, (u32)(uintptr_t)(user_stack + sizeof user_stack), arg, arg2);
    user_active = 0;
    return (int)r;
}

int user_read32(u32 va, u32 *val)
{
    user_value = 0;
    int ok = user_call(trap_u_read, va, 0);
    *val = user_value;
    return ok;
}

int user_write32(u32 va, u32 val) { return user_call(trap_u_write, va, val); }

int user_exec(u32 va) { return user_call(trap_u_exec, va, 0); }
