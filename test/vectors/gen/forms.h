/*
 * The instruction forms.  One F()/FN()/FQ() per form; see the top of gen.c.
 * Helper macros below expand to several forms each (one per line).
 * Kinds: G generic, SHCL count in CL, DIV/IDIV, BTM bit-string offset,
 * BSF zero-heavy source, CMPX cmpxchg, CX8 cmpxchg8b/16b, STR string ops,
 * DFR generic with random DF.
 */

/* ======================================================================= */
#undef FAMILY
#define FAMILY "alu"

/* binary ALU op: i8 = imm8 (80/04), i8s = sign-extended imm8 (83),
   i16 = imm16 (81/05), i32 = imm32 (81/05), i32n = imm32 sign-extended to 64 */
#define ALU(op, i8, i8s, i16, i32, i32n)                                    \
    F(G, 8, 0, op " al, cl")                                                \
    F(G, 8, 0, op " ah, bh")                                                \
    F(G, 8, 0, op " dh, bl")                                                \
    F(G, 8, 0, op " sil, r9b")                                              \
    FN(op " r15b, bpl (load form)", G, 8, 0, "{load} " op " r15b, bpl")     \
    F(G, 16, 0, op " ax, dx")                                               \
    F(G, 16, 0, op " r12w, si")                                             \
    F(G, 32, 0, op " ecx, ebx")                                             \
    FN(op " edx, esi (load form)", G, 32, 0, "{load} " op " edx, esi")      \
    F(G, 32, 0, op " r8d, eax")                                             \
    F(G, 64, 0, op " rax, rbx")                                             \
    F(G, 64, 0, op " r10, r11")                                             \
    FN(op " rdx, rbp (load form)", G, 64, 0, "{load} " op " rdx, rbp")      \
    F(G, 8, 0, op " al, " i8)                                               \
    F(G, 8, 0, op " dl, " i8)                                               \
    F(G, 8, 0, op " r10b, " i8)                                             \
    F(G, 16, 0, op " ax, " i16)                                             \
    F(G, 16, 0, op " bx, " i8s)                                             \
    F(G, 16, 0, op " si, " i16)                                             \
    F(G, 32, 0, op " eax, " i32)                                            \
    F(G, 32, 0, op " ecx, " i8s)                                            \
    F(G, 32, 0, op " edi, " i32)                                            \
    F(G, 64, 0, op " rax, " i32n)                                           \
    F(G, 64, 0, op " rdx, " i8s)                                            \
    F(G, 64, 0, op " r9, " i32n)                                            \
    F(G, 8, 0, op " cl, byte ptr [rsi]")                                    \
    F(G, 64, 0, op " rax, qword ptr [rsi]")                                 \
    F(G, 16, 0, op " word ptr [rdi], dx")                                   \
    F(G, 32, 0, op " dword ptr [rdi], ebx")                                 \
    F(G, 8, 0, op " byte ptr [rdi], " i8)                                   \
    F(G, 64, 0, op " qword ptr [rdi], " i8s)

ALU("add", "0x7f", "-1", "0x8000", "0x80000000", "-0x80000000")
ALU("adc", "0x80", "127", "0x7fff", "0x7fffffff", "0x7fffffff")
ALU("sub", "1", "-128", "0x1234", "0x12345678", "0x12345678")
ALU("sbb", "0xff", "1", "0xff00", "0xdeadbeef", "-0x21524111")
ALU("and", "0x0f", "-16", "0xff00", "0x80000001", "-0x7ffffff0")
ALU("or", "0x80", "0x40", "0x8001", "0x40000000", "0x40000000")
ALU("xor", "0xff", "-1", "0xaaaa", "0xaaaaaaaa", "-0x55555556")
ALU("cmp", "0x7f", "-128", "0x8000", "0x80000000", "-0x80000000")

