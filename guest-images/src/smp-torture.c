/*
 * smp-torture - N CPUs on one machine, started and checked the way an OS does it.
 *
 *  1. discovery: the ACPI MADT (RSDP in the BIOS area) lists the CPUs; fw_cfg agrees;
 *  2. start-up: each AP gets INIT-SIPI-SIPI and runs a real-mode trampoline at 0x8000
 *     up to 64-bit mode on the BSP's page tables;
 *  3. spinlocks: every CPU increments a shared counter under a lock cmpxchg spinlock
 *     (with a read-modify-write window), and a lock xadd counter;
 *  4. TLB shootdown in a shared address space: the BSP remaps pages of a window to new
 *     frames, invalidates locally, sends an IPI to all other CPUs (their handler does
 *     invlpg and acknowledges), waits for every ack and then poisons the old frame. All
 *     CPUs read the window all the time and check they never see a stale mapping;
 *  5. per-CPU address spaces: each CPU switches CR3 between the shared space and its
 *     own, where one virtual page maps a frame only it owns;
 *  6. the BSP's APIC timer, one-shot and periodic, waking HLT.
 * APs idle in sti; hlt between phases and are woken by a fixed IPI. Only the BSP
 * prints, so the output is the same on every run and on QEMU.
 * Command line: "noinvlpg" makes the shootdown handler skip its invlpg (a negative
 * control: the image must then FAIL where the TLB is not flushed otherwise).
 */
#include "libc.h"
#include "x86.h"
#include "paging.h"
#include "cmdline.h"
#include "smp.h"

#define VEC_WAKE 0xf1
#define VEC_SHOOTDOWN 0xf0
#define VEC_TIMER 0xe0

#define WINDOW 0x8000000000ull      /* PML4 slot 1: the shared window */
#define PRIV_VA 0x10000000000ull    /* PML4 slot 2: per-CPU page */
#define NPAGES 16
#define NFRAMES (NPAGES * 3)
#define ROUNDS 96
#define LOCK_ITERS 400
#define CR3_ITERS 40
#define POISON 0xdeadull
#define STAMP(page, gen) (0x5a5a000000000000ull | ((u64)(page) << 32) | (gen))

static int ncpus;
static volatile u32 phase, phase_done;
static int skip_invlpg;

/* ---- phase plumbing: the BSP sets `phase`, wakes the APs, does its part, waits for them */
static void (*volatile phase_fn)(int cpu);

__attribute__((interrupt)) static void wake_handler(void *f) { (void)f; lapic_eoi(); }

static void run_phase(void (*fn)(int), u32 n)
{
    phase_fn = fn;
    phase_done = 0;
    __asm__ volatile("" ::: "memory");
    phase = n;
    lapic_ipi(0, ICR_FIXED | ICR_ALL_EXCL | VEC_WAKE);
    fn(0);
    if (!smp_wait_eq(&phase_done, (u32)ncpus - 1, 400000000)) {
        printf("FAIL: phase %u: only %u of %d APs finished\n", n, phase_done, ncpus - 1);
        exit(EXIT_FAIL);
    }
}

static void ap_main(int cpu)
{
    u32 seen = 0;
    for (;;) {
        cli();
        if (phase == seen) {
            __asm__ volatile("sti; hlt" ::: "memory"); /* an IPI wakes us */
            continue;
        }
        sti();
        seen = phase;
        phase_fn(cpu);
        atomic_inc(&phase_done);
    }
}

/* ---- 3. spinlocks */
static spinlock_t lock;
static volatile u64 locked_counter;
static volatile u32 xadd_counter;

static void spin_phase(int cpu)
{
    (void)cpu;
    for (int i = 0; i < LOCK_ITERS; i++) {
        spin_lock(&lock);
        u64 v = locked_counter;
        for (volatile int d = 0; d < 5; d++)
            ;
        locked_counter = v + 1;
        spin_unlock(&lock);
        atomic_inc(&xadd_counter);
    }
}

/* ---- 4. shootdown */
static u64 shared_pml4;
static u64 frames[NFRAMES];
static int frame_next;
static volatile u64 sd_va;
static volatile u32 sd_page, sd_gen, sd_acks, sd_running;
static volatile u32 expect_gen[SMP_MAX_CPUS][NPAGES]; /* per CPU: the gen of each page as of its last ack */
static volatile u32 stale[SMP_MAX_CPUS], reads[SMP_MAX_CPUS];
static volatile u64 stale_what[SMP_MAX_CPUS];
static u64 *window_pte[NPAGES];

