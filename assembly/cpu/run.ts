// The vCPU run loop: run(budget) interprets until an exit (KVM_RUN's
// analogue). Faults are delivered here; IN/MMIO reads abort and restart;
// OUT/MMIO writes/HLT retire and then exit.
import {
  VCPU, VCPU_HALTED, VCPU_PENDING_IRQ, VCPU_INTR_SHADOW, EXIT_REASON, EXIT_INTERNAL_RIP, EXIT_INTERNAL_SUBERROR,
  EXIT_INTERNAL_LEN, EXIT_INTERNAL_BYTES, EXIT_SHUTDOWN_VECTOR, EXIT_BUDGET, EXIT_SHUTDOWN, EXIT_INTERNAL_ERROR,
  EXIT_HLT, INTERNAL_UNIMPLEMENTED, IF, SEG_CS, rip, set_rip, seg_base, stat_inc, stat_add,
  icount_inc, icount_load, icount_store, icount,
} from "./state";
import { flags_sync_in, flags_sync_out, get_eflags } from "./flags";
import { update_mode, mode64 } from "./mode";
import { decode, next_ip, opcode, lock, mod_, ip_start } from "./decode";
import { pause_count_reset } from "./mov";
import { dispatch } from "./dispatch";
import { faulted, clear_fault, exc_vector, exc_code, exc_has_code, exc_cr2, ABORT, UNIMPLEMENTED, PF_VEC } from "./fault";
import { deliver_exception, external_interrupt, triple_fault, triple_fault_vector, clear_triple_fault, set_pending_cr2 } from "./interrupt";
import { exit_pending, set_exit_pending, fetch_translate } from "./mem";
import { links_invalidate, emul_forget } from "../mmu/tlb";
import { walk_set_ac } from "../mmu/walk";
import { rep_begin, rep_extra_steps, rep_yielded } from "./string";
import { STAT_EXITS, STAT_HOST_EXITS, STAT_BUDGET_EXITS, STAT_INTERRUPTS, STAT_BLOCK_INSNS } from "../stats";
import { AC, EXIT_PT_WRITE, VCPU_KICK, VCPU_KEEP_LINKS } from "./state";
import { VMB, VM_BUS_LOCK } from "../vm";
import { VM_TLB_FLUSH_GEN, VM_MMU_RELOAD_GEN, MMU_TLB_FLUSH_GEN, MMU_RELOAD_GEN, VM_KNOB_BLOCK_CACHE } from "../mmu/layout";
import { kvm_check_tlb_and_reload_requests } from "../mmu/tlbflush";
import { blocks_run, block_next, blocks_run_begin } from "./block";

function record_unimplemented(at: u64): void {
  store<u64>(VCPU + EXIT_INTERNAL_RIP, at);
  store<u32>(VCPU + EXIT_INTERNAL_SUBERROR, INTERNAL_UNIMPLEMENTED);
  const base = mode64 ? 0 : seg_base(SEG_CS);
  let n = 0;
  clear_fault();
  for (; n < 15; n++) {
    const h = fetch_translate((base + at + <u64>n) & (mode64 ? <u64>-1 : 0xffffffff));
    if (h < 0) break;
    store<u8>(VCPU + EXIT_INTERNAL_BYTES + <usize>n, load<u8>(<usize>h));
  }
  clear_fault();
  store<u32>(VCPU + EXIT_INTERNAL_LEN, n);
}

// After an event delivery (exception or interrupt): a triple fault stops the
// vCPU (SHUTDOWN); a delivery that needs something not modelled (a task
// gate) or host data (an IDT in MMIO) leaves that raised; a page-table write
// before the fault or by the delivery must reach the host's pte-write policy
// before another instruction runs, and an MMIO write by the delivery (a
// frame pushed onto a stack in MMIO space) must reach the device: the exit
// struct holds one, so with several pushes only the last one is seen
// (test/fuzz/FINDINGS.md 9; the interrupt path lacked this check until the
// block compiler's differential, finding 15). 0 = carry on.
function after_delivery(at: u64): i32 {
  if (triple_fault) {
    store<u32>(VCPU + EXIT_SHUTDOWN_VECTOR, <u32>triple_fault_vector);
    return EXIT_SHUTDOWN;
  }
  if (!faulted()) return exit_pending;
  const v = exc_vector;
  clear_fault();
  if (v == UNIMPLEMENTED) { record_unimplemented(at); return EXIT_INTERNAL_ERROR; }
  return exit_pending != 0 ? exit_pending : EXIT_INTERNAL_ERROR;
}

// SMP requests are polled every SMP_POLL_MASK + 1 instructions (and at entry;
// with blocks, at the first block boundary past each multiple): a load of
// shared memory on every instruction cost ~30% of the MIPS, every 64 ~8%.
const SMP_POLL_MASK: u32 = 255;
// Returns true when a kick asks run() to return.
function smp_poll(): bool {
  if (atomic.load<u32>(VMB + VM_TLB_FLUSH_GEN) != load<u32>(VCPU + MMU_TLB_FLUSH_GEN) ||
      atomic.load<u32>(VMB + VM_MMU_RELOAD_GEN) != load<u32>(VCPU + MMU_RELOAD_GEN)) kvm_check_tlb_and_reload_requests();
  return atomic.load<u32>(VCPU + VCPU_KICK) != 0;
}

