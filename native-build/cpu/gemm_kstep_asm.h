// The 6x16 micro-kernels' k step as inline-assembly text, shared by the GEMM micro-kernel (gemm_kernel.cpp) and
// attention's Q.K^T kernel (attention.cpp). Compilers rotate the twelve accumulators through registers and
// reload B from memory, which costs ~10% at this size, hence hand-scheduled assembly.
//
// One k step in AT&T syntax: two B vectors (ymm12-13), six A broadcasts (ymm14-15), twelve FMAs into ymm0-11.
// AO/BO are byte offsets from the current A and B pointers, the asm operands %[a] and %[b].
#pragma once

#define SGLD_KSTEP_ASM(AO, BO)                                                           \
    "vmovaps " #BO "(%[b]), %%ymm12\n\t"                                                 \
    "vmovaps " #BO "+32(%[b]), %%ymm13\n\t"                                              \
    "vbroadcastss " #AO "(%[a]), %%ymm14\n\t"                                            \
    "vfmadd231ps %%ymm12, %%ymm14, %%ymm0\n\t"                                           \
    "vfmadd231ps %%ymm13, %%ymm14, %%ymm1\n\t"                                           \
    "vbroadcastss " #AO "+4(%[a]), %%ymm15\n\t"                                          \
    "vfmadd231ps %%ymm12, %%ymm15, %%ymm2\n\t"                                           \
    "vfmadd231ps %%ymm13, %%ymm15, %%ymm3\n\t"                                           \
    "vbroadcastss " #AO "+8(%[a]), %%ymm14\n\t"                                          \
    "vfmadd231ps %%ymm12, %%ymm14, %%ymm4\n\t"                                           \
    "vfmadd231ps %%ymm13, %%ymm14, %%ymm5\n\t"                                           \
    "vbroadcastss " #AO "+12(%[a]), %%ymm15\n\t"                                         \
    "vfmadd231ps %%ymm12, %%ymm15, %%ymm6\n\t"                                           \
    "vfmadd231ps %%ymm13, %%ymm15, %%ymm7\n\t"                                           \
    "vbroadcastss " #AO "+16(%[a]), %%ymm14\n\t"                                         \
    "vfmadd231ps %%ymm12, %%ymm14, %%ymm8\n\t"                                           \
    "vfmadd231ps %%ymm13, %%ymm14, %%ymm9\n\t"                                           \
    "vbroadcastss " #AO "+20(%[a]), %%ymm15\n\t"                                         \
    "vfmadd231ps %%ymm12, %%ymm15, %%ymm10\n\t"                                          \
    "vfmadd231ps %%ymm13, %%ymm15, %%ymm11\n\t"

// Zeroes the twelve accumulators ymm0-11.
#define SGLD_ZERO_ACC_ASM                                                                \
    "vxorps %%ymm0, %%ymm0, %%ymm0\n\t"                                                  \
    "vxorps %%ymm1, %%ymm1, %%ymm1\n\t"                                                  \
    "vxorps %%ymm2, %%ymm2, %%ymm2\n\t"                                                  \
    "vxorps %%ymm3, %%ymm3, %%ymm3\n\t"                                                  \
    "vxorps %%ymm4, %%ymm4, %%ymm4\n\t"                                                  \
    "vxorps %%ymm5, %%ymm5, %%ymm5\n\t"                                                  \
    "vxorps %%ymm6, %%ymm6, %%ymm6\n\t"                                                  \
    "vxorps %%ymm7, %%ymm7, %%ymm7\n\t"                                                  \
    "vxorps %%ymm8, %%ymm8, %%ymm8\n\t"                                                  \
    "vxorps %%ymm9, %%ymm9, %%ymm9\n\t"                                                  \
    "vxorps %%ymm10, %%ymm10, %%ymm10\n\t"                                               \
    "vxorps %%ymm11, %%ymm11, %%ymm11\n\t"

// The k loop over a packed 6-row A panel and a packed 16-column B panel: %[k_iter] unrolled groups of four
// steps (each group first runs PREFETCH, an asm string or ""), then %[k_left] single steps. Ends at local
// label 4 with the product in ymm0-11; uses labels 1-4.
#define SGLD_PANEL_KLOOP_ASM(PREFETCH)                                                   \
    "test %[k_iter], %[k_iter]\n\t"                                                      \
    "jz 2f\n\t"                                                                          \
    ".p2align 5\n"                                                                       \
    "1:\n\t"                                                                             \
    PREFETCH                                                                            \
    SGLD_KSTEP_ASM(0, 0)                                                                \
    SGLD_KSTEP_ASM(24, 64)                                                              \
    SGLD_KSTEP_ASM(48, 128)                                                             \
    SGLD_KSTEP_ASM(72, 192)                                                             \
    "add $96, %[a]\n\t"                                                                  \
    "add $256, %[b]\n\t"                                                                 \
    "dec %[k_iter]\n\t"                                                                  \
    "jnz 1b\n"                                                                           \
    "2:\n\t"                                                                             \
    "test %[k_left], %[k_left]\n\t"                                                      \
    "jz 4f\n"                                                                            \
    "3:\n\t"                                                                             \
    SGLD_KSTEP_ASM(0, 0)                                                                \
    "add $24, %[a]\n\t"                                                                  \
    "add $64, %[b]\n\t"                                                                  \
    "dec %[k_left]\n\t"                                                                  \
    "jnz 3b\n"                                                                           \
    "4:\n\t"

// Stores the twelve accumulators ymm0-11 to %[acc], a 32-byte aligned 6x16 float tile (row stride 16).
#define SGLD_STORE_ACC_ASM                                                               \
    "vmovaps %%ymm0, 0(%[acc])\n\t"                                                      \
    "vmovaps %%ymm1, 32(%[acc])\n\t"                                                     \
    "vmovaps %%ymm2, 64(%[acc])\n\t"                                                     \
    "vmovaps %%ymm3, 96(%[acc])\n\t"                                                     \
    "vmovaps %%ymm4, 128(%[acc])\n\t"                                                    \
    "vmovaps %%ymm5, 160(%[acc])\n\t"                                                    \
    "vmovaps %%ymm6, 192(%[acc])\n\t"                                                    \
    "vmovaps %%ymm7, 224(%[acc])\n\t"                                                    \
    "vmovaps %%ymm8, 256(%[acc])\n\t"                                                    \
    "vmovaps %%ymm9, 288(%[acc])\n\t"                                                    \
    "vmovaps %%ymm10, 320(%[acc])\n\t"                                                   \
    "vmovaps %%ymm11, 352(%[acc])\n\t"
