/*
 * shadow86 instruction-semantics oracle: test-vector generator.
 *
 * The host CPU is the oracle.  Every "form" is ONE x86-64 instruction, written
 * in GNU-as Intel syntax in forms.h.  The assembler turns it into bytes at
 * build time (no hand encoding); at run time the bytes are copied into an
 * executable buffer followed by `ret`, and run_stub() (inline asm, below)
 * loads all 15 GPRs (not rsp) + RFLAGS from a struct, calls the instruction,
 * and stores GPRs + RFLAGS back.  64 random/edge cases per form are recorded
 * as JSON in ../data/<family>.json (format: ../README.md).
 *
 * ---------------------------------------------------------------------------
 * HOW TO ADD A FORM: add one line to forms.h, e.g.
 *
 *     F(G, 32, 0, "add ecx, ebx")
 *     F(G, 64, RDX, "mul qword ptr [rsi]")
 *     FN("shl eax, 1 (c1 /4 ib)", G, 32, 0, ".byte 0xc1, 0xe0, 0x01")
 *     FQ(HAS_LZCNT, BSF, 32, 0, "lzcnt eax, ecx")
 *
 *   F(kind, size, implicit_regs, "asm")        name = the asm text
 *   FN("name", kind, size, implicit_regs, "asm")  explicit name (raw .byte,
 *                                               {load}/{store} pseudo-prefixes)
 *   FQ(cpu_feature, kind, size, implicit_regs, "asm")  skipped if the host
 *                                               lacks the feature (recorded)
 *
 *   - The family (= output file) is the FAMILY macro in force at that line.
 *   - Registers named explicitly in the name/asm text (outside "(...)") are
 *     found automatically: they are listed in "regs" and get edge/random
 *     values of their own width (ah/ch/dh/bh = bits 8..15).
 *   - "byte/word/dword/qword ptr [rdi]" = dst buffer + 16 (rdi becomes a
 *     pointer), "[rsi]" = src buffer + 16.  Memory forms must use exactly
 *     [rdi] / [rsi] (no displacement or index).  lea never touches memory.
 *   - implicit_regs: registers the instruction uses but does not name (e.g.
 *     RDX for mul r64, RCX for rep).  size: operand width in bits used for
 *     the random values of the implicit registers.
 *   - kind: how inputs are chosen (G generic, SHCL shift count in CL, DIV /
 *     IDIV non-faulting dividend, BTM bit-string offset, BSF zero-heavy source,
 *     CMPX cmpxchg equal/not-equal, CX8 cmpxchg8b/16b, STR string ops with
 *     DF and small RCX, DFR generic + random DF).  See make_inputs().
 *
 * Safety nets (the generator aborts if any fails):
 *   - every GPR not listed in "regs" must be unchanged (write check);
 *   - each case is run twice with different values in unlisted GPRs and in
 *     the guard bytes around both buffers: the outputs must be identical
 *     (so the instruction reads nothing that is not recorded);
 *   - the guard bytes around the two 32-byte buffers must be intact.
 *
 * Build + run: make -C test/vectors/gen   (deterministic: fixed seed)
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

typedef uint64_t u64;
typedef uint8_t u8;
typedef unsigned __int128 u128;
typedef __int128 s128;

#define SEED 1
#define NCASES 64

/* ---- register numbering (x86 encoding order) ---- */
enum { R_RAX, R_RCX, R_RDX, R_RBX, R_RSP, R_RBP, R_RSI, R_RDI,
       R_R8, R_R9, R_R10, R_R11, R_R12, R_R13, R_R14, R_R15 };
#define RAX (1u << R_RAX)
#define RCX (1u << R_RCX)
#define RDX (1u << R_RDX)
#define RBX (1u << R_RBX)
#define RBP (1u << R_RBP)
#define RSI (1u << R_RSI)
#define RDI (1u << R_RDI)
#define R8 (1u << R_R8)
#define R9 (1u << R_R9)
#define R11 (1u << R_R11)
static const char *regname[16] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                                  "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"};

/* ---- input kinds ---- */
enum { G, SHCL, DIV, IDIV, BTM, BSF, CMPX, CX8, STR, DFR };

/* ---- cpu features ---- */
enum { HAS_NONE, HAS_POPCNT, HAS_LZCNT, HAS_BMI1, HAS_ADX, HAS_CX16, HAS_LAHF, HAS_MOVBE, HAS_BMI2, NFEAT };
static const char *featname[NFEAT] = {"", "POPCNT", "LZCNT (ABM)", "BMI1 (TZCNT)", "ADX", "CMPXCHG16B", "LAHF/SAHF in 64-bit mode", "MOVBE", "BMI2"};
static int feat[NFEAT];

struct form {
    int id;
    const char *family, *name;
    const u8 *code, *code_end;
    int kind, size;
    unsigned iregs;
    int req;
};

