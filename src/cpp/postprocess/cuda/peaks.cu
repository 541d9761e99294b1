// CUDA find_peaks(): the CPU reference (peaks.cpp) on the GPU, equal to it bit for bit.
//
// Pipeline, all stream ordered, no host synchronisation:
//   1. memset the candidate counter to 0 and every sort key to the sentinel 0xff..ff;
//   2. collect_peak_candidates: one thread per pixel applies the threshold and the 3x3 tie rule and
//      appends a 64-bit sort key for each peak through an atomic counter (order nondeterministic);
//   3. CUB radix sort of all `capacity` keys (sentinels sort last), which makes the order
//      deterministic because every real key is unique;
//   4. write_sorted_peaks: the first min(found, max_peaks) keys give the pixel indices, the peaks
//      are refined there with peak_offset() and written out, with the count.
// The whole capacity is sorted because the number of candidates is only known on the device and
// CUB takes num_items from the host; capacity is a quarter of the pixels, cheap next to the
// network.
#include <algorithm>
#include <climits>
#include <cstdint>
#include <cub/device/device_radix_sort.cuh>

#include "../peak_rules.hpp"
#include "postprocess_cuda.hpp"

namespace cathtrack::postprocess::cuda {

namespace {

constexpr std::size_t kAlignment = 256;  // of every sub-buffer: what cudaMalloc guarantees
constexpr int kBlockWidth = 32;          // one warp along a row: coalesced loads
constexpr int kBlockHeight = 8;
constexpr int kMaxGridHeight = 65535;  // gridDim.y limit; kernels stride over the remaining rows
constexpr int kWriteBlockSize = 256;

constexpr std::size_t align_up(std::size_t bytes) {
  return (bytes + kAlignment - 1) / kAlignment * kAlignment;
}

// Where everything lives in the workspace, relative to its first 256-byte aligned address.
struct PeaksLayout {
  int capacity = 0;    // most peaks an image can hold
  int index_bits = 0;  // bits of a pixel index, the low part of a sort key
  std::size_t counter_offset = 0;
  std::size_t keys_offset[2] = {0, 0};  // the two buffers of CUB's DoubleBuffer
  std::size_t sort_temp_offset = 0;
  std::size_t sort_temp_bytes = 0;
  std::size_t used_bytes = 0;  // from the aligned base
};

bool valid_size(int height, int width) {
  return height > 0 && width > 0 &&
         static_cast<std::int64_t>(height) * width <= static_cast<std::int64_t>(INT_MAX);
}

// The radix sort call; with temp_storage == nullptr it only sets temp_storage_bytes. Both uses go
// through here so the size query sees exactly the arguments of the real sort.
cudaError_t sort_keys(void* temp_storage, std::size_t& temp_storage_bytes,
                      cub::DoubleBuffer<std::uint64_t>& keys, int capacity, int index_bits,
                      cudaStream_t stream) {
  // Keys use 32 score bits above index_bits index bits; higher bits are sentinel-only.
  return cub::DeviceRadixSort::SortKeys(temp_storage, temp_storage_bytes, keys, capacity, 0,
                                        32 + index_bits, stream);
}

cudaError_t plan_peaks_workspace(int height, int width, PeaksLayout* layout) {
  // The tie rule makes peaks pairwise non-adjacent (of two equal neighbours only the first in
  // raster order can win, of two different ones only the larger), so each 2x2 block of pixels
  // holds at most one: ceil(h/2) * ceil(w/2) slots always suffice.
  const std::int64_t pixels = static_cast<std::int64_t>(height) * width;
  layout->capacity =
      static_cast<int>(((height + std::int64_t{1}) / 2) * ((width + std::int64_t{1}) / 2));
  layout->index_bits = 1;
  while ((std::int64_t{1} << layout->index_bits) < pixels) ++layout->index_bits;

  cub::DoubleBuffer<std::uint64_t> no_keys(nullptr, nullptr);
  std::size_t temp_bytes = 0;
  const cudaError_t status =
      sort_keys(nullptr, temp_bytes, no_keys, layout->capacity, layout->index_bits, nullptr);
  if (status != cudaSuccess) return status;

  const std::size_t keys_bytes = align_up(static_cast<std::size_t>(layout->capacity) * 8);
  layout->counter_offset = 0;
  layout->keys_offset[0] = layout->counter_offset + align_up(sizeof(int));
  layout->keys_offset[1] = layout->keys_offset[0] + keys_bytes;
  layout->sort_temp_offset = layout->keys_offset[1] + keys_bytes;
  layout->sort_temp_bytes = temp_bytes;
  layout->used_bytes = layout->sort_temp_offset + align_up(temp_bytes);
  return cudaSuccess;
}

// Sort key: ascending key order = score descending, then index ascending (peak_before()).
__device__ std::uint64_t peak_sort_key(float score, std::int64_t index, int index_bits) {
  std::uint32_t bits = __float_as_uint(score);
  // peak_before() finds -0 and +0 equal, so they must share a key and leave the order to the index.
  // Done on the bits: a float-level `score == 0 ? 0 : score` is easily folded away.
  if ((bits & 0x7fffffffu) == 0) bits = 0;
  // Order-preserving float -> unsigned map (NaN never gets here: it fails the threshold test).
  const std::uint32_t ascending = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
  const std::uint32_t descending = ~ascending;
  // descending == 0xffffffff would need ascending == 0, i.e. the NaN 0xffffffff: so a real key is
  // always below the all-ones sentinel within the sorted bits.
  return (static_cast<std::uint64_t>(descending) << index_bits) | static_cast<std::uint64_t>(index);
}

__global__ void collect_peak_candidates(const float* __restrict__ heatmap, int height, int width,
                                        float threshold, int index_bits, int capacity,
                                        int* __restrict__ candidate_count,
                                        std::uint64_t* __restrict__ keys) {
  const int col = blockIdx.x * blockDim.x + threadIdx.x;
  if (col >= width) return;
  const std::int64_t row_stride = static_cast<std::int64_t>(gridDim.y) * blockDim.y;
  for (std::int64_t row = blockIdx.y * blockDim.y + threadIdx.y; row < height; row += row_stride) {
    const std::int64_t index = row * width + col;
    const float value = heatmap[index];
    if (!(value >= threshold)) continue;  // also rejects NaN, as on the CPU
    if (!is_peak(heatmap, height, width, row, col, value)) continue;
    const int slot = atomicAdd(candidate_count, 1);
    // Cannot fail (see plan_peaks_workspace); guards memory should that reasoning ever break.
    if (slot < capacity) keys[slot] = peak_sort_key(value, index, index_bits);
  }
}

__global__ void write_sorted_peaks(const float* __restrict__ heatmap, int height, int width,
                                   const std::uint64_t* __restrict__ sorted_keys, int index_bits,
                                   const int* __restrict__ candidate_count, int capacity,
                                   int max_peaks, Peak* __restrict__ out_peaks,
                                   int* __restrict__ out_count) {
  const int keep = min(min(*candidate_count, capacity), max_peaks);
  const int rank = blockIdx.x * blockDim.x + threadIdx.x;
  if (rank == 0) *out_count = keep;
  if (rank >= keep) return;
  const std::uint64_t index_mask = (std::uint64_t{1} << index_bits) - 1;
  const std::int64_t index = static_cast<std::int64_t>(sorted_keys[rank] & index_mask);
  const std::int64_t row = index / width;
  const int col = static_cast<int>(index - row * width);
  const float* line = heatmap + row * width;
  const float value = line[col];
  // Same expressions, same argument order as peaks.cpp, so the same bits (with -fmad=false).
  const float dx = (col > 0 && col + 1 < width)
                       ? peak_offset(comparable(line[col - 1]), value, comparable(line[col + 1]))
                       : 0.0f;
  const float dy = (row > 0 && row + 1 < height) ? peak_offset(comparable(line[col - width]), value,
                                                               comparable(line[col + width]))
                                                 : 0.0f;
  out_peaks[rank] = Peak{static_cast<float>(col) + dx, static_cast<float>(row) + dy, value,
                         static_cast<std::int32_t>(index)};
}

dim3 pixel_grid(int height, int width) {
  const int grid_width = (width + kBlockWidth - 1) / kBlockWidth;
  const int grid_height = std::min((height + kBlockHeight - 1) / kBlockHeight, kMaxGridHeight);
  return dim3(static_cast<unsigned>(grid_width), static_cast<unsigned>(grid_height));
}

}  // namespace

std::size_t find_peaks_workspace_bytes(int height, int width) {
  if (!valid_size(height, width)) return 0;
  PeaksLayout layout;
  if (plan_peaks_workspace(height, width, &layout) != cudaSuccess) return 0;
  return layout.used_bytes + kAlignment;  // slack to align an arbitrary workspace pointer
}

cudaError_t find_peaks(const float* heatmap, int height, int width, float threshold, int max_peaks,
                       void* workspace, std::size_t workspace_bytes, Peak* out_peaks,
                       int* out_count, cudaStream_t stream) {
  if (out_count == nullptr) return cudaErrorInvalidValue;
  if (height <= 0 || width <= 0 || max_peaks <= 0) {
    return cudaMemsetAsync(out_count, 0, sizeof(int), stream);
  }
  if (!valid_size(height, width) || heatmap == nullptr || out_peaks == nullptr ||
      workspace == nullptr) {
    return cudaErrorInvalidValue;
  }
  PeaksLayout layout;
  cudaError_t status = plan_peaks_workspace(height, width, &layout);
  if (status != cudaSuccess) return status;
  const auto address = reinterpret_cast<std::uintptr_t>(workspace);
  const std::size_t misalignment = align_up(address) - address;
  if (misalignment + layout.used_bytes > workspace_bytes) return cudaErrorInvalidValue;
  char* base = static_cast<char*>(workspace) + misalignment;
  int* candidate_count = reinterpret_cast<int*>(base + layout.counter_offset);
  auto* keys_a = reinterpret_cast<std::uint64_t*>(base + layout.keys_offset[0]);
  auto* keys_b = reinterpret_cast<std::uint64_t*>(base + layout.keys_offset[1]);
  void* sort_temp = base + layout.sort_temp_offset;

  status = cudaMemsetAsync(candidate_count, 0, sizeof(int), stream);
  if (status != cudaSuccess) return status;
  // All-ones sentinels: the slots no candidate fills sort after every real key.
  status = cudaMemsetAsync(keys_a, 0xff, static_cast<std::size_t>(layout.capacity) * 8, stream);
  if (status != cudaSuccess) return status;

  collect_peak_candidates<<<pixel_grid(height, width), dim3(kBlockWidth, kBlockHeight), 0,
                            stream>>>(heatmap, height, width, threshold, layout.index_bits,
                                      layout.capacity, candidate_count, keys_a);
  status = cudaGetLastError();
  if (status != cudaSuccess) return status;

  cub::DoubleBuffer<std::uint64_t> keys(keys_a, keys_b);
  std::size_t sort_temp_bytes = layout.sort_temp_bytes;
  status = sort_keys(sort_temp, sort_temp_bytes, keys, layout.capacity, layout.index_bits, stream);
  if (status != cudaSuccess) return status;

  const int writers = std::min(max_peaks, layout.capacity);
  const int write_blocks = (writers + kWriteBlockSize - 1) / kWriteBlockSize;
  write_sorted_peaks<<<write_blocks, kWriteBlockSize, 0, stream>>>(
      heatmap, height, width, keys.Current(), layout.index_bits, candidate_count, layout.capacity,
      max_peaks, out_peaks, out_count);
  return cudaGetLastError();
}

}  // namespace cathtrack::postprocess::cuda