F(G, 64, 0, "lock add qword ptr [rdi], rax")
F(G, 32, 0, "lock adc dword ptr [rdi], ecx")
F(G, 16, 0, "lock sub word ptr [rdi], dx")
F(G, 64, 0, "lock sbb qword ptr [rdi], rbx")
F(G, 8, 0, "lock and byte ptr [rdi], cl")
F(G, 32, 0, "lock or dword ptr [rdi], 0x80000000")
F(G, 64, 0, "lock xor qword ptr [rdi], r8")

F(G, 8, 0, "sub ch, dh")
F(G, 8, 0, "xor ch, 0x5a")

/* test */
F(G, 8, 0, "test al, cl")
F(G, 8, 0, "test ah, bh")
F(G, 8, 0, "test sil, r9b")
F(G, 16, 0, "test ax, dx")
F(G, 32, 0, "test ecx, ebx")
F(G, 32, 0, "test ecx, ecx")
F(G, 64, 0, "test rax, rbx")
F(G, 64, 0, "test r10, r11")
F(G, 8, 0, "test al, 0x80")
F(G, 8, 0, "test dl, 0x81")
F(G, 16, 0, "test ax, 0x8000")
F(G, 16, 0, "test bx, 0x0ff0")
F(G, 32, 0, "test eax, 0x80000000")
F(G, 32, 0, "test ecx, 0x1")
F(G, 64, 0, "test rax, -0x80000000")
F(G, 64, 0, "test r9, 0x7fffffff")
F(G, 8, 0, "test byte ptr [rdi], cl")
F(G, 64, 0, "test qword ptr [rdi], rax")
F(G, 32, 0, "test dword ptr [rdi], 0x80000001")

/* inc dec neg not */
#define UN(op)                              \
    F(G, 8, 0, op " al")                    \
    F(G, 8, 0, op " bh")                    \
    F(G, 8, 0, op " dil")                   \
    F(G, 16, 0, op " cx")                   \
    F(G, 32, 0, op " edx")                  \
    F(G, 64, 0, op " rbx")                  \
    F(G, 64, 0, op " r13")                  \
    F(G, 8, 0, op " byte ptr [rdi]")        \
    F(G, 16, 0, op " word ptr [rdi]")       \
    F(G, 32, 0, op " dword ptr [rdi]")      \
    F(G, 64, 0, op " qword ptr [rdi]")
UN("inc")
UN("dec")
UN("neg")
UN("not")
F(G, 64, 0, "lock inc qword ptr [rdi]")
F(G, 32, 0, "lock dec dword ptr [rdi]")
F(G, 16, 0, "lock neg word ptr [rdi]")
F(G, 8, 0, "lock not byte ptr [rdi]")

/* ======================================================================= */
#undef FAMILY
#define FAMILY "shift"

/* m = ModRM byte for the op with r/m = al/ax/eax/rax (for the C0/C1 ib forms
   with count 1, which the assembler would otherwise encode as D0/D1) */
