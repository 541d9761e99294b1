// CUDA versions of the post-processing reference (peaks.hpp, thinning.hpp), equal to it bit for bit
// (same peaks in the same order, same skeleton, same iteration count).
//
// Plain CUDA C++17 on raw device pointers and a caller-provided stream, so it compiles with nvcc
// anywhere (no torch headers). The functions never allocate: the caller passes a device workspace
// of at least *_workspace_bytes() bytes (any alignment; sub-buffers are aligned inside). Errors
// come back as the cudaError_t of the first failing call; nothing exits or aborts.
//
// Size limit: height * width <= 2^31 - 1 (Peak::index is 32-bit, as in the CPU reference); 8k x 8k
// images are well inside it. Larger images give cudaErrorInvalidValue and a workspace size of 0.
//
// Float parity needs the shared helpers compiled without FMA contraction and with IEEE division and
// denormals: nvcc -fmad=false, never --use_fast_math (nor -ftz=true / -prec-div=false).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "../peaks.hpp"  // struct Peak {float x, y, score; int32_t index;}

namespace cathtrack::postprocess::cuda {

// Device workspace find_peaks() needs for a (height, width) heatmap; 0 for an empty image. It asks
// CUB for its temporary storage size on the current device, so call it on the device find_peaks()
// will run on; it also returns 0 when that query fails (find_peaks() then reports the error).
std::size_t find_peaks_workspace_bytes(int height, int width);

// Same peaks, same order, same bits as the CPU find_peaks(). Writes min(found, max_peaks) peaks to
// out_peaks (device array of max_peaks Peak) and that count to *out_count (device int). Stream
// ordered: nothing is synchronised, so the results are valid once the stream reaches this point.
// max_peaks <= 0 or an empty image: *out_count = 0 (a memset, no kernel launch).
cudaError_t find_peaks(const float* heatmap, int height, int width, float threshold, int max_peaks,
                       void* workspace, std::size_t workspace_bytes, Peak* out_peaks,
                       int* out_count, cudaStream_t stream);

// Device workspace thin() needs for a (height, width) mask; 0 for an empty image.
std::size_t thin_workspace_bytes(int height, int width);

// output = Guo-Hall thinning of input (nonzero = foreground), 0/1 bytes, identical to the CPU
// thin(). input == output (in place) is allowed; partially overlapping buffers are not. *iterations
// (host, may be null) = iterations run, exactly as the CPU thin() counts them (the last, unchanging
// iteration included). Synchronises the stream: convergence is decided on the host.
cudaError_t thin(const std::uint8_t* input, std::uint8_t* output, int height, int width,
                 void* workspace, std::size_t workspace_bytes, cudaStream_t stream,
                 int* iterations);

}  // namespace cathtrack::postprocess::cuda