__attribute__((interrupt)) static void shootdown_handler(void *f)
{
    (void)f;
    int cpu = smp_cpu_index();
    if (!skip_invlpg)
        invlpg((void *)(uintptr_t)sd_va);
    expect_gen[cpu][sd_page] = sd_gen;
    atomic_inc(&sd_acks);
    lapic_eoi();
}

static void check_window(int cpu)
{
    for (u32 p = 0; p < NPAGES; p++) {
        u32 want = expect_gen[cpu][p];
        __asm__ volatile("" ::: "memory");
        u64 s = *(volatile u64 *)(uintptr_t)(WINDOW + p * 4096);
        u32 gen = (u32)s;
        reads[cpu]++;
        if ((s >> 48) != 0x5a5a || ((s >> 32) & 0xffff) != p || gen == POISON || gen < want) {
            if (!stale[cpu]++)
                stale_what[cpu] = s;
        }
    }
}

static void shootdown_ap(int cpu)
{
    write_cr3(shared_pml4);
    while (sd_running)
        check_window(cpu);
    check_window(cpu);
}

static void shootdown_bsp(void)
{
    write_cr3(shared_pml4);
    for (u32 r = 1; r <= ROUNDS; r++) {
        u32 p = (r * 7) % NPAGES;
        u64 f = frames[frame_next];
        frame_next = (frame_next + 1) % NFRAMES;
        *(volatile u64 *)(uintptr_t)f = STAMP(p, r);
        u64 old = *window_pte[p] & PTE_ADDR_MASK;
        *window_pte[p] = f | PTE_P | PTE_RW;
        invlpg((void *)(uintptr_t)(WINDOW + p * 4096));
        expect_gen[0][p] = r;
        sd_va = WINDOW + p * 4096;
        sd_page = p;
        sd_gen = r;
        sd_acks = 0;
        __asm__ volatile("" ::: "memory");
        if (ncpus > 1) {
            lapic_ipi(0, ICR_FIXED | ICR_ALL_EXCL | VEC_SHOOTDOWN);
            while (sd_acks != (u32)ncpus - 1)
                check_window(0);
        }
        *(volatile u64 *)(uintptr_t)old = STAMP(p, POISON); /* nobody may see the old frame now */
        check_window(0);
    }
    sd_running = 0;
}

static void shootdown_phase(int cpu)
{
    if (cpu == 0)
        shootdown_bsp();
    else
        shootdown_ap(cpu);
}

static void setup_window(void)
{
    shared_pml4 = as_create(0, 0);
    for (int i = 0; i < NFRAMES; i++)
        frames[i] = palloc_page();
    for (u32 p = 0; p < NPAGES; p++) {
        window_pte[p] = pt_entry(shared_pml4, WINDOW + p * 4096, 1, 1, PTE_P | PTE_RW);
        u64 f = frames[frame_next++];
        *(volatile u64 *)(uintptr_t)f = STAMP(p, 0);
        *window_pte[p] = f | PTE_P | PTE_RW;
    }
    sd_running = 1;
}

/* ---- 5. per-CPU address spaces */
static u64 priv_pml4[SMP_MAX_CPUS], priv_frame[SMP_MAX_CPUS];
static volatile u32 cr3_bad[SMP_MAX_CPUS];

static void cr3_phase(int cpu)
{
    volatile u64 *priv = (volatile u64 *)(uintptr_t)PRIV_VA;
    for (int i = 0; i < CR3_ITERS; i++) {
        write_cr3(priv_pml4[cpu]);
        if (priv[0] != 0xc0de000000000000ull + (u64)cpu)
            cr3_bad[cpu]++;
        priv[1 + i % 8] = ((u64)cpu << 32) | (u64)i;
        if (priv[1 + i % 8] != (((u64)cpu << 32) | (u64)i))
            cr3_bad[cpu]++;
        write_cr3(shared_pml4);
        u64 s = *(volatile u64 *)(uintptr_t)WINDOW;
        if ((s >> 48) != 0x5a5a)
            cr3_bad[cpu]++;
    }
    write_cr3((u64)(uintptr_t)boot_pml4);
}