#define SH(op, m)                                                          \
    F(G, 8, 0, op " bl, 1")                                                \
    F(SHCL, 8, 0, op " bl, cl")                                            \
    FN(op " al, 1 (c0 ib)", G, 8, 0, ".byte 0xc0, " m ", 1")              \
    F(G, 8, 0, op " bl, 0")                                                \
    F(G, 8, 0, op " bl, 7")                                                \
    F(G, 8, 0, op " bl, 8")                                                \
    F(G, 8, 0, op " bl, 9")                                                \
    F(G, 8, 0, op " bl, 16")                                               \
    F(G, 8, 0, op " bl, 0x1f")                                             \
    F(G, 8, 0, op " bl, 0x45")                                             \
    F(SHCL, 8, 0, op " ah, cl")                                            \
    F(G, 8, 0, op " r8b, 3")                                               \
    F(G, 16, 0, op " dx, 1")                                               \
    F(SHCL, 16, 0, op " dx, cl")                                           \
    FN(op " ax, 1 (c1 ib)", G, 16, 0, ".byte 0x66, 0xc1, " m ", 1")       \
    F(G, 16, 0, op " dx, 0")                                               \
    F(G, 16, 0, op " dx, 15")                                              \
    F(G, 16, 0, op " dx, 16")                                              \
    F(G, 16, 0, op " dx, 17")                                              \
    F(G, 16, 0, op " dx, 0x1f")                                            \
    F(G, 16, 0, op " dx, 0x41")                                            \
    F(G, 32, 0, op " esi, 1")                                              \
    F(SHCL, 32, 0, op " esi, cl")                                          \
    FN(op " eax, 1 (c1 ib)", G, 32, 0, ".byte 0xc1, " m ", 1")            \
    F(G, 32, 0, op " esi, 0")                                              \
    F(G, 32, 0, op " esi, 5")                                              \
    F(G, 32, 0, op " esi, 31")                                             \
    F(G, 32, 0, op " esi, 32")                                             \
    F(G, 32, 0, op " esi, 33")                                             \
    F(G, 32, 0, op " esi, 0xff")                                           \
    F(G, 64, 0, op " r10, 1")                                              \
    F(SHCL, 64, 0, op " r10, cl")                                          \
    FN(op " rax, 1 (c1 ib)", G, 64, 0, ".byte 0x48, 0xc1, " m ", 1")      \
    F(G, 64, 0, op " r10, 0")                                              \
    F(G, 64, 0, op " r10, 13")                                             \
    F(G, 64, 0, op " r10, 63")                                             \
    F(G, 64, 0, op " r10, 64")                                             \
    F(G, 64, 0, op " r10, 65")                                             \
    F(G, 64, 0, op " r10, 0xc0")                                           \
    F(G, 8, 0, op " byte ptr [rdi], 1")                                    \
    F(SHCL, 16, 0, op " word ptr [rdi], cl")                               \
    F(G, 32, 0, op " dword ptr [rdi], 31")                                 \
    F(SHCL, 64, 0, op " qword ptr [rdi], cl")

SH("rol", "0xc0")
SH("ror", "0xc8")
SH("rcl", "0xd0")
SH("rcr", "0xd8")
SH("shl", "0xe0")
SH("shr", "0xe8")
SH("sar", "0xf8")

#define SHD(op)                                         \
    F(SHCL, 16, 0, op " ax, dx, cl")                    \
    F(G, 16, 0, op " ax, dx, 0")                        \
    F(G, 16, 0, op " ax, dx, 1")                        \
    F(G, 16, 0, op " ax, dx, 8")                        \
    F(G, 16, 0, op " ax, dx, 15")                       \
    F(G, 16, 0, op " ax, dx, 16")                       \
    F(G, 16, 0, op " ax, dx, 17")                       \
    F(G, 16, 0, op " ax, dx, 31")                       \
    F(SHCL, 32, 0, op " esi, edi, cl")                  \
    F(G, 32, 0, op " esi, edi, 0")                      \
    F(G, 32, 0, op " esi, edi, 1")                      \
    F(G, 32, 0, op " esi, edi, 16")                     \
    F(G, 32, 0, op " esi, edi, 31")                     \
    F(G, 32, 0, op " esi, edi, 32")                     \
    F(G, 32, 0, op " esi, edi, 33")                     \
    F(SHCL, 64, 0, op " r8, r15, cl")                   \
    F(G, 64, 0, op " r8, r15, 0")                       \
    F(G, 64, 0, op " r8, r15, 1")                       \
    F(G, 64, 0, op " r8, r15, 32")                      \
    F(G, 64, 0, op " r8, r15, 63")                      \
    F(G, 64, 0, op " r8, r15, 64")                      \
    F(G, 64, 0, op " r8, r15, 65")                      \
    F(SHCL, 16, 0, op " word ptr [rdi], bx, cl")        \
    F(SHCL, 32, 0, op " dword ptr [rdi], ebx, cl")      \
    F(G, 64, 0, op " qword ptr [rdi], rbx, 7")
