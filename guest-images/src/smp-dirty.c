/*
 * smp-dirty - every CPU writes its own region of memory, round after round, while the
 * host may run dirty logging (issue 8: the host side checks that no written page was
 * missed). The guest side: CPUs are found through the ACPI MADT and started with
 * INIT-SIPI-SIPI (src/lib/smp.c); CPU c owns pages [c * pages, (c + 1) * pages) of a
 * region at 32 MiB and writes a stamp (cpu, round, page) into a varying word of each
 * page every round, then verifies its own region; at the end the BSP verifies every
 * region. Command line: rounds=N (default 8), pages=N per CPU (default 256).
 */
#include "libc.h"
#include "x86.h"
#include "cmdline.h"
#include "smp.h"

#define VEC_WAKE 0xf1
#define REGION 0x2000000ull

static int ncpus;
static u64 rounds = 8, pages = 256;
static volatile u32 go, done;
static volatile u32 bad[SMP_MAX_CPUS];

__attribute__((interrupt)) static void wake_handler(void *f) { (void)f; lapic_eoi(); }

static inline u64 stamp(int cpu, u64 r, u64 p) { return 0xd1d1000000000000ull | ((u64)cpu << 40) | (r << 24) | p; }
static inline volatile u64 *word(int cpu, u64 p, u64 r) { return (volatile u64 *)(uintptr_t)(REGION + ((u64)cpu * pages + p) * 4096 + ((p + r) % 512) * 8); }

static void writer(int cpu)
{
    for (u64 r = 1; r <= rounds; r++) {
        for (u64 p = 0; p < pages; p++)
            *word(cpu, p, r) = stamp(cpu, r, p);
        for (u64 p = 0; p < pages; p++)
            if (*word(cpu, p, r) != stamp(cpu, r, p))
                bad[cpu]++;
    }
}

static void ap_main(int cpu)
{
    cli();
    while (!go)
        __asm__ volatile("sti; hlt; cli" ::: "memory");
    sti();
    writer(cpu);
    atomic_inc(&done);
}

void kmain(u32 magic, u32 mbi_addr)
{
    serial_init();
    const struct multiboot_info *mbi = (const struct multiboot_info *)(uintptr_t)mbi_addr;
    const char *cl = cmdline_get(mbi);
    cmdline_u64(cl, "rounds", &rounds);
    cmdline_u64(cl, "pages", &pages);
    puts("smp-dirty: every CPU writes its own region");
    check("multiboot magic", magic == MULTIBOOT_BOOTLOADER_MAGIC);
    smp_idt_init();
    smp_set_handler(VEC_WAKE, (const void *)wake_handler);
    lapic_enable();
    ncpus = acpi_madt_cpus(smp_apic_ids, SMP_MAX_CPUS);
    check("ACPI MADT lists the CPUs (as many as fw_cfg says)", ncpus >= 1 && ncpus == fwcfg_nb_cpus());
    if (ncpus < 1 || (u64)ncpus * pages * 4096 > 0x8000000ull) {
        check("the regions fit below 160 MiB", 0);
        check_finish();
    }
    int up = smp_start_aps(ncpus, ap_main);
    check_eq("every AP started", (u64)up, (u64)ncpus);
    printf("%d CPUs x %lu pages x %lu rounds\n", ncpus, pages, rounds);
    go = 1;
    lapic_ipi(0, ICR_FIXED | ICR_ALL_EXCL | VEC_WAKE);
    writer(0);
    if (!smp_wait_eq(&done, (u32)up - 1, 2000000000ull))
        check("every AP finished", 0);
    u32 b = 0;
    for (int c = 0; c < up; c++)
        b += bad[c];
    check("each CPU read back its own writes", b == 0);
    u32 wrong = 0;
    for (int c = 0; c < up; c++)
        for (u64 p = 0; p < pages; p++)
            if (*word(c, p, rounds) != stamp(c, rounds, p))
                wrong++;
    check("the BSP sees every CPU's last round", wrong == 0);
    check_finish();
}
