// GPU half of the engine's pixel stages: peaks and thinning run on the tensors the network left
// on the GPU (the postprocess/cuda kernels, on torch's current stream); only the peaks and the
// skeleton are copied back for tracing and assignment.
//
// Built only against a CUDA build of torch with nvcc present (CATHTRACK_TORCH_CUDA;
// build_info()["cuda_engine"]). `make cuda-build` compiles it on a machine without a GPU; it has
// not yet run on one (tools/gpu_check.sh checks it there, docs/cuda.md).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "postprocess/peaks.hpp"

namespace cathtrack::runtime {

class CudaPixelStages {
 public:
  // heatmap: (h, w) float32 CUDA, contiguous; binary: (S, S) uint8 0/1 CUDA, contiguous.
  // Fills peaks (as postprocess::find_peaks) and skeleton (S * S bytes, as postprocess::thin).
  // Device buffers are kept between calls.
  void run(const at::Tensor& heatmap, const at::Tensor& binary, float threshold, int max_peaks,
           std::vector<postprocess::Peak>& peaks, std::vector<std::uint8_t>& skeleton);

 private:
  at::Tensor peak_workspace_, thin_workspace_, peaks_, count_, skeleton_;
};

}  // namespace cathtrack::runtime
