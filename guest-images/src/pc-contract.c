/* pc-contract - probes the slice of QEMU's pc machine that multiboot test kernels rely on:
 *   - multiboot: magic, memory info and a memory map covering mem_upper, the command line
 *     (argv[0] = the kernel's name; the words after it are printed), modules (count, each
 *     module's argument words, size, FNV-1a checksum; modules in this repository's PCMOD1
 *     format carry their own checksum, which is verified), low memory and page 0 writable;
 *   - fw_cfg on ports 0x510/0x511: signature "QEMU", FW_CFG_NB_CPUS (item 5) = smp=N from
 *     the command line (default 1);
 *   - CPUID vs CR4/EFER consistency: an advertised CR4 feature bit can be set and cleared
 *     without #GP, and works (SMEP, SMAP, PKU, UMIP, FSGSBASE, PCID, OSXSAVE, TSD); CR4.LA57
 *     cannot change in long mode; advertised EFER bits stick, unadvertised ones never do.
 *     Setting an UNadvertised CR4 bit must #GP (SDM), but QEMU 7.2 hangs on every such
 *     write (and accepts CR4.PCIDE without PCID), so those writes are probed only with
 *     `-append sdm`, which also demands #GP for unadvertised EFER bits (QEMU ignores them);
 *   - local xAPIC at 0xFEE00000: APIC base MSR, ID 0, version, SPIV write/read, EOI,
 *     INIT and SIPI to a non-existent APIC ID with the ICR's delivery status reading idle;
 *   - the 16550's LSR reporting the transmitter empty; PIC initialisation and mask writes
 *     accepted; an unused port (0xe0) reading as all ones;
 *   - the final isa-debug-exit write is 32 bits wide (outl).
 * Output is the same for any CPU model: per-feature CPUID results are never printed. */
#include "libc.h"
#include "x86.h"
#include "paging.h"
#include "trap.h"
#include "cmdline.h"

#define TEST_VA   0x8000000000ull  /* PML4 slot 1: a user page (code snippets + data) */
#define KEY_VA    (TEST_VA + 0x1000) /* a user page for the protection-key test */
#define TEST_PA   0x900000ull
#define KEY_PA    0x901000ull
#define OFF_RET   0x10             /* ret */
#define OFF_SGDT  0x40             /* sgdt -16(%rsp); int $0x80 */
#define OFF_RDTSC 0x60             /* rdtsc; int $0x80 */