static void setup_cr3(void)
{
    for (int c = 0; c < ncpus; c++) {
        priv_pml4[c] = as_create(1, phys_ptr(shared_pml4)[1]); /* the window too */
        priv_frame[c] = palloc_page();
        *(u64 *)(uintptr_t)priv_frame[c] = 0xc0de000000000000ull + (u64)c;
        *pt_entry(priv_pml4[c], PRIV_VA, 1, 1, PTE_P | PTE_RW) = priv_frame[c] | PTE_P | PTE_RW;
    }
}

/* ---- 6. APIC timer on the BSP */
static volatile u32 ticks;
__attribute__((interrupt)) static void timer_handler(void *f) { (void)f; ticks++; lapic_eoi(); }

static void timer_test(void)
{
    lapic_write(0x3e0, 0xb); /* divide by 1 */
    /* one-shot: exactly one interrupt */
    ticks = 0;
    lapic_write(0x320, VEC_TIMER); /* one-shot, unmasked */
    lapic_write(0x380, 200000);
    while (ticks == 0)
        __asm__ volatile("sti; hlt; cli" ::: "memory"); /* sti's shadow: no wake-up lost before hlt */
    u32 cur = lapic_read(0x390);
    check("APIC timer one-shot: HLT woken by the timer interrupt, current count 0 afterwards", ticks == 1 && cur == 0);
    /* periodic: several interrupts, then stop it */
    ticks = 0;
    lapic_write(0x320, VEC_TIMER | (1u << 17));
    lapic_write(0x380, 100000);
    while (ticks < 4)
        __asm__ volatile("sti; hlt; cli" ::: "memory");
    lapic_write(0x380, 0);
    lapic_write(0x320, 1u << 16);
    check("APIC timer periodic: 4 interrupts wake HLT, then the timer stops", ticks == 4);
}

void kmain(u32 magic, u32 mbi_addr)
{
    serial_init();
    const struct multiboot_info *mbi = (const struct multiboot_info *)(uintptr_t)mbi_addr;
    const char *cl = cmdline_get(mbi);
    skip_invlpg = cmdline_has(cl, "noinvlpg");
    puts("smp-torture: INIT-SIPI-SIPI, spinlocks, TLB shootdown IPIs, per-CPU CR3, APIC timer");
    check("multiboot magic", magic == MULTIBOOT_BOOTLOADER_MAGIC);
    palloc_init(0x1000000, 0x2000000);
    smp_idt_init();
    smp_set_handler(VEC_WAKE, (const void *)wake_handler);
    smp_set_handler(VEC_SHOOTDOWN, (const void *)shootdown_handler);
    smp_set_handler(VEC_TIMER, (const void *)timer_handler);
    lapic_enable();

    ncpus = acpi_madt_cpus(smp_apic_ids, SMP_MAX_CPUS);
    int fw = fwcfg_nb_cpus();
    printf("cpus: %d in the ACPI MADT, fw_cfg says %d\n", ncpus, fw);
    check("ACPI: RSDP -> RSDT -> MADT lists the CPUs, as many as fw_cfg FW_CFG_NB_CPUS", ncpus >= 1 && ncpus == fw);
    if (ncpus < 1)
        check_finish();
    check("the BSP is the MADT's first CPU", lapic_id() == smp_apic_ids[0]);

    int up = smp_start_aps(ncpus, ap_main);
    check_eq("INIT-SIPI-SIPI: every AP reached 64-bit C code", (u64)up, (u64)ncpus);
    if (up != ncpus)
        check_finish();

    run_phase(spin_phase, 1);
    check_eq("spinlock (lock cmpxchg): no lost increment", locked_counter, (u64)ncpus * LOCK_ITERS);
    check_eq("lock xadd counter", xadd_counter, (u64)ncpus * LOCK_ITERS);

    setup_window();
    run_phase(shootdown_phase, 2);
    u32 bad = 0, total = 0;
    for (int c = 0; c < ncpus; c++) {
        bad += stale[c];
        total += reads[c];
        if (stale[c])
            printf("      CPU %d saw %u stale reads, first %#lx\n", c, stale[c], stale_what[c]);
    }
    check("TLB shootdown: no CPU read a stale mapping after acknowledging the IPI", bad == 0);
    check("TLB shootdown: every CPU kept reading the window", total >= (u32)ncpus * NPAGES);

    setup_cr3();
    run_phase(cr3_phase, 3);
    u32 cbad = 0;
    for (int c = 0; c < ncpus; c++)
        cbad += cr3_bad[c];
    check("per-CPU address spaces: CR3 switches, one VA, a private frame per CPU", cbad == 0);

    timer_test();
    check_finish();
}