SHD("shld")
SHD("shrd")

/* ======================================================================= */
#undef FAMILY
#define FAMILY "muldiv"

#define MUL1(op)                                   \
    F(G, 8, RAX, op " cl")                         \
    F(G, 8, RAX, op " ah")                         \
    F(G, 8, RAX, op " sil")                        \
    F(G, 8, RAX, op " byte ptr [rsi]")             \
    F(G, 16, RAX | RDX, op " cx")                  \
    F(G, 16, RAX | RDX, op " word ptr [rsi]")      \
    F(G, 32, RAX | RDX, op " ecx")                 \
    F(G, 32, RAX | RDX, op " edx")                 \
    F(G, 32, RAX | RDX, op " dword ptr [rsi]")     \
    F(G, 64, RAX | RDX, op " rcx")                 \
    F(G, 64, RAX | RDX, op " r10")                 \
    F(G, 64, RAX | RDX, op " rax")                 \
    F(G, 64, RAX | RDX, op " qword ptr [rsi]")
MUL1("mul")
MUL1("imul")

F(G, 16, 0, "imul ax, dx")
F(G, 32, 0, "imul eax, ecx")
F(G, 32, 0, "imul eax, eax")
F(G, 64, 0, "imul rax, rbx")
F(G, 64, 0, "imul r12, r13")
F(G, 16, 0, "imul cx, word ptr [rsi]")
F(G, 32, 0, "imul edx, dword ptr [rsi]")
F(G, 64, 0, "imul r9, qword ptr [rsi]")
F(G, 16, 0, "imul ax, bx, -2")
F(G, 16, 0, "imul ax, bx, 0x1234")
F(G, 32, 0, "imul eax, ecx, 127")
F(G, 32, 0, "imul eax, ecx, 0x10001")
F(G, 64, 0, "imul rax, rbx, -128")
F(G, 64, 0, "imul rax, rbx, 0x7fffffff")
F(G, 64, 0, "imul r8, r9, -0x80000000")
F(G, 32, 0, "imul ecx, dword ptr [rsi], 3")
F(G, 64, 0, "imul rdx, qword ptr [rsi], -0x12345678")
F(G, 16, 0, "imul cx, word ptr [rsi], 0x7fff")

#define DIVF(op, k)                                \
    F(k, 8, RAX, op " cl")                         \
    F(k, 8, RAX, op " bh")                         \
    F(k, 8, RAX, op " r9b")                        \
    F(k, 8, RAX, op " byte ptr [rsi]")             \
    F(k, 16, RAX | RDX, op " cx")                  \
    F(k, 16, RAX | RDX, op " word ptr [rsi]")      \
    F(k, 32, RAX | RDX, op " ecx")                 \
    F(k, 32, RAX | RDX, op " dword ptr [rsi]")     \
    F(k, 64, RAX | RDX, op " rcx")                 \
    F(k, 64, RAX | RDX, op " r11")                 \
    F(k, 64, RAX | RDX, op " qword ptr [rsi]")
DIVF("div", DIV)
DIVF("idiv", IDIV)

/* ======================================================================= */
#undef FAMILY
#define FAMILY "bitops"

#define BT(op)                                          \
    F(G, 16, 0, op " ax, dx")                           \
    F(G, 32, 0, op " ecx, ebx")                         \
    F(G, 64, 0, op " rax, rbx")                         \
    F(G, 64, 0, op " r9, r10")                          \
    F(G, 16, 0, op " si, 3")                            \
    F(G, 16, 0, op " si, 17")                           \
    F(G, 32, 0, op " edx, 31")                          \
    F(G, 32, 0, op " edx, 45")                          \
    F(G, 64, 0, op " rdi, 63")                          \
    F(G, 64, 0, op " rdi, 100")                         \
    F(BTM, 16, 0, op " word ptr [rdi], cx")             \
    F(BTM, 32, 0, op " dword ptr [rdi], edx")           \
    F(BTM, 64, 0, op " qword ptr [rdi], rax")           \
    F(G, 16, 0, op " word ptr [rdi], 9")                \
    F(G, 32, 0, op " dword ptr [rdi], 37")              \
    F(G, 64, 0, op " qword ptr [rdi], 70")