static inline void outw(u16 port, u16 v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(u16 port, u32 v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline u16 inw(u16 port) { u16 v; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline u32 inl(u16 port) { u32 v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }

static int sdm_mode;
static u64 pml4, *test_pte, *key_pte;

static u32 fnv1a(const u8 *p, u64 n)
{
    u32 h = 0x811c9dc5u;
    while (n--)
        h = (h ^ *p++) * 0x01000193u;
    return h;
}

/* ---------------------------------------------------------------- multiboot */

struct mb_module {
    u32 start, end, string, reserved;
};
struct mb_mmap {
    u32 size;
    u64 addr, len;
    u32 type;
} __attribute__((packed));

static u32 parse_hex(const char *s, int n)
{
    u32 v = 0;
    for (int i = 0; i < n; i++) {
        char c = s[i];
        v = v * 16 + (u32)(c >= '0' && c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return v;
}

static void test_multiboot(u32 magic, const struct multiboot_info *mbi)
{
    check_eq("multiboot magic", magic, MULTIBOOT_BOOTLOADER_MAGIC);
    check("multiboot flags: memory info, command line, memory map", (mbi->flags & 0x45) == 0x45);
    u64 upper_end = 0x100000ull + (u64)mbi->mem_upper * 1024;
    int covered = 0;
    if (mbi->flags & (1u << 6)) {
        for (u32 off = 0; off < mbi->mmap_length;) {
            const struct mb_mmap *m = (const struct mb_mmap *)(uintptr_t)(mbi->mmap_addr + off);
            if (m->type == 1 && m->addr <= 0x100000 && m->addr + m->len >= upper_end)
                covered = 1;
            off += m->size + 4;
        }
    }
    check("memory map: one RAM (type 1) range covers 1 MiB .. 1 MiB + mem_upper", covered);
    check("mem_lower >= 512 KiB and mem_upper >= 64 MiB", mbi->mem_lower >= 512 && mbi->mem_upper >= 65536);

    /* Low memory and page 0 are writable RAM (save, write, read back, restore). */
    static const u64 spots[] = {0x0, 0x1000, 0x80000};
    int ok = 1;
    for (unsigned i = 0; i < sizeof spots / sizeof spots[0]; i++) {
        volatile u64 *p = (volatile u64 *)(uintptr_t)spots[i];
        __asm__("" : "+r"(p)); /* address 0 is RAM here: keep gcc from treating it as a null dereference */
        u64 saved = *p, want = 0x10e5a5a5a5a5a5a5ull ^ spots[i];
        *p = want;
        ok &= *p == want;
        *p = saved;
    }
    check("physical page 0, 0x1000 and 0x80000 are writable RAM", ok);

    const char *cl = cmdline_get(mbi);
    char w[64];
    int n = cmdline_words(cl);
    check("command line: argv[0] (the kernel's file name) is present", n >= 1 && cmdline_word(cl, 0, w, sizeof w) > 0);
    printf("command line: %d word(s) after the kernel name:", n > 0 ? n - 1 : 0);
    for (int i = 1; i < n; i++) {
        cmdline_word(cl, i, w, sizeof w);
        printf(" %s", w);
    }
    putc('\n');

    u32 count = (mbi->flags & (1u << 3)) ? mbi->mods_count : 0;
    printf("modules: %u\n", count);
    const struct mb_module *mods = (const struct mb_module *)(uintptr_t)mbi->mods_addr;
    for (u32 i = 0; i < count; i++) {
        const u8 *p = (const u8 *)(uintptr_t)mods[i].start;
        u64 size = mods[i].end - mods[i].start;
        const char *ms = mods[i].string ? (const char *)(uintptr_t)mods[i].string : "";
        printf("module %u: %llu bytes, fnv1a %08x, arguments:", i, (unsigned long long)size, fnv1a(p, size));
        int mw = cmdline_words(ms);
        for (int k = 1; k < mw; k++) { /* word 0 is the module's file name */
            cmdline_word(ms, k, w, sizeof w);
            printf(" %s", w);
        }
        putc('\n');
        char name[80];
        snprintf(name, sizeof name, "module %u: page-aligned, non-empty, below 4 GiB", i);
        check(name, (mods[i].start & 0xfff) == 0 && mods[i].end > mods[i].start);
        if (size > 16 && !memcmp(p, "PCMOD1 ", 7)) {
            u32 want = parse_hex((const char *)p + 7, 8);
            u64 len = 0, hl = 16;
            while (hl < size && p[hl] != '\n')
                len = len * 10 + (u64)(p[hl++] - '0');
            hl++;
            snprintf(name, sizeof name, "module %u: PCMOD1 payload length and checksum match its header", i);
            check(name, hl + len == size && fnv1a(p + hl, len) == want);
        }
    }
}

/* ---------------------------------------------------------------- fw_cfg, UART, PIC, ports */

static void test_platform(const char *cl)
{
    char sig[5];
    outw(0x510, 0x0000); /* FW_CFG_SIGNATURE */
    for (int i = 0; i < 4; i++)
        sig[i] = (char)inb(0x511);
    sig[4] = 0;
    check("fw_cfg: signature (item 0) reads \"QEMU\"", !memcmp(sig, "QEMU", 4));
    outw(0x510, 0x0005); /* FW_CFG_NB_CPUS, 16-bit little endian */
    u16 ncpus = inb(0x511);
    ncpus |= (u16)(inb(0x511) << 8);
    u64 smp = 1;
    cmdline_u64(cl, "smp", &smp);
    printf("fw_cfg: %u CPU(s)\n", ncpus);
    check_eq("fw_cfg: FW_CFG_NB_CPUS (item 5) matches smp=N (default 1)", ncpus, smp);

    int empty = 0;
    for (int i = 0; i < 100000 && !empty; i++)
        empty = (inb(0x3fd) & 0x60) == 0x60;
    check("16550: LSR reports THR empty and transmitter empty (bits 5, 6)", empty);

    /* PIC: ICW1-4 for both, vectors 0x20/0x28, then mask everything. */
    static const u8 seq[][2] = {{0x20, 0x11}, {0xa0, 0x11}, {0x21, 0x20}, {0xa1, 0x28}, {0x21, 0x04},
                                {0xa1, 0x02}, {0x21, 0x01}, {0xa1, 0x01}, {0x21, 0xff}, {0xa1, 0xff}};
    for (unsigned i = 0; i < sizeof seq / sizeof seq[0]; i++)
        outb(seq[i][0], seq[i][1]);
    check("PIC: initialisation and mask writes to 0x20/0x21/0xa0/0xa1 accepted", 1);

    check("unused port 0xe0: 8-, 16- and 32-bit reads return all ones",
          inb(0xe0) == 0xff && inw(0xe0) == 0xffff && inl(0xe0) == 0xffffffffu);
}

/* ---------------------------------------------------------------- xAPIC */

static volatile u32 *apic_reg(u32 off) { return (volatile u32 *)(uintptr_t)(0xfee00000ull + off); }

static int icr_idle(void)
{
    for (int i = 0; i < 100000; i++)
        if (!(*apic_reg(0x300) & (1u << 12)))
            return 1;
    return 0;
}

static void test_apic(void)
{
    u32 a, b, c, d;
    cpuid(1, 0, &a, &b, &c, &d);
    if (!check("CPUID.1:EDX.APIC is set", (d >> 9) & 1))
        return;
    u64 base = rdmsr(0x1b);
    check("IA32_APIC_BASE: base 0xFEE00000, global enable, BSP", (base & 0xfffff000ull) == 0xfee00000ull &&
                                                                     (base & (1u << 11)) && (base & (1u << 8)));
    check_eq("APIC ID register: ID 0 (bits 31:24)", *apic_reg(0x20) >> 24, 0);
    u32 ver = *apic_reg(0x30);
    check("APIC version register: integrated APIC (0x10..0x1f), at least 3 LVT entries",
          (ver & 0xff) >= 0x10 && (ver & 0xff) <= 0x1f && ((ver >> 16) & 0xff) >= 2);
    *apic_reg(0xf0) = 0x1ff;
    check_eq("SPIV: software enable + vector 0xff reads back", *apic_reg(0xf0) & 0x1ff, 0x1ff);
    *apic_reg(0xb0) = 0; /* EOI with nothing in service: harmless */
    *apic_reg(0x310) = 0x0f000000u; /* destination: APIC ID 15 (absent) */
    *apic_reg(0x300) = 0x00004500u; /* INIT, level assert, physical */
    int idle = icr_idle();
    *apic_reg(0x300) = 0x00004610u; /* SIPI, vector 0x10 */
    idle &= icr_idle();
    check("ICR: INIT and SIPI to an absent APIC ID; delivery status reads idle", idle);
    check_eq("ICR high: the destination field reads back", *apic_reg(0x310) >> 24, 0x0f);
}

/* ---------------------------------------------------------------- CPUID vs CR4/EFER */

static int try_cr4(u64 v)
{
    u64 at;
    trap_reset();
    __asm__ volatile(TRAP_PROBE_BEGIN "mov %[v], %%cr4" TRAP_PROBE_END : [at] "=&r"(at) : [v] "r"(v) : "r11", "memory");
    return trap_last.count == 0;
}

static int try_wrmsr(u32 msr, u64 v)
{
    u64 at;
    trap_reset();
    __asm__ volatile(TRAP_PROBE_BEGIN "wrmsr" TRAP_PROBE_END
                     : [at] "=&r"(at) : "c"(msr), "a"((u32)v), "d"((u32)(v >> 32)) : "r11", "memory");
    return trap_last.count == 0;
}

static int gp0(void) { return trap_last.count == 1 && trap_last.vector == 13 && trap_last.err == 0; }

static u32 leaf1_ecx, leaf1_edx, leaf7_ebx, leaf7_ecx, ext_ecx, ext_edx;

enum { R_1C, R_1D, R_7B, R_7C, R_X };
struct cr4_feature {
    int bit;
    const char *name;
    int reg, cbit; /* the CPUID bit that advertises it (R_X: always architectural) */
};
static const struct cr4_feature cr4_features[] = {
    {0, "VME", R_1D, 1},       {1, "PVI", R_1D, 1},       {2, "TSD", R_1D, 4},       {3, "DE", R_1D, 2},
    {4, "PSE", R_1D, 3},       {6, "MCE", R_1D, 7},       {7, "PGE", R_1D, 13},      {8, "PCE", R_X, 0},
    {9, "OSFXSR", R_1D, 24},   {10, "OSXMMEXCPT", R_1D, 25}, {11, "UMIP", R_7C, 2},  {12, "LA57", R_7C, 16},
    {13, "VMXE", R_1C, 5},     {14, "SMXE", R_1C, 6},     {16, "FSGSBASE", R_7B, 0}, {17, "PCIDE", R_1C, 17},
    {18, "OSXSAVE", R_1C, 26}, {20, "SMEP", R_7B, 7},     {21, "SMAP", R_7B, 20},    {22, "PKE", R_7C, 3},
    {23, "CET", R_7C, 7},      {24, "PKS", R_7C, 31},
};

static int advertised(const struct cr4_feature *f)
{
    u32 r = f->reg == R_1C ? leaf1_ecx : f->reg == R_1D ? leaf1_edx : f->reg == R_7B ? leaf7_ebx : f->reg == R_7C ? leaf7_ecx : ~0u;
    return (r >> f->cbit) & 1;
}

/* What the feature does once enabled; returns 1 if it behaved. Runs with the bit set. */
static int feature_works(int bit)
{
    u64 v;
    int ok;
    switch (bit) {
    case 2: /* TSD: rdtsc in ring 3 faults #GP(0) */
        trap_reset();
        return !user_exec(TEST_VA + OFF_RDTSC) && gp0();
    case 11: /* UMIP: sgdt in ring 3 faults #GP(0) */
        trap_reset();
        return !user_exec(TEST_VA + OFF_SGDT) && gp0();
    case 16: { /* FSGSBASE: wrfsbase/rdfsbase agree with the FS_BASE MSR */
        u64 want = 0x123456789000ull, got;
        __asm__ volatile("wrfsbase %0" : : "r"(want));
        __asm__ volatile("rdfsbase %0" : "=r"(got));
        ok = got == want && rdmsr(MSR_FS_BASE) == want;
        __asm__ volatile("wrfsbase %0" : : "r"(0ull));
        return ok;
    }
    case 17: /* PCIDE: CR3 keeps a PCID in bits 11:0 */
        write_cr3(pml4 | 1);
        ok = (read_cr3() & 0xfff) == 1;
        write_cr3(pml4 | (1ull << 63)); /* PCID 0, no flush */
        ok &= read_cr3() == pml4;
        write_cr3(pml4);
        return ok;
    case 18: { /* OSXSAVE: xgetbv works, CPUID.1:ECX.OSXSAVE mirrors the bit */
        u32 lo, hi, a, b, c, d;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        cpuid(1, 0, &a, &b, &c, &d);
        return (lo & 1) && ((c >> 27) & 1);
    }
    case 20: /* SMEP: a ring-0 fetch from a user page faults 0x11 */
        trap_reset();
        return !probe_exec(TEST_VA + OFF_RET) && trap_last.vector == 14 && trap_last.err == 0x11 &&
               trap_last.cr2 == TEST_VA + OFF_RET;
    case 21: /* SMAP: a ring-0 read of a user page faults 0x1; with EFLAGS.AC (stac) it works */
        trap_reset();
        ok = !probe_read64(TEST_VA + 0x800, &v) && trap_last.vector == 14 && trap_last.err == 0x1;
        __asm__ volatile("stac" ::: "cc");
        trap_reset();
        ok &= probe_read64(TEST_VA + 0x800, &v) && v == 0x5a5a5a5a5a5a5a5aull;
        __asm__ volatile("clac" ::: "cc");
        return ok;
    case 22: /* PKE: key 1 access-disabled in PKRU: a ring-3 read faults P|U|PK (0x25) */
        __asm__ volatile("wrpkru" : : "a"(0x4u), "c"(0), "d"(0));
        trap_reset();
        ok = !user_read64(KEY_VA, &v) && trap_last.vector == 14 && trap_last.err == 0x25;
        __asm__ volatile("wrpkru" : : "a"(0u), "c"(0), "d"(0));
        trap_reset();
        ok &= user_read64(KEY_VA, &v);
        return ok;
    default:
        return 1;
    }
}

static void test_cr4(void)
{
    u64 cr4 = read_cr4();
    char name[112];
    for (unsigned i = 0; i < sizeof cr4_features / sizeof cr4_features[0]; i++) {
        const struct cr4_feature *f = &cr4_features[i];
        u64 m = 1ull << f->bit;
        int ok;
        if (f->bit == 12) { /* LA57 cannot change while EFER.LMA = 1, advertised or not */
            if (advertised(f) || sdm_mode)
                ok = !try_cr4(cr4 | m) && gp0();
            else
                ok = 1; /* QEMU 7.2 hangs on this write */
            snprintf(name, sizeof name, "CR4.LA57: setting it in long mode raises #GP(0)%s",
                     sdm_mode ? "" : " (if not advertised: sdm only)");
            check(name, ok);
            continue;
        }
        if (advertised(f)) {
            ok = (cr4 & m) || try_cr4(cr4 | m);
            ok = ok && (read_cr4() & m) && feature_works(f->bit);
            if (!(cr4 & m))
                ok &= try_cr4(cr4) && !(read_cr4() & m);
        } else if (sdm_mode) {
            ok = !try_cr4(cr4 | m) && gp0() && read_cr4() == cr4;
        } else {
            ok = 1; /* not probed: QEMU 7.2 hangs on reserved CR4 writes */
        }
        if (sdm_mode)
            snprintf(name, sizeof name, "CR4.%s: settable, clearable and working if advertised, #GP(0) if not", f->name);
        else
            snprintf(name, sizeof name, "CR4.%s: settable, clearable and working if advertised (#GP if not: sdm only)",
                     f->name);
        check(name, ok);
        write_cr4(cr4);
    }
    trap_reset();
}

struct efer_feature {
    int bit;
    const char *name;
    int reg, cbit;
};
static const struct efer_feature efer_features[] = {
    {0, "SCE", 1, 11}, {11, "NXE", 1, 20}, {12, "SVME", 0, 2}, {13, "LMSLE", 2, 0}, {14, "FFXSR", 1, 25},
    {15, "TCE", 0, 17},
};

static void test_efer(void)
{
    u64 efer = rdmsr(MSR_EFER);
    char name[112];
    for (unsigned i = 0; i < sizeof efer_features / sizeof efer_features[0]; i++) {
        const struct efer_feature *f = &efer_features[i];
        int adv = f->reg == 0 ? (ext_ecx >> f->cbit) & 1 : f->reg == 1 ? (ext_edx >> f->cbit) & 1 : 0;
        u64 m = 1ull << f->bit;
        int ok, accepted = try_wrmsr(MSR_EFER, efer | m);
        int stuck = (rdmsr(MSR_EFER) & m) != 0;
        if (adv)
            ok = accepted && stuck;
        else if (sdm_mode)
            ok = !accepted && gp0() && !stuck;
        else
            ok = !stuck; /* SDM: #GP; QEMU 7.2 ignores the write. Either way the bit must not stick. */
        wrmsr(MSR_EFER, efer);
        snprintf(name, sizeof name, "EFER.%s: sticks if advertised, %s if not", f->name,
                 sdm_mode ? "#GP(0)" : "never sticks");
        check(name, ok);
    }
    trap_reset();
}

void kmain(uint32_t magic, uint32_t mbi_addr)
{
    serial_init();
    exit_port_width = 4; /* the final isa-debug-exit write is an outl */
    puts("pc-contract: multiboot, fw_cfg, CPUID vs CR4/EFER, xAPIC, 16550, PIC, unused ports");
    const struct multiboot_info *mbi = (const struct multiboot_info *)(uintptr_t)mbi_addr;
    const char *cl = cmdline_get(mbi);
    sdm_mode = cmdline_has(cl, "sdm");
    if (sdm_mode)
        puts("sdm: probing writes of unadvertised CR4/EFER bits (QEMU 7.2 hangs on the CR4 ones)");
    test_multiboot(magic, mbi);
    test_platform(cl);

    trap_init();
    palloc_init(0x400000, 0x800000);
    trap_user_setup(palloc_page);
    pml4 = as_create(TRAP_USER_PML4_SLOT, trap_user_pml4e());
    test_pte = pt_entry(pml4, TEST_VA, 1, 1, PTE_P | PTE_RW | PTE_US);
    *test_pte = TEST_PA | PTE_P | PTE_RW | PTE_US;
    key_pte = pt_entry(pml4, KEY_VA, 1, 1, PTE_P | PTE_RW | PTE_US);
    *key_pte = KEY_PA | PTE_P | PTE_RW | PTE_US | (1ull << 59); /* protection key 1 */
    u8 *code = (u8 *)(uintptr_t)TEST_PA;
    memset(code, 0xcc, 4096);
    code[OFF_RET] = 0xc3;
    static const u8 sgdt_int80[] = {0x0f, 0x01, 0x44, 0x24, 0xf0, 0xcd, 0x80}; /* sgdt -16(%rsp); int $0x80 */
    static const u8 rdtsc_int80[] = {0x0f, 0x31, 0xcd, 0x80};
    memcpy(code + OFF_SGDT, sgdt_int80, sizeof sgdt_int80);
    memcpy(code + OFF_RDTSC, rdtsc_int80, sizeof rdtsc_int80);
    memset(code + 0x800, 0x5a, 0x800);
    memset((void *)(uintptr_t)KEY_PA, 0, 4096);
    write_cr3(pml4);
    wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_NXE);
    write_cr0(read_cr0() | CR0_WP); /* CR4.CET can only be set with CR0.WP = 1 */

    u32 a, b, max;
    cpuid(0, 0, &max, &b, &a, &a);
    cpuid(1, 0, &a, &b, &leaf1_ecx, &leaf1_edx);
    if (max >= 7)
        cpuid(7, 0, &a, &leaf7_ebx, &leaf7_ecx, &b);
    cpuid(0x80000001u, 0, &a, &b, &ext_ecx, &ext_edx);
    check("CPUID: LM, NX and SYSCALL advertised", (ext_edx >> 29 & 1) && (ext_edx >> 20 & 1) && (ext_edx >> 11 & 1));
    test_cr4();
    test_efer();
    write_cr3((u64)(uintptr_t)boot_pml4);

    test_apic();
    check_eq("no unexpected exceptions", trap_last.count, 0);
    check_finish();
}
