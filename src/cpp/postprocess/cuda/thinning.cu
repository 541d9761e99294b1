// CUDA thin(): Guo-Hall parallel thinning equal to the CPU reference (thinning.cpp) and so to
// skimage.morphology.thin.
//
// Each sub-iteration is one kernel that reads the image as it was before the sub-iteration and
// writes a second buffer (ping-pong between `output` and a workspace buffer): that is exactly the
// CPU's "decide every deletion, then apply them together". Two sub-iterations per iteration bring
// the image back to `output` after every iteration.
//
// Convergence: a block that deleted a pixel raises a device int to the iteration number
// (atomicMax). The host reads it back only every few iterations, because a round trip costs more
// than a sub-iteration on typical masks. Iterations after convergence change nothing, and the first
// iteration without a deletion is always last_changed + 1, which is what the CPU returns: the
// reported count is exact however many extra iterations ran.
#include <algorithm>
#include <climits>
#include <cstdint>

#include "../thinning.hpp"
#include "postprocess_cuda.hpp"

namespace cathtrack::postprocess::cuda {

namespace {

constexpr std::size_t kAlignment = 256;
constexpr int kBlockWidth = 32;
constexpr int kBlockHeight = 8;
constexpr int kMaxGridHeight = 65535;
constexpr int kBinarizeBlockSize = 256;
constexpr int kMaxBinarizeBlocks = 65535;
// Iterations between two convergence checks: starts small (thin masks converge in a few
// iterations), doubles up to a cap that bounds the wasted work to a few cheap kernels.
constexpr int kFirstIterationsPerCheck = 4;
constexpr int kMaxIterationsPerCheck = 32;

constexpr std::size_t align_up(std::size_t bytes) {
  return (bytes + kAlignment - 1) / kAlignment * kAlignment;
}

// The CPU reference's tables, built at compile time (thinning.hpp), initialise __constant__ memory
// statically: present on every device with no copy and no first-call race.
__constant__ ThinningTables c_thinning_tables = build_thinning_tables();

struct ThinLayout {
  std::size_t scratch_offset = 0;  // the ping-pong partner of `output`, height * width bytes
  std::size_t last_changed_offset = 0;
  std::size_t used_bytes = 0;
};

bool valid_size(int height, int width) {
  return height > 0 && width > 0 &&
         static_cast<std::int64_t>(height) * width <= static_cast<std::int64_t>(INT_MAX);
}

ThinLayout plan_thin_workspace(int height, int width) {
  ThinLayout layout;
  layout.scratch_offset = 0;
  layout.last_changed_offset =
      align_up(static_cast<std::size_t>(height) * static_cast<std::size_t>(width));
  layout.used_bytes = layout.last_changed_offset + align_up(sizeof(int));
  return layout;
}

dim3 pixel_grid(int height, int width) {
  const int grid_width = (width + kBlockWidth - 1) / kBlockWidth;
  const int grid_height = std::min((height + kBlockHeight - 1) / kBlockHeight, kMaxGridHeight);
  return dim3(static_cast<unsigned>(grid_width), static_cast<unsigned>(grid_height));
}

__global__ void binarize(const std::uint8_t* input, std::uint8_t* output, std::int64_t pixels) {
  // No __restrict__: input may be output (in-place call); each thread reads then writes one pixel.
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < pixels; i += stride) {
    output[i] = input[i] != 0 ? 1 : 0;
  }
}

// 0/1 value of a pixel, 0 outside the image (skimage's mode='constant', the CPU's padding frame).
__device__ int pixel_or_background(const std::uint8_t* __restrict__ image, int height, int width,
                                   std::int64_t row, int col) {
  if (row < 0 || row >= height || col < 0 || col >= width) return 0;
  return image[row * width + col];
}

// One Guo-Hall sub-iteration: before -> after, deletion decided by table `sub_iteration`.
__global__ void guo_hall_sub_iteration(const std::uint8_t* __restrict__ before,
                                       std::uint8_t* __restrict__ after, int height, int width,
                                       int sub_iteration, int iteration,
                                       int* __restrict__ last_changed_iteration) {
  // Divergent per-thread codes would serialise __constant__ reads; a shared copy serves them at
  // shared-memory speed.
  __shared__ std::uint8_t delete_code[256];
  const int thread_rank = threadIdx.y * blockDim.x + threadIdx.x;
  for (int code = thread_rank; code < 256; code += blockDim.x * blockDim.y) {
    delete_code[code] = c_thinning_tables.deletes[sub_iteration][code];
  }
  __syncthreads();

  bool deleted_any = false;
  const int col = blockIdx.x * blockDim.x + threadIdx.x;
  if (col < width) {  // no early return: every thread must reach __syncthreads_or below
    const std::int64_t row_stride = static_cast<std::int64_t>(gridDim.y) * blockDim.y;
    for (std::int64_t row = blockIdx.y * blockDim.y + threadIdx.y; row < height;
         row += row_stride) {
      const std::int64_t index = row * width + col;
      std::uint8_t keep = 0;
      if (before[index]) {
        // Bits as in thinning.hpp: E=1, NE=2, N=4, NW=8, W=16, SW=32, S=64, SE=128.
        const int code = pixel_or_background(before, height, width, row, col + 1) |
                         pixel_or_background(before, height, width, row - 1, col + 1) << 1 |
                         pixel_or_background(before, height, width, row - 1, col) << 2 |
                         pixel_or_background(before, height, width, row - 1, col - 1) << 3 |
                         pixel_or_background(before, height, width, row, col - 1) << 4 |
                         pixel_or_background(before, height, width, row + 1, col - 1) << 5 |
                         pixel_or_background(before, height, width, row + 1, col) << 6 |
                         pixel_or_background(before, height, width, row + 1, col + 1) << 7;
        const bool delete_pixel = delete_code[code] != 0;
        deleted_any = deleted_any || delete_pixel;
        keep = delete_pixel ? 0 : 1;
      }
      after[index] = keep;
    }
  }
  // One atomic per block, not per deleted pixel.
  if (__syncthreads_or(deleted_any) && thread_rank == 0) {
    atomicMax(last_changed_iteration, iteration);
  }
}

}  // namespace