BT("bt")
BT("bts")
BT("btr")
BT("btc")
F(BTM, 64, 0, "lock bts qword ptr [rdi], rcx")
F(BTM, 32, 0, "lock btr dword ptr [rdi], ebx")
F(BTM, 16, 0, "lock btc word ptr [rdi], dx")

#define BSCAN(op)                                   \
    F(BSF, 16, 0, op " ax, dx")                     \
    F(BSF, 32, 0, op " ecx, ebx")                   \
    F(BSF, 64, 0, op " rax, rbx")                   \
    F(BSF, 64, 0, op " r8, r12")                    \
    F(BSF, 32, 0, op " edx, dword ptr [rsi]")       \
    F(BSF, 64, 0, op " r8, qword ptr [rsi]")
BSCAN("bsf")
BSCAN("bsr")

#define CNT(req, op)                                    \
    FQ(req, BSF, 16, 0, op " ax, dx")                   \
    FQ(req, BSF, 32, 0, op " ecx, ebx")                 \
    FQ(req, BSF, 64, 0, op " rax, rbx")                 \
    FQ(req, BSF, 64, 0, op " r11, r14")                 \
    FQ(req, BSF, 16, 0, op " cx, word ptr [rsi]")       \
    FQ(req, BSF, 32, 0, op " edx, dword ptr [rsi]")     \
    FQ(req, BSF, 64, 0, op " r8, qword ptr [rsi]")
CNT(HAS_BMI1, "tzcnt")
CNT(HAS_LZCNT, "lzcnt")
CNT(HAS_POPCNT, "popcnt")

F(G, 32, 0, "bswap eax")
F(G, 32, 0, "bswap r9d")
F(G, 32, 0, "bswap ebp")
F(G, 64, 0, "bswap rax")
F(G, 64, 0, "bswap r12")
F(G, 64, 0, "bswap rsi")

/* ======================================================================= */
#undef FAMILY
#define FAMILY "convert"

#define EXT(op)                                     \
    F(G, 16, 0, op " ax, bl")                       \
    F(G, 32, 0, op " eax, bl")                      \
    F(G, 32, 0, op " ecx, ah")                      \
    F(G, 32, 0, op " edx, sil")                     \
    F(G, 64, 0, op " rax, r9b")                     \
    F(G, 32, 0, op " ecx, dx")                      \
    F(G, 64, 0, op " rcx, dx")                      \
    F(G, 64, 0, op " r12, r13w")                    \
    F(G, 16, 0, op " ax, byte ptr [rsi]")           \
    F(G, 32, 0, op " eax, byte ptr [rsi]")          \
    F(G, 32, 0, op " ebx, word ptr [rsi]")          \
    F(G, 64, 0, op " rax, word ptr [rsi]")
EXT("movzx")
EXT("movsx")
F(G, 32, 0, "movzx edx, ch")
F(G, 32, 0, "movsx ebp, ch")
F(G, 64, 0, "movsxd rax, ecx")
F(G, 64, 0, "movsxd r8, r9d")
F(G, 64, 0, "movsxd rdx, dword ptr [rsi]")
F(G, 32, 0, "movsxd eax, ecx")
F(G, 16, RAX, "cbw")
F(G, 32, RAX, "cwde")
F(G, 64, RAX, "cdqe")
F(G, 16, RAX | RDX, "cwd")
F(G, 32, RAX | RDX, "cdq")
F(G, 64, RAX | RDX, "cqo")

