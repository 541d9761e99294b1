// Compiled against CUDA torch (make cuda-build), not yet run on a GPU; see engine_cuda.hpp.
#include "runtime/engine_cuda.hpp"

#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "postprocess/cuda/postprocess_cuda.hpp"

namespace cathtrack::runtime {
namespace pp = cathtrack::postprocess;
namespace {

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(status));
  }
}

// A device byte buffer of at least `bytes` bytes, grown when needed and otherwise reused.
void reserve(at::Tensor& buffer, std::size_t bytes, const at::Device& device) {
  const auto wanted = static_cast<std::int64_t>(std::max<std::size_t>(bytes, 1));
  if (!buffer.defined() || buffer.numel() < wanted || buffer.device() != device) {
    buffer = at::empty({wanted}, at::TensorOptions().dtype(at::kByte).device(device));
  }
}

}  // namespace

void CudaPixelStages::run(const at::Tensor& heatmap, const at::Tensor& binary, float threshold,
                          int max_peaks, std::vector<pp::Peak>& peaks,
                          std::vector<std::uint8_t>& skeleton) {
  const at::Device device = heatmap.device();
  const c10::cuda::CUDAGuard guard(device);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(device.index()).stream();
  const int map_height = static_cast<int>(heatmap.size(0));
  const int map_width = static_cast<int>(heatmap.size(1));
  const int height = static_cast<int>(binary.size(0)), width = static_cast<int>(binary.size(1));
  const int capacity = std::max(max_peaks, 0);

  reserve(peak_workspace_, pp::cuda::find_peaks_workspace_bytes(map_height, map_width), device);
  reserve(peaks_, sizeof(pp::Peak) * std::max(capacity, 1), device);
  reserve(count_, sizeof(int), device);
  check(pp::cuda::find_peaks(heatmap.data_ptr<float>(), map_height, map_width, threshold, capacity,
                             peak_workspace_.data_ptr(),
                             static_cast<std::size_t>(peak_workspace_.numel()),
                             static_cast<pp::Peak*>(peaks_.data_ptr()),
                             static_cast<int*>(count_.data_ptr()), stream),
        "find_peaks (cuda)");

  reserve(thin_workspace_, pp::cuda::thin_workspace_bytes(height, width), device);
  reserve(skeleton_, static_cast<std::size_t>(height) * width, device);
  int iterations = 0;  // thin() synchronises the stream, so the peaks are ready after it
  check(pp::cuda::thin(binary.data_ptr<std::uint8_t>(), skeleton_.data_ptr<std::uint8_t>(), height,
                       width, thin_workspace_.data_ptr(),
                       static_cast<std::size_t>(thin_workspace_.numel()), stream, &iterations),
        "thin (cuda)");

  int count = 0;
  check(cudaMemcpyAsync(&count, count_.data_ptr(), sizeof(int), cudaMemcpyDeviceToHost, stream),
        "copy peak count");
  check(cudaStreamSynchronize(stream), "copy peak count");
  peaks.resize(static_cast<std::size_t>(std::min(count, capacity)));
  skeleton.resize(static_cast<std::size_t>(height) * width);
  check(cudaMemcpyAsync(peaks.data(), peaks_.data_ptr(), sizeof(pp::Peak) * peaks.size(),
                        cudaMemcpyDeviceToHost, stream),
        "copy peaks");
  check(cudaMemcpyAsync(skeleton.data(), skeleton_.data_ptr(), skeleton.size(),
                        cudaMemcpyDeviceToHost, stream),
        "copy skeleton");
  check(cudaStreamSynchronize(stream), "copy peaks and skeleton");
}

}  // namespace cathtrack::runtime