/* ---- the FORM machinery: bytes come from the assembler ---- */
#define FORM_(id, fam, nm, knd, sz, rg, rq, text)                                                      \
    __asm__(".pushsection .rodata.formcode,\"a\"\n"                                                     \
            "fcode_" #id ":\n.intel_syntax noprefix\n" text "\n.att_syntax prefix\nfcode_end_" #id ":\n" \
            ".popsection\n");                                                                           \
    extern const u8 fcode_##id[], fcode_end_##id[];                                                     \
    static const struct form fdesc_##id __attribute__((used, section("formtab"), aligned(8))) = {       \
        id, fam, nm, fcode_##id, fcode_end_##id, knd, sz, rg, rq};
#define FORM_X(id, ...) FORM_(id, __VA_ARGS__)
#define FORM(...) FORM_X(__COUNTER__, FAMILY, __VA_ARGS__)
#define F(kind, size, iregs, text) FORM(text, kind, size, iregs, HAS_NONE, text)
#define FN(name, kind, size, iregs, text) FORM(name, kind, size, iregs, HAS_NONE, text)
#define FQ(req, kind, size, iregs, text) FORM(text, kind, size, iregs, req, text)
#define FNQ(req, name, kind, size, iregs, text) FORM(name, kind, size, iregs, req, text)

#include "forms.h"

extern const struct form __start_formtab[], __stop_formtab[];

/* ---- the execution stub ---- */
u64 g_in[16], g_out[16], g_flags_in, g_flags_out;
void *g_code;
void run_stub(void);
__asm__(".text\n.globl run_stub\n.type run_stub,@function\nrun_stub:\n"
        "push %rbx\npush %rbp\npush %r12\npush %r13\npush %r14\npush %r15\n"
        "pushq g_flags_in(%rip)\n"
        "mov g_in+0(%rip),%rax\nmov g_in+8(%rip),%rcx\nmov g_in+16(%rip),%rdx\nmov g_in+24(%rip),%rbx\n"
        "mov g_in+40(%rip),%rbp\nmov g_in+48(%rip),%rsi\nmov g_in+56(%rip),%rdi\n"
        "mov g_in+64(%rip),%r8\nmov g_in+72(%rip),%r9\nmov g_in+80(%rip),%r10\nmov g_in+88(%rip),%r11\n"
        "mov g_in+96(%rip),%r12\nmov g_in+104(%rip),%r13\nmov g_in+112(%rip),%r14\nmov g_in+120(%rip),%r15\n"
        "popfq\n"
        "call *g_code(%rip)\n"
        "pushfq\n"
        "popq g_flags_out(%rip)\n"
        "mov %rax,g_out+0(%rip)\nmov %rcx,g_out+8(%rip)\nmov %rdx,g_out+16(%rip)\nmov %rbx,g_out+24(%rip)\n"
        "mov %rsp,g_out+32(%rip)\n"
        "mov %rbp,g_out+40(%rip)\nmov %rsi,g_out+48(%rip)\nmov %rdi,g_out+56(%rip)\n"
        "mov %r8,g_out+64(%rip)\nmov %r9,g_out+72(%rip)\nmov %r10,g_out+80(%rip)\nmov %r11,g_out+88(%rip)\n"
        "mov %r12,g_out+96(%rip)\nmov %r13,g_out+104(%rip)\nmov %r14,g_out+112(%rip)\nmov %r15,g_out+120(%rip)\n"
        "cld\n"
        "pop %r15\npop %r14\npop %r13\npop %r12\npop %rbp\npop %rbx\n"
        "ret\n.size run_stub,.-run_stub\n");