/* ======================================================================= */
#undef FAMILY
#define FAMILY "cond"

#define CC(c)                                           \
    F(G, 32, 0, "cmov" c " eax, ecx")                   \
    F(G, 64, 0, "cmov" c " r8, rdx")                    \
    F(G, 8, 0, "set" c " al")
CC("o") CC("no") CC("b") CC("ae") CC("e") CC("ne") CC("be") CC("a")
CC("s") CC("ns") CC("p") CC("np") CC("l") CC("ge") CC("le") CC("g")

F(G, 16, 0, "cmovb bx, si")
F(G, 16, 0, "cmovne bx, si")
F(G, 16, 0, "cmovle bx, si")
F(G, 16, 0, "cmovo bx, si")
F(G, 32, 0, "cmovae ebx, dword ptr [rsi]")
F(G, 32, 0, "cmove ebx, dword ptr [rsi]")
F(G, 64, 0, "cmovg rbx, qword ptr [rsi]")
F(G, 64, 0, "cmovp rbx, qword ptr [rsi]")
F(G, 16, 0, "cmovs cx, word ptr [rsi]")
F(G, 8, 0, "setb ch")
F(G, 8, 0, "sete ah")
F(G, 8, 0, "setne bh")
F(G, 8, 0, "setl sil")
F(G, 8, 0, "setg r11b")
F(G, 8, 0, "setbe dil")
F(G, 8, 0, "seta byte ptr [rdi]")
F(G, 8, 0, "setge byte ptr [rdi]")
F(G, 8, 0, "setno byte ptr [rdi]")
F(G, 8, 0, "setnp byte ptr [rdi]")

/* ======================================================================= */
#undef FAMILY
#define FAMILY "lea"

F(G, 64, 0, "lea rax, [rbx+rcx*4+0x12]")
F(G, 32, 0, "lea eax, [rbx+rcx*8-8]")
F(G, 16, 0, "lea ax, [rbx+rcx*2+0x7fff]")
F(G, 64, 0, "lea rax, [ebx+ecx*4+0x100]")
F(G, 32, 0, "lea eax, [ebx+ecx*1-1]")
F(G, 32, 0, "lea edx, [ebp+esi*2+0x40]")
F(G, 32, 0, "lea r9d, [r10d+r11d*8]")
F(G, 16, 0, "lea si, [edi+0x7ffff]")
F(G, 64, 0, "lea rdx, [rbp]")
F(G, 64, 0, "lea rdx, [r13]")
F(G, 64, 0, "lea rsi, [r12]")
F(G, 64, 0, "lea rdi, [rcx*8]")
F(G, 64, 0, "lea rdi, [rcx*2+0x10]")
F(G, 64, 0, "lea r8, [r12+r13*1+0x7fffffff]")
F(G, 64, 0, "lea r15, [rax+rax*2]")
F(G, 32, 0, "lea ecx, [rdx-0x80000000]")
F(G, 64, 0, "lea rax, [rbx+rcx]")
F(G, 64, 0, "lea rcx, [rcx+rdx*8-0x80]")
F(G, 64, 0, "lea rbx, [rsi+rdi*4+0x7f]")
F(G, 64, 0, "lea rax, [r9+r12*2-0x12345678]")

/* ======================================================================= */
#undef FAMILY
#define FAMILY "xchg"

F(G, 8, 0, "xchg al, cl")
F(G, 8, 0, "xchg ah, bl")
F(G, 8, 0, "xchg r10b, sil")
F(G, 8, 0, "xchg ch, dl")
F(G, 16, 0, "xchg ax, dx")
F(G, 16, 0, "xchg si, di")
F(G, 32, 0, "xchg eax, ecx")
F(G, 32, 0, "xchg ecx, ebx")
FN("xchg eax, eax (87 c0)", G, 32, 0, ".byte 0x87, 0xc0")
FN("xchg eax, eax (90 = nop, no zero-extension)", G, 32, 0, ".byte 0x90")
F(G, 64, 0, "xchg rax, r9")
F(G, 64, 0, "xchg rdx, rsi")
F(G, 8, 0, "xchg byte ptr [rdi], cl")
F(G, 16, 0, "xchg word ptr [rdi], dx")
F(G, 32, 0, "xchg dword ptr [rdi], ebx")
F(G, 64, 0, "xchg qword ptr [rdi], rax")

