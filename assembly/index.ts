// The module's exports, nothing else: the layout constants (one source of
// truth, read by src/core/layout.ts), binding to a vCPU / VM, and run().
export * from "./cpu/state";
export * from "./stats";
export * from "./trace";
export {
  VM_NR_SLOTS, VM_SLOTS, VM_MAX_SLOTS, MEMSLOT_SIZE, MEMSLOT_BASE_GFN, MEMSLOT_NPAGES, MEMSLOT_HOST,
  MEMSLOT_FLAGS, MEMSLOT_DIRTY_BITMAP, MEM_LOG_DIRTY_PAGES, MEM_READONLY, VM_SIZE,
} from "./vm";
export { run } from "./cpu/run";
export * from "./mmu/exports";
export * from "./mmu/pte_write"; // the pte-write rules' primitives (issue 5)
// SMP: the remote requests (KVM's kvm_flush_remote_tlbs / kvm_reload_remote_mmus) and their generations
export { VM_TLB_FLUSH_GEN, VM_MMU_RELOAD_GEN, MMU_TLB_FLUSH_GEN, MMU_RELOAD_GEN } from "./mmu/layout";
export { kvm_flush_remote_tlbs, kvm_reload_remote_mmus } from "./mmu/tlbflush";
export { VM_BUS_LOCK, VM_PLE_WINDOW } from "./vm";
export * from "./mmu/dirty_exports"; // memslots, dirty logging, write-protect-all (issue 8)
export { decode_length, decoded_field } from "./debug";
export { vcpu_bind, vm_bind, heap_base, memslots_changed, tlb_flush_all, mmu_reset_context } from "./bind";
// The block cache's records and the helpers compiled blocks call (src/jit/ reads these).
export { B_HOST, B_MODE, B_N, B_LEN, B_INSNS, B_UOPS, B_JIT, B_HOT, B_ITERS, U_KIND, U_OFF, U_A, U_B, U_VAL } from "./cpu/block";
export { UOP_GENERIC, UOP_NOP, UOP_MOV_RR64, UOP_MOV_RR32, UOP_MOV_RI, UOP_ALU_RR64, UOP_ALU_RR32, UOP_ALU_RI64, UOP_ALU_RI32, UOP_ALU_RM64, UOP_ALU_RM32, UOP_CMP_MI64, UOP_CMP_MI32, UOP_CMP_MI8, UOP_LOAD64, UOP_LOAD32, UOP_LOAD_ZX8, UOP_STORE64, UOP_STORE32, UOP_STORE8, UOP_MOV_MI64, UOP_MOV_MI32, UOP_MOV_MI8, UOP_LEA64, UOP_LEA32, UOP_MOVZX8_RR, UOP_JCC, UOP_JMP, UOP_CALL64, UOP_RET64, UOP_SHIFT64, UOP_SHIFT32, UOP_IMUL_RR64, UOP_IMUL_RR32, UOP_IMUL_RRI64, UOP_IMUL_RRI32, UOP_CMOV64, UOP_CMOV32, UOP_INC64, UOP_INC32, UOP_DEC64, UOP_DEC32, UOP_PUSH64, UOP_POP64, UOP_CQO, UOP_CDQE, UOP_NOT, UOP_DIV, UOP_IDIV, UOP_MOVSXD, UOP_ALU_RI8, UOP_FUSED_FIRST, UOP_FUSED_RR64, UOP_FUSED_RR32, UOP_FUSED_RI64, UOP_FUSED_RI32, UOP_FUSED_RI8, UOP_FUSED_MI8, UOP_FUSED_MI32, UOP_FUSED_MI64, UOP_FUSED_LAST, U_C, U_CC, U_JLEN, U_JSIZE, U_JREL, ALU_TEST } from "./cpu/uops";
export {
  IC_LEN, IC_OPCODE, IC_FLAGS, IC_OPSIZE, IC_ADDRSIZE, IC_BASE, IC_INDEX, IC_SCALE, IC_DISP, IC_SEG,
} from "./cpu/decode";
export { LF_ADD, LF_SUB, LF_LOGIC, lf_op, lf_size, lf_dst, lf_src, lf_res } from "./cpu/flags";
// the permission bits a load / store needs at the current CPL: compiled blocks test their TLB hits inline
export { tlb_need_r, tlb_need_w } from "./mmu/tlb";
export { ALU_ADD, ALU_OR, ALU_ADC, ALU_SBB, ALU_AND, ALU_SUB, ALU_XOR, ALU_CMP } from "./cpu/alu";
export { JIT_BRANCH_GP, JIT_STOP, jit_cond, jit_shift, jit_imul, jit_ld, jit_st, jit_div, jit_push, jit_pop, jit_call, jit_ret, jit_uop } from "./cpu/jit";
