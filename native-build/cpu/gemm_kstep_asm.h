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
