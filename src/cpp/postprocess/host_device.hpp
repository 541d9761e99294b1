// Lets the few helpers that both the CPU reference and the CUDA kernels use be written once.
// Bit-for-bit CPU/CUDA parity relies on this: the same source, only IEEE +,-,*,/ (no library
// transcendental functions, whose last bit differs between glibc and CUDA), and no fused
// multiply-add contraction (-ffp-contract=off for the host, -fmad=false for nvcc).
#pragma once

#if defined(__CUDACC__)
#define CT_HOST_DEVICE __host__ __device__
#else
#define CT_HOST_DEVICE
#endif
