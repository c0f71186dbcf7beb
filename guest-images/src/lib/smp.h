/* smp.h - what the SMP images share: finding the CPUs (ACPI MADT, fw_cfg), the local
 * xAPIC, starting APs with INIT-SIPI-SIPI through a real-mode trampoline copied to
 * 0x8000, a per-image IDT with IPI vectors, and lock cmpxchg spinlocks. */
#ifndef SMP_H
#define SMP_H
#include "libc.h"
#include "x86.h"

#define SMP_MAX_CPUS 8
#define SMP_TRAMP_BASE 0x8000 /* SIPI vector 0x08: CS = 0x0800, IP = 0 */

/* ---- finding the CPUs */
/* Local APIC IDs of the enabled processors in the ACPI MADT (RSDP found in the BIOS area
 * 0xE0000-0xFFFFF); returns the count, 0 if there is no valid RSDP/RSDT/MADT. */
int acpi_madt_cpus(u8 *apic_ids, int max);
int fwcfg_nb_cpus(void); /* FW_CFG_NB_CPUS (item 5) */

/* ---- the local xAPIC */
static inline volatile u32 *lapic_reg(u32 off) { return (volatile u32 *)(uintptr_t)(0xfee00000ull + off); }
static inline u32 lapic_read(u32 off) { return *lapic_reg(off); }
static inline void lapic_write(u32 off, u32 v) { *lapic_reg(off) = v; }
static inline u32 lapic_id(void) { return lapic_read(0x20) >> 24; }
static inline void lapic_eoi(void) { lapic_write(0xb0, 0); }
void lapic_enable(void); /* SVR: software enable, spurious vector 0xFF; TPR 0 */
#define ICR_FIXED 0x000
#define ICR_INIT 0x500
#define ICR_STARTUP 0x600
#define ICR_ASSERT (1u << 14)
#define ICR_SELF (1u << 18)
#define ICR_ALL_INCL (2u << 18)
#define ICR_ALL_EXCL (3u << 18)
void lapic_ipi(u32 dest_apic_id, u32 icr); /* waits for the delivery status to clear */

/* ---- CPUs */
extern volatile int smp_ncpus;             /* CPUs started so far (BSP included) */
extern u8 smp_apic_ids[SMP_MAX_CPUS];      /* by CPU index; index 0 is the BSP */
static inline int smp_cpu_index(void)
{
    u32 id = lapic_id();
    for (int i = 0; i < SMP_MAX_CPUS; i++)
        if (smp_apic_ids[i] == id)
            return i;
    return -1;
}
/* Start CPUs 1..n-1 (APIC IDs in smp_apic_ids) one by one; each runs ap_entry(index) on
 * its own 16 KiB stack with the BSP's CR3, GDT and IDT. Returns the number of CPUs that
 * came up (BSP included). */
int smp_start_aps(int n, void (*ap_entry)(int index));

/* ---- interrupts: one IDT for every CPU. Exceptions print a FAIL line and exit. */
void smp_idt_init(void);      /* builds the IDT and loads it on this CPU */
void smp_idt_load(void);      /* loads it on an AP */
void smp_set_handler(int vector, const void *handler); /* an __attribute__((interrupt)) function */

/* ---- spinlocks (lock cmpxchg) */
typedef volatile u32 spinlock_t;
static inline void spin_lock(spinlock_t *l)
{
    for (;;) {
        while (*l)
            __asm__ volatile("pause" ::: "memory");
        u32 expected = 0;
        u32 desired = 1;
        u8 ok;
        __asm__ volatile("lock cmpxchgl %3, %1; sete %0" : "=q"(ok), "+m"(*l), "+a"(expected) : "r"(desired) : "memory", "cc");
        if (ok)
            return;
    }
}
static inline void spin_unlock(spinlock_t *l) { __asm__ volatile("movl $0, %0" : "=m"(*l) : : "memory"); }
static inline u32 atomic_inc(volatile u32 *p) { u32 v = 1; __asm__ volatile("lock xaddl %0, %1" : "+r"(v), "+m"(*p) : : "memory"); return v + 1; }
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }
static inline void sti(void) { __asm__ volatile("sti" ::: "memory"); }
static inline void cli(void) { __asm__ volatile("cli" ::: "memory"); }
/* Wait (with interrupts on) until *p == v; 0 if it took longer than `spins` polls. */
int smp_wait_eq(volatile u32 *p, u32 v, u64 spins);

#endif