F(G, 8, 0, "xadd al, cl")
F(G, 8, 0, "xadd bh, dl")
F(G, 16, 0, "xadd ax, dx")
F(G, 32, 0, "xadd ecx, ebx")
F(G, 64, 0, "xadd rax, rbx")
F(G, 64, 0, "xadd r12, r12")
F(G, 8, 0, "xadd byte ptr [rdi], cl")
F(G, 16, 0, "xadd word ptr [rdi], si")
F(G, 32, 0, "xadd dword ptr [rdi], edx")
F(G, 64, 0, "xadd qword ptr [rdi], rax")
F(G, 64, 0, "lock xadd qword ptr [rdi], rcx")

F(CMPX, 8, RAX, "cmpxchg cl, bl")
F(CMPX, 8, RAX, "cmpxchg bh, dl")
F(CMPX, 16, RAX, "cmpxchg cx, dx")
F(CMPX, 32, RAX, "cmpxchg ecx, ebx")
F(CMPX, 32, RAX, "cmpxchg eax, ecx")
F(CMPX, 32, RAX, "cmpxchg r9d, eax")
F(CMPX, 64, RAX, "cmpxchg rcx, rbx")
F(CMPX, 64, RAX, "cmpxchg r14, r15")
F(CMPX, 8, RAX, "cmpxchg byte ptr [rdi], cl")
F(CMPX, 16, RAX, "cmpxchg word ptr [rdi], dx")
F(CMPX, 32, RAX, "cmpxchg dword ptr [rdi], ebx")
F(CMPX, 64, RAX, "cmpxchg qword ptr [rdi], rcx")
F(CMPX, 32, RAX, "lock cmpxchg dword ptr [rdi], ecx")
F(CMPX, 64, RAX, "lock cmpxchg qword ptr [rdi], rbx")
F(CX8, 32, RAX | RDX | RBX | RCX, "cmpxchg8b qword ptr [rdi]")
F(CX8, 32, RAX | RDX | RBX | RCX, "lock cmpxchg8b qword ptr [rdi]")
FQ(HAS_CX16, CX8, 64, RAX | RDX | RBX | RCX, "cmpxchg16b xmmword ptr [rdi]")
FQ(HAS_CX16, CX8, 64, RAX | RDX | RBX | RCX, "lock cmpxchg16b xmmword ptr [rdi]")

/* ======================================================================= */
#undef FAMILY
#define FAMILY "string"

/* size = element width; DF random per case; RCX 0..8 (capped so that the
   walk stays inside the 32-byte buffers: see make_inputs) */
#define STRS(sfx, sz)                                           \
    F(STR, sz, RSI | RDI, "movs" sfx)                           \
    F(STR, sz, RSI | RDI | RCX, "rep movs" sfx)                 \
    F(STR, sz, RDI | RAX, "stos" sfx)                           \
    F(STR, sz, RDI | RAX | RCX, "rep stos" sfx)                 \
    F(STR, sz, RSI | RAX, "lods" sfx)                           \
    F(STR, sz, RSI | RAX | RCX, "rep lods" sfx)                 \
    F(STR, sz, RDI | RAX, "scas" sfx)                           \
    F(STR, sz, RDI | RAX | RCX, "repe scas" sfx)                \
    F(STR, sz, RDI | RAX | RCX, "repne scas" sfx)               \
    F(STR, sz, RSI | RDI, "cmps" sfx)                           \
    F(STR, sz, RSI | RDI | RCX, "repe cmps" sfx)                \
    F(STR, sz, RSI | RDI | RCX, "repne cmps" sfx)