std::size_t thin_workspace_bytes(int height, int width) {
  if (!valid_size(height, width)) return 0;
  return plan_thin_workspace(height, width).used_bytes + kAlignment;  // slack for any pointer
}

cudaError_t thin(const std::uint8_t* input, std::uint8_t* output, int height, int width,
                 void* workspace, std::size_t workspace_bytes, cudaStream_t stream,
                 int* iterations) {
  if (iterations != nullptr) *iterations = 0;
  if (height <= 0 || width <= 0) return cudaSuccess;  // the CPU returns 0 iterations, no work
  if (!valid_size(height, width) || input == nullptr || output == nullptr || workspace == nullptr) {
    return cudaErrorInvalidValue;
  }
  const ThinLayout layout = plan_thin_workspace(height, width);
  const auto address = reinterpret_cast<std::uintptr_t>(workspace);
  const std::size_t misalignment = align_up(address) - address;
  if (misalignment + layout.used_bytes > workspace_bytes) return cudaErrorInvalidValue;
  char* base = static_cast<char*>(workspace) + misalignment;
  auto* scratch = reinterpret_cast<std::uint8_t*>(base + layout.scratch_offset);
  int* last_changed_iteration = reinterpret_cast<int*>(base + layout.last_changed_offset);

  const std::int64_t pixels = static_cast<std::int64_t>(height) * width;
  const auto binarize_blocks = static_cast<int>(std::min<std::int64_t>(
      (pixels + kBinarizeBlockSize - 1) / kBinarizeBlockSize, kMaxBinarizeBlocks));
  binarize<<<binarize_blocks, kBinarizeBlockSize, 0, stream>>>(input, output, pixels);
  cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) return status;
  status = cudaMemsetAsync(last_changed_iteration, 0, sizeof(int), stream);
  if (status != cudaSuccess) return status;

  const dim3 grid = pixel_grid(height, width);
  const dim3 block(kBlockWidth, kBlockHeight);
  int iteration = 0;
  int iterations_per_check = kFirstIterationsPerCheck;
  while (true) {
    for (int i = 0; i < iterations_per_check; ++i) {
      ++iteration;
      guo_hall_sub_iteration<<<grid, block, 0, stream>>>(output, scratch, height, width, 0,
                                                         iteration, last_changed_iteration);
      status = cudaGetLastError();
      if (status != cudaSuccess) return status;
      guo_hall_sub_iteration<<<grid, block, 0, stream>>>(scratch, output, height, width, 1,
                                                         iteration, last_changed_iteration);
      status = cudaGetLastError();
      if (status != cudaSuccess) return status;
    }
    int last_changed_host = 0;
    status = cudaMemcpyAsync(&last_changed_host, last_changed_iteration, sizeof(int),
                             cudaMemcpyDeviceToHost, stream);
    if (status != cudaSuccess) return status;
    status = cudaStreamSynchronize(stream);
    if (status != cudaSuccess) return status;
    if (last_changed_host < iteration) {
      // The CPU stops after the first iteration that deletes nothing: last_changed + 1.
      if (iterations != nullptr) *iterations = last_changed_host + 1;
      return cudaSuccess;
    }
    // Each iteration that changes something deletes a pixel: more than pixels + 1 iterations
    // means the device state is not what this loop assumes; fail rather than spin.
    if (iteration > pixels + 1) return cudaErrorUnknown;
    iterations_per_check = std::min(2 * iterations_per_check, kMaxIterationsPerCheck);
  }
}

}  // namespace cathtrack::postprocess::cuda