/* ---- deterministic PRNG ---- */
static u64 rng_state;
static u64 rnd(void) {
    u64 z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static unsigned rndn(unsigned n) { return (unsigned)(rnd() % n); }
static u64 maskb(int bits) { return bits >= 64 ? ~0ull : ((1ull << bits) - 1); }
static u64 sext(u64 v, int bits) { return bits >= 64 ? v : (v & (1ull << (bits - 1))) ? v | ~maskb(bits) : v & maskb(bits); }

/* an edge-case-heavy value of `bits` width (low bits only) */
static u64 edge(int bits) {
    u64 m = maskb(bits), sb = 1ull << (bits - 1);
    switch (rndn(24)) {
    case 0: return 0;
    case 1: return 1;
    case 2: return m;
    case 3: return sb;
    case 4: return sb - 1;
    case 5: return sb + 1;
    case 6: return m - 1;
    case 7: return rndn(16);
    case 8: return (sb - 1 - rndn(3)) & m;
    case 9: return (sb >> rndn(bits)) & m;
    case 10: return (m << rndn(bits)) & m;
    case 11: return m >> rndn(bits);
    case 12: return (m - rndn(16)) & m;
    case 13: return (sb + rndn(16)) & m;
    default: return rnd() & m;
    }
}
/* a 64-bit register value whose low `bits` are an edge value, upper bits random */
static u64 operand(int bits) { return (rnd() & ~maskb(bits)) | edge(bits); }

/* ---- parsing of explicit operands from the form text ---- */
struct slot { int mem; int reg, shift; int bits; int buf; /* 0 src, 1 dst */ };
struct pform {
    const struct form *f;
    const char *name;
    unsigned regs, ptrs; /* ptrs: rsi/rdi used as pointers */
    int nslots;
    struct slot slots[4];
    int is_lea;
};

static const struct { const char *n; int reg, bits, shift; } regtab[] = {
    {"rax", 0, 64, 0}, {"eax", 0, 32, 0}, {"ax", 0, 16, 0}, {"al", 0, 8, 0}, {"ah", 0, 8, 8},
    {"rcx", 1, 64, 0}, {"ecx", 1, 32, 0}, {"cx", 1, 16, 0}, {"cl", 1, 8, 0}, {"ch", 1, 8, 8},
    {"rdx", 2, 64, 0}, {"edx", 2, 32, 0}, {"dx", 2, 16, 0}, {"dl", 2, 8, 0}, {"dh", 2, 8, 8},
    {"rbx", 3, 64, 0}, {"ebx", 3, 32, 0}, {"bx", 3, 16, 0}, {"bl", 3, 8, 0}, {"bh", 3, 8, 8},
    {"rsp", 4, 64, 0}, {"esp", 4, 32, 0}, {"sp", 4, 16, 0}, {"spl", 4, 8, 0},
    {"rbp", 5, 64, 0}, {"ebp", 5, 32, 0}, {"bp", 5, 16, 0}, {"bpl", 5, 8, 0},
    {"rsi", 6, 64, 0}, {"esi", 6, 32, 0}, {"si", 6, 16, 0}, {"sil", 6, 8, 0},
    {"rdi", 7, 64, 0}, {"edi", 7, 32, 0}, {"di", 7, 16, 0}, {"dil", 7, 8, 0},
};

static int lookup_reg(const char *t, int *reg, int *bits, int *shift) {
    for (size_t i = 0; i < sizeof regtab / sizeof regtab[0]; i++)
        if (!strcmp(t, regtab[i].n)) { *reg = regtab[i].reg; *bits = regtab[i].bits; *shift = regtab[i].shift; return 1; }
    if (t[0] == 'r' && t[1] >= '0' && t[1] <= '9') {
        char *e;
        long n = strtol(t + 1, &e, 10);
        if (n < 8 || n > 15) return 0;
        *reg = (int)n; *shift = 0;
        if (!*e) { *bits = 64; return 1; }
        if (!strcmp(e, "d")) { *bits = 32; return 1; }
        if (!strcmp(e, "w")) { *bits = 16; return 1; }
        if (!strcmp(e, "b")) { *bits = 8; return 1; }
    }
    return 0;
}

static void die(const char *name, const char *msg) {
    fprintf(stderr, "gen: form '%s': %s\n", name, msg);
    exit(1);
}

static void parse_form(const struct form *f, struct pform *p) {
    memset(p, 0, sizeof *p);
    p->f = f;
    p->name = f->name;
    p->regs = f->iregs;
    const char *s = f->name;
    int depth = 0, ptrbits = 0;
    char tok[32];
    int first = 1;
    while (*s && *s != '(') {
        if (*s == '{') { while (*s && *s != '}') s++; if (*s) s++; continue; }
        if (*s == '[') {
            depth++;
            s++;
            /* memory operand: first token is the base */
            int n = 0;
            while (*s == ' ') s++;
            while ((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')) { if (n < 31) tok[n++] = *s; s++; }
            tok[n] = 0;
            int reg, bits, shift;
            if (!lookup_reg(tok, &reg, &bits, &shift)) continue;
            if (reg == R_RSP) die(f->name, "rsp not allowed");
            if (p->is_lea) {
                p->regs |= 1u << reg;
                if (p->nslots < 4) p->slots[p->nslots++] = (struct slot){0, reg, shift, bits, 0};
            } else {
                if (reg != R_RSI && reg != R_RDI) die(f->name, "memory base must be rsi or rdi");
                while (*s == ' ') s++;
                if (*s != ']') die(f->name, "memory operand must be exactly [rsi] or [rdi]");
                p->regs |= 1u << reg;
                p->ptrs |= 1u << reg;
                if (ptrbits && ptrbits <= 64) {
                    if (p->nslots >= 4) die(f->name, "too many slots");
                    p->slots[p->nslots++] = (struct slot){1, 0, 0, ptrbits, reg == R_RDI};
                }
            }
            continue;
        }
        if (*s == ']') { depth--; s++; ptrbits = 0; continue; }
        if ((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')) {
            int n = 0;
            while ((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')) { if (n < 31) tok[n++] = *s; s++; }
            tok[n] = 0;
            if (first) {
                first = 0;
                if (!strcmp(tok, "lea")) p->is_lea = 1;
            }
            if (!strcmp(tok, "byte")) ptrbits = 8;
            else if (!strcmp(tok, "word")) ptrbits = 16;
            else if (!strcmp(tok, "dword")) ptrbits = 32;
            else if (!strcmp(tok, "qword")) ptrbits = 64;
            else if (!strcmp(tok, "xmmword")) ptrbits = 128;
            int reg, bits, shift;
            if (lookup_reg(tok, &reg, &bits, &shift)) {
                if (reg == R_RSP) die(f->name, "rsp not allowed");
                p->regs |= 1u << reg;
                if (p->nslots >= 4) die(f->name, "too many slots");
                p->slots[p->nslots++] = (struct slot){0, reg, shift, bits, 0};
            }
            continue;
        }
        s++;
    }
    if (f->kind == STR) {
        /* string forms name their implicit pointer registers in iregs */
        p->ptrs |= f->iregs & (RSI | RDI);
    }
    if (p->regs & (1u << R_RSP)) die(f->name, "rsp not allowed");
}

/* ---- machine state ---- */
struct state {
    u64 r[16];
    u64 flags;
    u8 src[32], dst[32];
};

static u64 slot_get(const struct state *st, const struct slot *sl) {
    if (sl->mem) {
        const u8 *b = (sl->buf ? st->dst : st->src) + 16;
        u64 v = 0;
        memcpy(&v, b, sl->bits >= 64 ? 8 : sl->bits / 8);
        return v;
    }
    return (st->r[sl->reg] >> sl->shift) & maskb(sl->bits);
}
static void slot_set(struct state *st, const struct slot *sl, u64 v) {
    v &= maskb(sl->bits);
    if (sl->mem) {
        u8 *b = (sl->buf ? st->dst : st->src) + 16;
        memcpy(b, &v, sl->bits >= 64 ? 8 : sl->bits / 8);
        return;
    }
    u64 m = maskb(sl->bits) << sl->shift;
    st->r[sl->reg] = (st->r[sl->reg] & ~m) | (v << sl->shift);
}

#define GUEST_SRC 0x10000ull
#define GUEST_DST 0x20000ull
#define STATUS_FLAGS 0x8d5ull /* OF SF ZF AF PF CF */
#define DF_FLAG 0x400ull
#define OUT_MASK 0xcd7ull

static const int shift_counts[] = {0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 0x7f, 0x80, 0xff};

static int div_ok(s128 dividend, u64 d, int bits, int sgn, u128 udividend) {
    if (!sgn) {
        if (d == 0) return 0;
        u128 q = udividend / d;
        return q <= maskb(bits);
    }
    s128 sd = (s128)(int64_t)sext(d, bits);
    if (sd == 0) return 0;
    s128 lo = -((s128)1 << (bits - 1)), hi = ((s128)1 << (bits - 1)) - 1;
    if (sd == -1) return dividend >= -hi && dividend <= -lo;
    s128 q = dividend / sd;
    return q >= lo && q <= hi;
}

/* choose a non-faulting (dividend, divisor) and store them */
static void make_div(const struct pform *p, struct state *st, int sgn) {
    const struct form *f = p->f;
    int bits = f->size;
    const struct slot *ds = &p->slots[0];
    for (int tries = 0;; tries++) {
        if (tries > 1000) die(f->name, "could not find non-faulting division inputs");
        u64 d = edge(bits);
        if (d == 0) d = 1 + rndn(5);
        u128 ud = 0;
        s128 sdv = 0;
        int strat = rndn(4);
        u64 lo, hi;
        if (strat == 0 || strat == 1) {
            /* quotient-driven: q*d + r */
            u64 q = edge(bits);
            if (!sgn) {
                u64 r = rndn(3) == 0 ? d - 1 : (rndn(2) ? 0 : rnd() % d);
                ud = (u128)q * d + r;
            } else {
                s128 sq = (int64_t)sext(q, bits), sd = (int64_t)sext(d, bits);
                s128 ad = sd < 0 ? -sd : sd;
                s128 r = rndn(3) == 0 ? ad - 1 : (rndn(2) ? 0 : (s128)(rnd() % (u64)ad));
                s128 prod = sq * sd;
                if (prod < 0 || (prod == 0 && rndn(2))) r = -r;
                sdv = prod + r;
                ud = (u128)sdv;
            }
        } else if (strat == 2) {
            /* random low half, high half = small / sign extension */
            lo = edge(bits);
            if (!sgn) hi = rnd() % d;
            else hi = (lo >> (bits - 1)) & 1 ? maskb(bits) : 0;
            ud = ((u128)hi << bits) | lo;
        } else {
            lo = rnd() & maskb(bits);
            hi = rnd() & maskb(bits);
            ud = ((u128)hi << bits) | lo;
        }
        /* truncate to 2*bits and compute signed value */
        if (bits < 64) ud &= ((u128)1 << (2 * bits)) - 1;
        if (sgn) {
            if (bits < 64) {
                sdv = (s128)ud;
                if (ud >> (2 * bits - 1)) sdv -= (s128)1 << (2 * bits);
            } else sdv = (s128)ud;
        }
        if (!div_ok(sdv, d, bits, sgn, ud)) continue;
        lo = (u64)ud & maskb(bits);
        hi = (u64)(ud >> bits) & maskb(bits);
        if (bits == 8) {
            st->r[R_RAX] = (st->r[R_RAX] & ~0xffffull) | (hi << 8) | lo;
        } else {
            st->r[R_RAX] = (st->r[R_RAX] & ~maskb(bits)) | lo;
            st->r[R_RDX] = (st->r[R_RDX] & ~maskb(bits)) | hi;
        }
        /* the divisor slot may alias rax/rdx: re-check after writing */
        slot_set(st, ds, d);
        u64 d2 = slot_get(st, ds);
        u64 lo2 = bits == 8 ? st->r[R_RAX] & 0xff : st->r[R_RAX] & maskb(bits);
        u64 hi2 = bits == 8 ? (st->r[R_RAX] >> 8) & 0xff : st->r[R_RDX] & maskb(bits);
        u128 u2 = ((u128)hi2 << bits) | lo2;
        s128 s2 = (s128)u2;
        if (bits < 64 && (u2 >> (2 * bits - 1))) s2 -= (s128)1 << (2 * bits);
        if (div_ok(s2, d2, bits, sgn, u2)) return;
    }
}

static void make_inputs(const struct pform *p, struct state *st, int ci) {
    const struct form *f = p->f;
    memset(st, 0, sizeof *st);
    for (int r = 0; r < 16; r++)
        if (p->regs & (1u << r)) st->r[r] = operand(f->size);
    for (int i = 0; i < 32; i++) st->src[i] = (u8)rnd(), st->dst[i] = (u8)rnd();
    for (int i = 0; i < p->nslots; i++) slot_set(st, &p->slots[i], edge(p->slots[i].bits));
    /* the first cases are fixed corner combinations of the explicit operands:
       (0,0) (-1,-1) (MAX,1) (MIN,1) (MIN,MIN) (-1,1) (0,1) */
    if (ci < 7) {
        for (int i = 0; i < p->nslots; i++) {
            int b = p->slots[i].bits;
            u64 m = maskb(b), sb = 1ull << (b - 1);
            static const int pick0[7] = {0, 1, 2, 3, 3, 1, 0}; /* 0:zero 1:ones 2:max 3:min */
            static const int pickn[7] = {0, 1, 4, 4, 3, 4, 4}; /* 4: one */
            int k = i == 0 ? pick0[ci] : pickn[ci];
            u64 v = k == 0 ? 0 : k == 1 ? m : k == 2 ? sb - 1 : k == 3 ? sb : 1;
            slot_set(st, &p->slots[i], v);
        }
    }
    /* relate two same-width explicit operands now and then (equal, negated, ...) */
    else if (p->nslots >= 2 && rndn(4) == 0) {
        int a = rndn(p->nslots), b = rndn(p->nslots);
        if (a != b && p->slots[a].bits == p->slots[b].bits && p->slots[a].bits <= 64) {
            u64 v = slot_get(st, &p->slots[a]);
            switch (rndn(5)) {
            case 0: break;
            case 1: v = -v; break;
            case 2: v = ~v; break;
            case 3: v = v + 1; break;
            case 4: v = v - 1; break;
            }
            slot_set(st, &p->slots[b], v);
        }
    }
    st->flags = 0x2 | (rnd() & STATUS_FLAGS);
    if (f->kind == DFR) st->flags |= (ci & 1) ? DF_FLAG : 0;

    switch (f->kind) {
    case SHCL: {
        /* the first cases take the interesting counts in turn, then random ones */
        int s = f->size;
        int first[] = {0, 1, s - 1, s, s + 1, 2 * s, 31, 32, 33, 63, 64, 65, 0xff};
        int c = ci < (int)(sizeof first / sizeof first[0]) ? first[ci]
                : rndn(4) == 0                           ? (int)rndn(256)
                                                         : shift_counts[rndn(sizeof shift_counts / sizeof shift_counts[0])];
        st->r[R_RCX] = (st->r[R_RCX] & ~0xffull) | (u64)c;
        break;
    }
    case DIV: make_div(p, st, 0); break;
    case IDIV: make_div(p, st, 1); break;
    case BTM: {
        /* bit-string offset in the register operand (slot 1): keep the
           addressed unit inside dst (rdi = dst+16): offsets -128..127 */
        static const int offs[] = {-128, -127, -97, -65, -64, -63, -40, -33, -32, -31, -17, -16, -9, -8, -1,
                                   0, 1, 7, 8, 15, 16, 31, 32, 33, 63, 64, 65, 100, 126, 127};
        int no = (int)(sizeof offs / sizeof offs[0]);
        int o = ci < no ? offs[ci] : rndn(3) == 0 ? (int)rndn(256) - 128 : offs[rndn(no)];
        slot_set(st, &p->slots[1], (u64)(int64_t)o);
        break;
    }
    case BSF:
        if (ci < 3 || rndn(6) == 0) slot_set(st, &p->slots[p->nslots - 1], 0);
        break;
    case CMPX: {
        /* accumulator (rax low `size` bits) equal to the destination operand half of the time */
        if (ci & 1) {
            u64 v = slot_get(st, &p->slots[0]);
            st->r[R_RAX] = (st->r[R_RAX] & ~maskb(f->size)) | v;
        }
        break;
    }
    case CX8: {
        int half = f->size; /* 32 for cmpxchg8b, 64 for cmpxchg16b */
        if (ci % 3 == 0) {
            u64 lo = 0, hi = 0;
            memcpy(&lo, st->dst + 16, half / 8);
            memcpy(&hi, st->dst + 16 + half / 8, half / 8);
            st->r[R_RAX] = (st->r[R_RAX] & ~maskb(half)) | lo;
            st->r[R_RDX] = (st->r[R_RDX] & ~maskb(half)) | hi;
        } else if (ci % 3 == 1) {
            /* only the low half matches */
            u64 lo = 0;
            memcpy(&lo, st->dst + 16, half / 8);
            st->r[R_RAX] = (st->r[R_RAX] & ~maskb(half)) | lo;
        }
        break;
    }
    case STR: {
        /* size = element width; iregs says which of rsi/rdi/rcx/rax are used */
        int e = f->size / 8;
        int df = ci < 32 ? ci & 1 : (int)rndn(2);
        st->flags = (st->flags & ~DF_FLAG) | (df ? DF_FLAG : 0);
        int cap = df ? 16 / e + 1 : 16 / e;
        if (cap > 8) cap = 8;
        /* the first cases walk through every count for both directions */
        if (p->regs & RCX) st->r[R_RCX] = ci < 32 ? (u64)((ci / 2) % (cap + 1)) : rndn(cap + 1);
        /* make the buffers partly equal so repe/repne stop at different places */
        if (rndn(2)) {
            memcpy(st->dst, st->src, 32);
            int k = rndn(4);
            for (int i = 0; i < k; i++) st->dst[rndn(32)] ^= (u8)(1 + rndn(255));
        }
        if (rndn(2)) {
            /* accumulator equal to some element of dst (scas) */
            int idx = rndn(cap);
            int off = df ? 16 - idx * e : 16 + idx * e;
            u64 v = 0;
            memcpy(&v, st->dst + off, e);
            st->r[R_RAX] = (st->r[R_RAX] & ~maskb(f->size)) | v;
        }
        break;
    }
    default: break;
    }
}

/* ---- running one case (twice, to detect hidden dependencies) ---- */
static u8 *arena; /* [guard 256][src 32][guard 224][dst 32][guard ...] */
#define SRC_OFF 256
#define DST_OFF 512
#define ARENA 1024
static u8 *jit;

static u64 pattern(int pass, int r) {
    u64 v = 0x0101010101010101ull * (u64)(0x11 * (r + 1) & 0xff);
    return pass ? ~v ^ 0x5a5a000000005a5aull : v;
}

static void exec_case(const struct pform *p, const struct state *in, struct state *out) {
    const struct form *f = p->f;
    u8 *hsrc = arena + SRC_OFF, *hdst = arena + DST_OFF;
    struct state res[2];
    for (int pass = 0; pass < 2; pass++) {
        u8 gfill = pass ? 0xa5 : 0x3c;
        memset(arena, gfill, ARENA);
        memcpy(hsrc, in->src, 32);
        memcpy(hdst, in->dst, 32);
        for (int r = 0; r < 16; r++) {
            if (r == R_RSP) continue;
            if (p->regs & (1u << r)) {
                u64 v = in->r[r];
                if (p->ptrs & (1u << r)) v = (u64)(uintptr_t)(r == R_RSI ? hsrc + 16 : hdst + 16);
                g_in[r] = v;
            } else g_in[r] = pattern(pass, r);
        }
        g_flags_in = in->flags;
        run_stub();
        struct state *o = &res[pass];
        memset(o, 0, sizeof *o);
        for (int r = 0; r < 16; r++) {
            if (r == R_RSP) continue;
            if (p->regs & (1u << r)) {
                u64 v = g_out[r];
                if (p->ptrs & (1u << r)) {
                    u8 *base = r == R_RSI ? hsrc : hdst;
                    int64_t delta = (int64_t)(v - (u64)(uintptr_t)base);
                    if (delta < -256 || delta > 256) die(f->name, "pointer register left the buffer");
                    v = (r == R_RSI ? GUEST_SRC : GUEST_DST) + (u64)delta;
                }
                o->r[r] = v;
            } else if (g_out[r] != pattern(pass, r)) {
                fprintf(stderr, "register %s changed\n", regname[r]);
                die(f->name, "an unlisted register was modified");
            }
        }
        o->flags = g_flags_out & OUT_MASK;
        memcpy(o->src, hsrc, 32);
        memcpy(o->dst, hdst, 32);
        for (int i = 0; i < ARENA; i++) {
            if ((i >= SRC_OFF && i < SRC_OFF + 32) || (i >= DST_OFF && i < DST_OFF + 32)) continue;
            if (arena[i] != gfill) die(f->name, "memory outside the 32-byte buffers was written");
        }
    }
    if (memcmp(&res[0], &res[1], sizeof res[0])) die(f->name, "result depends on an unlisted register or on memory outside the buffers");
    *out = res[0];
}

/* ---- JSON output ---- */
static void put_hex(FILE *fp, u64 v) { fprintf(fp, "\"0x%llx\"", (unsigned long long)v); }
static void put_buf(FILE *fp, const u8 *b) {
    fputc('"', fp);
    for (int i = 0; i < 32; i++) fprintf(fp, "%02x", b[i]);
    fputc('"', fp);
}
static void put_state(FILE *fp, const struct pform *p, const struct state *s, int is_in) {
    int first = 1;
    fputc('{', fp);
    for (int r = 0; r < 16; r++)
        if (p->regs & (1u << r)) {
            u64 v = s->r[r];
            if (is_in && (p->ptrs & (1u << r))) v = (r == R_RSI ? GUEST_SRC : GUEST_DST) + 16;
            fprintf(fp, "%s\"%s\":", first ? "" : ",", regname[r]);
            put_hex(fp, v);
            first = 0;
        }
    fprintf(fp, "%s\"rflags\":", first ? "" : ",");
    put_hex(fp, s->flags);
    if (p->ptrs) {
        fprintf(fp, ",\"dst\":");
        put_buf(fp, s->dst);
        fprintf(fp, ",\"src\":");
        put_buf(fp, s->src);
    }
    fputc('}', fp);
}

static void json_str(FILE *fp, const char *s) {
    fputc('"', fp);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', fp);
        fputc(*s, fp);
    }
    fputc('"', fp);
}

static u64 fnv(const char *s) {
    u64 h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (u8)*s) * 0x100000001b3ull;
    return h;
}

static char host_cpu[256];
static void detect_cpu(void) {
    unsigned a, b, c, d;
    char brand[49] = {0}, vendor[13] = {0};
    __cpuid(0, a, b, c, d);
    memcpy(vendor, &b, 4), memcpy(vendor + 4, &d, 4), memcpy(vendor + 8, &c, 4);
    unsigned maxext;
    __cpuid(0x80000000, maxext, b, c, d);
    if (maxext >= 0x80000004) {
        for (unsigned i = 0; i < 3; i++) {
            __cpuid(0x80000002 + i, a, b, c, d);
            memcpy(brand + 16 * i, &a, 4), memcpy(brand + 16 * i + 4, &b, 4);
            memcpy(brand + 16 * i + 8, &c, 4), memcpy(brand + 16 * i + 12, &d, 4);
        }
    }
    char *bp = brand;
    while (*bp == ' ') bp++;
    __cpuid(1, a, b, c, d);
    unsigned fam = (a >> 8) & 0xf, model = (a >> 4) & 0xf, step = a & 0xf;
    if (fam == 0xf) fam += (a >> 20) & 0xff;
    if (fam == 6 || fam >= 0xf) model |= ((a >> 16) & 0xf) << 4;
    snprintf(host_cpu, sizeof host_cpu, "%s (%s family %u model %u stepping %u)", bp, vendor, fam, model, step);
    feat[HAS_NONE] = 1;
    feat[HAS_POPCNT] = (c >> 23) & 1;
    feat[HAS_CX16] = (c >> 13) & 1;
    feat[HAS_MOVBE] = (c >> 22) & 1;
    if (maxext >= 0x80000001) {
        __cpuid(0x80000001, a, b, c, d);
        feat[HAS_LAHF] = c & 1;
        feat[HAS_LZCNT] = (c >> 5) & 1;
    }
    __cpuid(0, a, b, c, d);
    if (a >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        feat[HAS_BMI1] = (b >> 3) & 1;
        feat[HAS_BMI2] = (b >> 8) & 1;
        feat[HAS_ADX] = (b >> 19) & 1;
    }
}

static int cmp_form(const void *a, const void *b) {
    const struct form *x = *(const struct form *const *)a, *y = *(const struct form *const *)b;
    return x->id - y->id;
}

int main(int argc, char **argv) {
    const char *outdir = argc > 1 ? argv[1] : "../data";
    const char *listing = argc > 2 ? argv[2] : NULL;
    detect_cpu();
    arena = aligned_alloc(64, ARENA);
    jit = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (jit == MAP_FAILED) { perror("mmap"); return 1; }
    g_code = jit;

    size_t nf = (size_t)(__stop_formtab - __start_formtab);
    const struct form **fs = malloc(nf * sizeof *fs);
    for (size_t i = 0; i < nf; i++) fs[i] = &__start_formtab[i];
    qsort(fs, nf, sizeof *fs, cmp_form);
    for (size_t i = 0; i < nf; i++)
        for (size_t j = i + 1; j < nf; j++)
            if (!strcmp(fs[i]->name, fs[j]->name)) die(fs[i]->name, "duplicate form name");

    FILE *lst = listing ? fopen(listing, "w") : NULL;
    size_t total_forms = 0, total_cases = 0;
    /* families in order of first appearance */
    const char *fams[64];
    int nfam = 0;
    for (size_t i = 0; i < nf; i++) {
        int k;
        for (k = 0; k < nfam; k++)
            if (!strcmp(fams[k], fs[i]->family)) break;
        if (k == nfam) fams[nfam++] = fs[i]->family;
    }
    for (int k = 0; k < nfam; k++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s.json", outdir, fams[k]);
        FILE *fp = fopen(path, "w");
        if (!fp) { perror(path); return 1; }
        fprintf(fp, "{\"generator\":\"test/vectors/gen/gen.c\",\n\"host_cpu\":");
        json_str(fp, host_cpu);
        fprintf(fp, ",\n\"seed\":%d,\n\"notes\":\"values are 0x-prefixed lower-case hex without leading zeros (compare numerically); "
                    "rsi/rdi pointers normalised to src=0x10000, dst=0x20000 (+16 on input); out rflags masked with 0xcd7\",\n",
                SEED);
        fprintf(fp, "\"host_features\":{");
        for (int q = 1; q < NFEAT; q++) {
            fprintf(fp, "%s", q > 1 ? "," : "");
            json_str(fp, featname[q]);
            fprintf(fp, ":%s", feat[q] ? "true" : "false");
        }
        fprintf(fp, "},\n\"skipped\":[");
        int nsk = 0;
        for (size_t i = 0; i < nf; i++) {
            const struct form *f = fs[i];
            if (strcmp(f->family, fams[k]) || feat[f->req]) continue;
            fprintf(fp, "%s{\"name\":", nsk++ ? "," : "");
            json_str(fp, f->name);
            fprintf(fp, ",\"reason\":\"host lacks %s\"}", featname[f->req]);
            fprintf(stderr, "skipped '%s': host lacks %s\n", f->name, featname[f->req]);
        }
        fprintf(fp, "],\n\"forms\":[\n");
        int nform = 0;
        size_t fam_cases = 0;
        for (size_t i = 0; i < nf; i++) {
            const struct form *f = fs[i];
            if (strcmp(f->family, fams[k]) || !feat[f->req]) continue;
            struct pform p;
            parse_form(f, &p);
            size_t len = (size_t)(f->code_end - f->code);
            if (len == 0 || len > 15) die(f->name, "bad code length");
            memcpy(jit, f->code, len);
            jit[len] = 0xc3;
            rng_state = (u64)SEED * 0x9e3779b97f4a7c15ull ^ fnv(f->name);
            fprintf(fp, "%s{\"name\":", nform++ ? ",\n" : "");
            json_str(fp, f->name);
            fprintf(fp, ",\"bytes\":\"");
            for (size_t b = 0; b < len; b++) fprintf(fp, "%02x", f->code[b]);
            fprintf(fp, "\",\"regs\":[");
            int fr = 1;
            for (int r = 0; r < 16; r++)
                if (p.regs & (1u << r)) fprintf(fp, "%s\"%s\"", fr ? "" : ",", regname[r]), fr = 0;
            fprintf(fp, "],\"cases\":[\n");
            if (lst) {
                fprintf(lst, "%-8s ", f->family);
                for (size_t b = 0; b < len; b++) fprintf(lst, "%02x", f->code[b]);
                fprintf(lst, "%*s %s   regs:", (int)(2 * (15 - len)), "", f->name);
                for (int r = 0; r < 16; r++)
                    if (p.regs & (1u << r)) fprintf(lst, " %s%s", regname[r], (p.ptrs & (1u << r)) ? "*" : "");
                fprintf(lst, "\n");
            }
            for (int c = 0; c < NCASES; c++) {
                struct state in, out;
                make_inputs(&p, &in, c);
                exec_case(&p, &in, &out);
                fprintf(fp, "{\"in\":");
                put_state(fp, &p, &in, 1);
                fprintf(fp, ",\"out\":");
                put_state(fp, &p, &out, 0);
                fprintf(fp, "}%s\n", c + 1 < NCASES ? "," : "");
            }
            fprintf(fp, "]}");
            fam_cases += NCASES;
        }
        fprintf(fp, "\n]}\n");
        fclose(fp);
        printf("%-10s %4d forms %6zu cases  -> %s\n", fams[k], nform, fam_cases, path);
        total_forms += (size_t)nform;
        total_cases += fam_cases;
    }
    if (lst) fclose(lst);
    printf("total      %4zu forms %6zu cases  (host: %s)\n", total_forms, total_cases, host_cpu);
    return 0;
}
