/* smp.c - CPU discovery (ACPI MADT, fw_cfg), the local xAPIC, AP start-up, IDT. */
#include "smp.h"

volatile int smp_ncpus = 1;
u8 smp_apic_ids[SMP_MAX_CPUS];

/* ---------------------------------------------------------------- ACPI */
static int acpi_sum_ok(const u8 *p, u32 len)
{
    u8 s = 0;
    for (u32 i = 0; i < len; i++)
        s += p[i];
    return s == 0;
}

static const u8 *acpi_find_rsdp(void)
{
    for (u64 a = 0xe0000; a < 0x100000; a += 16) {
        const u8 *p = (const u8 *)(uintptr_t)a;
        if (!memcmp(p, "RSD PTR ", 8) && acpi_sum_ok(p, 20))
            return p;
    }
    return 0;
}

int acpi_madt_cpus(u8 *apic_ids, int max)
{
    const u8 *rsdp = acpi_find_rsdp();
    if (!rsdp)
        return 0;
    const u8 *rsdt = (const u8 *)(uintptr_t)*(const u32 *)(rsdp + 16);
    if (memcmp(rsdt, "RSDT", 4))
        return 0;
    u32 len = *(const u32 *)(rsdt + 4);
    if (len < 36 || !acpi_sum_ok(rsdt, len))
        return 0;
    for (u32 off = 36; off + 4 <= len; off += 4) {
        const u8 *t = (const u8 *)(uintptr_t)*(const u32 *)(rsdt + off);
        if (memcmp(t, "APIC", 4))
            continue;
        u32 tlen = *(const u32 *)(t + 4);
        if (!acpi_sum_ok(t, tlen))
            return 0;
        int n = 0;
        for (u32 e = 44; e + 2 <= tlen && t[e + 1] >= 2; e += t[e + 1]) {
            if (t[e] == 0 && (*(const u32 *)(t + e + 4) & 1) && n < max) /* enabled local APIC */
                apic_ids[n++] = t[e + 3];
        }
        return n;
    }
    return 0;
}

static inline void outw(u16 port, u16 v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }

int fwcfg_nb_cpus(void)
{
    outw(0x510, 0x0005);
    int lo = inb(0x511), hi = inb(0x511);
    return lo | hi << 8;
}

/* ---------------------------------------------------------------- local APIC */
void lapic_enable(void)
{
    lapic_write(0x80, 0);          /* TPR */
    lapic_write(0xf0, 0x100 | 0xff); /* SVR: enable, spurious vector 0xFF */
}

void lapic_ipi(u32 dest, u32 icr)
{
    lapic_write(0x310, dest << 24);
    lapic_write(0x300, icr);
    while (lapic_read(0x300) & (1u << 12))
        cpu_relax();
}

int smp_wait_eq(volatile u32 *p, u32 v, u64 spins)
{
    for (u64 i = 0; i < spins; i++) {
        if (*p == v)
            return 1;
        cpu_relax();
    }
    return *p == v;
}

/* ---------------------------------------------------------------- IDT */
struct idt_gate {
    u16 off_lo, sel;
    u8 ist, type_attr;
    u16 off_mid;
    u32 off_hi, zero;
} __attribute__((packed));
static struct idt_gate idt[256] __attribute__((aligned(16)));
struct desc_ptr { u16 limit; u64 base; } __attribute__((packed));
static spinlock_t fail_lock;

struct iframe { u64 rip, cs, rflags, rsp, ss; };

static void die(const char *what, struct iframe *f, u64 err)
{
    spin_lock(&fail_lock);
    printf("FAIL: CPU with APIC ID %u: unexpected %s (error %#lx) at RIP %#lx, CR2 %#lx\n",
           lapic_id(), what, err, f->rip, read_cr2());
    exit(EXIT_FAIL);
}
__attribute__((interrupt)) static void exc_noerr(struct iframe *f) { die("exception", f, 0); }
__attribute__((interrupt)) static void exc_err(struct iframe *f, u64 err) { die("exception with error code", f, err); }
__attribute__((interrupt)) static void irq_spurious(struct iframe *f) { (void)f; }
__attribute__((interrupt)) static void irq_unexpected(struct iframe *f) { die("interrupt", f, 0); }