STRS("b", 8)
STRS("w", 16)
STRS("d", 32)
STRS("q", 64)

/* ======================================================================= */
#undef FAMILY
#define FAMILY "flags"

FQ(HAS_LAHF, G, 64, RAX, "sahf")
FQ(HAS_LAHF, G, 64, RAX, "lahf")
F(G, 64, 0, "clc")
F(G, 64, 0, "stc")
F(G, 64, 0, "cmc")
F(DFR, 64, 0, "cld")
F(DFR, 64, 0, "std")
#define ADX(op)                                         \
    FQ(HAS_ADX, G, 32, 0, op " eax, ecx")               \
    FQ(HAS_ADX, G, 64, 0, op " rax, rbx")               \
    FQ(HAS_ADX, G, 64, 0, op " r10, r11")               \
    FQ(HAS_ADX, G, 32, 0, op " edx, dword ptr [rsi]")   \
    FQ(HAS_ADX, G, 64, 0, op " r9, qword ptr [rsi]")
ADX("adcx")
ADX("adox")

/* ======================================================================= */
#undef FAMILY
#define FAMILY "prefix"

/* decoder corner cases: prefix order / redundant and ignored prefixes */
FN("add al, cl (empty rex 40)", G, 8, 0, ".byte 0x40, 0x00, 0xc8")
FN("add rax, rbx (66 48: rex.w wins over 66)", G, 64, 0, ".byte 0x66, 0x48, 0x01, 0xd8")
FN("add ax, bx (48 66: rex not last, ignored)", G, 16, 0, ".byte 0x48, 0x66, 0x01, 0xd8")
FN("add ax, bx (66 66)", G, 16, 0, ".byte 0x66, 0x66, 0x01, 0xd8")
FN("add eax, ebx (2e cs prefix)", G, 32, 0, ".byte 0x2e, 0x01, 0xd8")
FN("add eax, ebx (3e ds prefix)", G, 32, 0, ".byte 0x3e, 0x01, 0xd8")
FN("add dword ptr [rdi], ebx (26 es prefix, ignored in 64-bit mode)", G, 32, 0, ".byte 0x26, 0x01, 0x1f")
FN("add qword ptr [rsi], rbx (36 ss prefix, ignored in 64-bit mode)", G, 64, 0, ".byte 0x36, 0x48, 0x01, 0x1e")
FN("lock add word ptr [rdi], dx (66 f0 order)", G, 16, 0, ".byte 0x66, 0xf0, 0x01, 0x17")
FN("rep movsw (f3 66 order)", STR, 16, RSI | RDI | RCX, ".byte 0xf3, 0x66, 0xa5")
FN("repne scasw (f2 66 order)", STR, 16, RDI | RAX | RCX, ".byte 0xf2, 0x66, 0xaf")
FN("rep stosq (f3 48)", STR, 64, RDI | RAX | RCX, ".byte 0xf3, 0x48, 0xab")
FN("repe cmpsb (f2 f3: last rep prefix wins)", STR, 8, RSI | RDI | RCX, ".byte 0xf2, 0xf3, 0xa6")
FN("repne cmpsb (f3 f2: last rep prefix wins)", STR, 8, RSI | RDI | RCX, ".byte 0xf3, 0xf2, 0xa6")
FN("xchg r8, rax (49 90, not a nop)", G, 64, 0, ".byte 0x49, 0x90")
FN("xchg r8d, eax (41 90, zero-extends both)", G, 32, 0, ".byte 0x41, 0x90")
FN("xchg ax, ax (66 90)", G, 16, 0, ".byte 0x66, 0x90")
FN("add sil, cl (40 00 ce; without rex this is dh)", G, 8, 0, ".byte 0x40, 0x00, 0xce")