export function run(budget: i32): i32 {
  emul_forget(); // the emulated-write cache serves one execution of one instruction (mmu/tlb.ts)
  // memory may have changed outside run() (the loader, devices, tests): a
  // linked block's bytes are compared again, unless the host vouches for it
  if (load<u32>(VCPU + VCPU_KEEP_LINKS) == 0) links_invalidate();
  store<u32>(VCPU + VCPU_KEEP_LINKS, 0);
  blocks_run_begin();
  flags_sync_in();
  update_mode();
  walk_set_ac((get_eflags() & AC) != 0);
  icount_load();
  set_exit_pending(0);
  clear_fault();
  clear_triple_fault();
  stat_inc(STAT_HOST_EXITS);
  let reason = 0;
  pause_count_reset();
  smp_poll(); // requests raised while this vCPU was outside run() (vcpu_enter_guest's kvm_check_request)
  let next_poll = (icount | <u64>SMP_POLL_MASK) + 1;
  const blocks = load<u32>(VMB + VM_KNOB_BLOCK_CACHE) != 0;
  while (budget > 0) {
    // SMP: a kick from another thread ends the slice; remote TLB flush /
    // MMU reload requests (VM-wide generations, O(1) to raise) are serviced
    // before the next instruction (kvm_check_request at vcpu_enter_guest)
    if (icount >= next_poll) {
      next_poll = (icount | <u64>SMP_POLL_MASK) + 1;
      if (smp_poll()) break;
    }
    // external interrupt injection (between instructions, IF=1, no STI shadow)
    const irq = load<i32>(VCPU + VCPU_PENDING_IRQ);
    const shadow = load<u32>(VCPU + VCPU_INTR_SHADOW);
    if (irq >= 0 && shadow == 0 && (get_eflags() & IF) != 0) {
      store<i32>(VCPU + VCPU_PENDING_IRQ, -1);
      store<u32>(VCPU + VCPU_HALTED, 0);
      stat_inc(STAT_INTERRUPTS);
      external_interrupt(irq);
      reason = after_delivery(rip());
      if (reason != 0) break;
      continue;
    }
    if (load<u32>(VCPU + VCPU_HALTED) != 0) { reason = EXIT_HLT; break; }
    if (shadow != 0) store<u32>(VCPU + VCPU_INTR_SHADOW, 0);

    let at = rip();
    // cached blocks (block.ts), else the one instruction at RIP
    let alone = true;
    // the instruction in an STI / MOV SS shadow runs alone: an interrupt may
    // be deliverable right after it
    if (blocks && shadow == 0) {
      const n = blocks_run(at, budget, icount, next_poll);
      if (n != 0 || faulted()) {
        alone = false;
        stat_add(STAT_BLOCK_INSNS, <u64>n);
        budget -= n;
        if (faulted()) { at = ip_start; budget--; }
        else {
          set_rip(block_next);
          if (exit_pending != 0) { reason = exit_pending; break; }
          continue;
        }
      }
    }
    if (alone) {
      rep_begin(budget);
      if (decode(at)) {
        // a locked read-modify-write (LOCK prefix, or XCHG with memory) holds
        // the VM's bus lock: atomic with respect to the other vCPU threads
        if (lock || ((opcode & 0x1fe) == 0x86 && mod_ != 3)) {
          const bl = VMB + VM_BUS_LOCK;
          while (atomic.cmpxchg<u32>(bl, 0, 1) != 0) { /* another vCPU's locked instruction */ }
          dispatch(opcode);
          atomic.store<u32>(bl, 0);
        } else dispatch(opcode);
      }
      budget -= 1 + rep_extra_steps; // rep string steps count against the budget (string.ts)
      if (!faulted() && !rep_yielded) icount_inc();
    }
    if (faulted()) {
      const v = exc_vector;
      set_rip(at); // the instruction that faulted (a block ran ahead of RIP)
      if (v == ABORT) { clear_fault(); reason = exit_pending; break; }
      if (v == UNIMPLEMENTED) { record_unimplemented(at); reason = EXIT_INTERNAL_ERROR; break; }
      if (v == PF_VEC) set_pending_cr2(exc_cr2);
      deliver_exception(v, exc_has_code, exc_code, at);
      reason = after_delivery(at);
      if (reason != 0) break;
      continue;
    }
    set_rip(next_ip);
    if (exit_pending != 0) { reason = exit_pending; break; }
  }
  if (reason == 0) { reason = EXIT_BUDGET; stat_inc(STAT_BUDGET_EXITS); }
  else stat_inc(STAT_EXITS);
  icount_store();
  flags_sync_out();
  store<u32>(VCPU + EXIT_REASON, reason);
  return reason;
}