void smp_set_handler(int vec, const void *h)
{
    u64 a = (u64)(uintptr_t)h;
    idt[vec].off_lo = (u16)a;
    idt[vec].sel = 0x08;
    idt[vec].ist = 0;
    idt[vec].type_attr = 0x8E;
    idt[vec].off_mid = (u16)(a >> 16);
    idt[vec].off_hi = (u32)(a >> 32);
    idt[vec].zero = 0;
}

void smp_idt_load(void)
{
    struct desc_ptr ip = {sizeof(idt) - 1, (u64)(uintptr_t)idt};
    __asm__ volatile("lidt %0" : : "m"(ip));
}

void smp_idt_init(void)
{
    /* the BIOS leaves the 8259s on vectors 8-15 with the PIT's IRQ 0 unmasked: mask them (interrupts come from the APIC) */
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
    for (int v = 0; v < 256; v++) {
        int has_err = v == 8 || (v >= 10 && v <= 14) || v == 17 || v == 21 || v == 29 || v == 30;
        smp_set_handler(v, v < 32 ? (has_err ? (const void *)exc_err : (const void *)exc_noerr) : (const void *)irq_unexpected);
    }
    smp_set_handler(0xff, (const void *)irq_spurious);
    smp_idt_load();
}

/* ---------------------------------------------------------------- AP start-up */
extern const u8 smp_tramp_start[], smp_tramp_end[], smp_tramp_params[];
struct smp_tramp_params { u64 cr3, stack, entry, arg; };
extern const u64 boot_gdt_ptr[]; /* boot.S: the 64-bit GDT (0x08 code, 0x10 data) */

static u8 ap_stacks[SMP_MAX_CPUS][16384] __attribute__((aligned(16)));
static void (*volatile ap_user_entry)(int);
static volatile u32 ap_arrived;

/* First C code on an AP: the kernel's GDT (CS 0x08 like the BSP, so the IDT's gates fit), the IDT, the APIC. */
static void ap_boot(u64 index)
{
    __asm__ volatile("lgdt boot_gdt_ptr\n\t"
                     "pushq $0x08\n\t"
                     "leaq 1f(%%rip), %%rax\n\t"
                     "pushq %%rax\n\t"
                     "lretq\n"
                     "1:" ::: "rax", "memory");
    smp_idt_load();
    lapic_enable();
    atomic_inc(&ap_arrived);
    ap_user_entry((int)index);
    for (;;)
        __asm__ volatile("cli; hlt");
}

int smp_start_aps(int n, void (*entry)(int))
{
    u64 len = (u64)(smp_tramp_end - smp_tramp_start);
    u8 *dst = (u8 *)(uintptr_t)SMP_TRAMP_BASE;
    memcpy(dst, smp_tramp_start, len);
    struct smp_tramp_params *p = (struct smp_tramp_params *)(dst + (smp_tramp_params - smp_tramp_start));
    ap_user_entry = entry;
    for (int i = 1; i < n; i++) {
        p->cr3 = read_cr3();
        p->stack = (u64)(uintptr_t)&ap_stacks[i][sizeof ap_stacks[i]];
        p->entry = (u64)(uintptr_t)ap_boot;
        p->arg = (u64)i;
        __asm__ volatile("" ::: "memory");
        u32 want = ap_arrived + 1;
        /* INIT-SIPI-SIPI: the second STARTUP is ignored by an AP the first one started */
        lapic_ipi(smp_apic_ids[i], ICR_INIT | ICR_ASSERT);
        lapic_ipi(smp_apic_ids[i], ICR_STARTUP | (SMP_TRAMP_BASE >> 12));
        lapic_ipi(smp_apic_ids[i], ICR_STARTUP | (SMP_TRAMP_BASE >> 12));
        if (!smp_wait_eq(&ap_arrived, want, 50000000))
            return i;
        smp_ncpus = i + 1;
    }
    return n;
}
