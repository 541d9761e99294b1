// Bit-for-bit parity of the CUDA post-processing (src/cpp/postprocess/cuda) with the CPU reference.
//
// Builds seeded heatmaps and masks (plateaus, NaN, infinities, signed zeros, denormals, shapes that
// touch the border, 1-pixel-wide images), runs CPU and CUDA, compares every bit.
// Exit status: 0 all equal, 1 a mismatch or a CUDA error, 77 no CUDA device (nothing was run).
//
// Built by CMake (tests/cpp, target cuda_parity) whenever nvcc is found, with the flags parity
// needs (-fmad=false here, -ffp-contract=off for the CPU core): `make cuda-build` builds and
// runs it, and so does tools/gpu_check.sh on a GPU (docs/cuda.md).
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "postprocess/cuda/postprocess_cuda.hpp"
#include "postprocess/peaks.hpp"
#include "postprocess/thinning.hpp"

namespace {

namespace pp = cathtrack::postprocess;
namespace ppc = cathtrack::postprocess::cuda;

int g_failures = 0;

void fail(const std::string& what) {
  ++g_failures;
  if (g_failures <= 20) std::fprintf(stderr, "MISMATCH: %s\n", what.c_str());
}

// Test-side CUDA error check: reports and makes the run fail, never aborts mid-way.
bool ok(cudaError_t status, const char* what) {
  if (status == cudaSuccess) return true;
  fail(std::string(what) + ": " + cudaGetErrorString(status));
  return false;
}

template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::size_t count) {
    if (count > 0) ok(cudaMalloc(&data_, count * sizeof(T)), "cudaMalloc");
  }
  ~DeviceBuffer() { cudaFree(data_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  T* get() const { return data_; }

 private:
  T* data_ = nullptr;
};

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// ---------------------------------------------------------------------------------------------
// Peaks

std::vector<float> make_heatmap(int kind, int height, int width, std::mt19937& rng) {
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  std::vector<float> heatmap(static_cast<std::size_t>(height) * width);
  switch (kind) {
    case 0:  // continuous noise
      for (float& v : heatmap) v = uniform(rng);
      break;
    case 1:  // four levels: plateaus and ties everywhere, the tie rule decides
      for (float& v : heatmap) v = std::floor(uniform(rng) * 4.0f) / 4.0f;
      break;
    case 2: {  // Gaussian blobs on a faint floor, what the network produces: log-parabola
               // refinement
      for (float& v : heatmap) v = 0.01f * uniform(rng);
      const int blobs = 1 + (height * width) / 200;
      for (int b = 0; b < blobs; ++b) {
        const float cy = uniform(rng) * height, cx = uniform(rng) * width;
        const float sigma = 0.7f + 2.0f * uniform(rng), amplitude = 0.2f + 0.8f * uniform(rng);
        for (int r = 0; r < height; ++r) {
          for (int c = 0; c < width; ++c) {
            const float d2 = (r - cy) * (r - cy) + (c - cx) * (c - cx);
            if (d2 < 36.0f * sigma * sigma) {
              heatmap[static_cast<std::size_t>(r) * width + c] +=
                  amplitude * std::exp(-d2 / (2.0f * sigma * sigma));
            }
          }
        }
      }
      break;
    }
    case 3: {  // special values: NaN, infinities, signed zeros, denormals, negatives
      const float specials[] = {std::numeric_limits<float>::quiet_NaN(),
                                std::numeric_limits<float>::infinity(),
                                -std::numeric_limits<float>::infinity(),
                                0.0f,
                                -0.0f,
                                std::numeric_limits<float>::denorm_min(),
                                1e-39f,
                                std::numeric_limits<float>::min(),
                                -0.5f,
                                0.5f,
                                1.0f};
      std::uniform_int_distribution<int> pick(0, static_cast<int>(sizeof specials / sizeof(float)));
      for (float& v : heatmap) {
        const int i = pick(rng);
        v = i < static_cast<int>(sizeof specials / sizeof(float)) ? specials[i]
                                                                  : uniform(rng) * 2.0f - 1.0f;
      }
      break;
    }
    case 4:  // constant: one plateau, one peak at index 0
      for (float& v : heatmap) v = 0.75f;
      break;
    default:  // signed zeros only, so -0 and +0 peaks compete and only the index may order them
      for (float& v : heatmap) v = uniform(rng) < 0.5f ? 0.0f : -0.0f;
      for (std::size_t i = 0; i < heatmap.size(); i += 7) heatmap[i] = -1.0f;
      break;
  }
  return heatmap;
}

void check_peaks_case(const std::vector<float>& heatmap, int height, int width, float threshold,
                      int max_peaks, const std::string& label) {
  const std::vector<pp::Peak> expected =
      pp::find_peaks(heatmap.data(), height, width, threshold, max_peaks);

  const std::size_t pixels = heatmap.size();
  DeviceBuffer<float> device_heatmap(pixels);
  const int out_capacity = max_peaks > 0 ? max_peaks : 1;
  DeviceBuffer<pp::Peak> device_peaks(out_capacity);
  DeviceBuffer<int> device_count(1);
  const std::size_t workspace_bytes = ppc::find_peaks_workspace_bytes(height, width);
  // One byte more, used from an odd address: the functions must align sub-buffers themselves.
  DeviceBuffer<unsigned char> workspace(workspace_bytes + 1);
  cudaStream_t stream = nullptr;
  if (!ok(cudaStreamCreate(&stream), "cudaStreamCreate")) return;
  if (pixels > 0 && !ok(cudaMemcpy(device_heatmap.get(), heatmap.data(), pixels * sizeof(float),
                                   cudaMemcpyHostToDevice),
                        "copy heatmap")) {
    cudaStreamDestroy(stream);
    return;
  }

  std::vector<pp::Peak> runs[2];
  for (std::vector<pp::Peak>& got : runs) {  // twice: the atomic compaction must not show
    ok(cudaMemset(device_count.get(), 0x7f, sizeof(int)), "poison count");
    if (!ok(ppc::find_peaks(device_heatmap.get(), height, width, threshold, max_peaks,
                            workspace.get() + 1, workspace_bytes, device_peaks.get(),
                            device_count.get(), stream),
            ("find_peaks " + label).c_str()) ||
        !ok(cudaStreamSynchronize(stream), "sync")) {
      cudaStreamDestroy(stream);
      return;
    }
    int count = -1;
    ok(cudaMemcpy(&count, device_count.get(), sizeof(int), cudaMemcpyDeviceToHost), "count");
    if (count < 0 || count > out_capacity) {
      fail(label + ": count " + std::to_string(count));
      cudaStreamDestroy(stream);
      return;
    }
    got.resize(count);
    if (count > 0) {
      ok(cudaMemcpy(got.data(), device_peaks.get(), count * sizeof(pp::Peak),
                    cudaMemcpyDeviceToHost),
         "peaks");
    }
  }
  cudaStreamDestroy(stream);

  if (runs[0].size() != expected.size()) {
    fail(label + ": " + std::to_string(runs[0].size()) + " peaks, CPU " +
         std::to_string(expected.size()));
    return;
  }
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const pp::Peak& e = expected[i];
    for (const std::vector<pp::Peak>& got : runs) {
      const pp::Peak& g = got[i];
      if (!same_bits(e.x, g.x) || !same_bits(e.y, g.y) || !same_bits(e.score, g.score) ||
          e.index != g.index) {
        char text[256];
        std::snprintf(text, sizeof text,
                      "%s: peak %zu CPU (%.9g %.9g %.9g %d) CUDA (%.9g %.9g %.9g %d)",
                      label.c_str(), i, e.x, e.y, e.score, e.index, g.x, g.y, g.score, g.index);
        fail(text);
        return;
      }
    }
  }
}

void check_peaks(std::mt19937& rng) {
  const int sizes[][2] = {{1, 1},   {1, 9},     {9, 1},     {2, 2},     {3, 5},      {17, 31},
                          {64, 64}, {127, 255}, {256, 512}, {513, 257}, {1024, 1024}};
  const float thresholds[] = {0.5f,
                              0.0f,
                              -std::numeric_limits<float>::infinity(),
                              std::numeric_limits<float>::infinity(),
                              std::numeric_limits<float>::quiet_NaN(),
                              std::numeric_limits<float>::denorm_min()};
  int cases = 0;
  for (const auto& size : sizes) {
    for (int kind = 0; kind < 6; ++kind) {
      const std::vector<float> heatmap = make_heatmap(kind, size[0], size[1], rng);
      for (float threshold : thresholds) {
        for (int max_peaks : {0, -3, 1, 7, 100, size[0] * size[1] + 5}) {
          const std::string label = std::to_string(size[0]) + "x" + std::to_string(size[1]) +
                                    " kind " + std::to_string(kind) + " threshold " +
                                    std::to_string(threshold) + " max " + std::to_string(max_peaks);
          check_peaks_case(heatmap, size[0], size[1], threshold, max_peaks, label);
          ++cases;
        }
      }
    }
  }
  // Larger than any real heatmap, everything a candidate: the capacity bound and the sort at scale.
  const std::vector<float> big = make_heatmap(1, 2048, 3000, rng);
  check_peaks_case(big, 2048, 3000, -std::numeric_limits<float>::infinity(), 1 << 22, "big");
  std::printf("peaks: %d cases\n", cases + 1);
}

void check_peaks_errors() {
  DeviceBuffer<float> heatmap(64 * 64);
  DeviceBuffer<pp::Peak> peaks(10);
  DeviceBuffer<int> count(1);
  const std::size_t bytes = ppc::find_peaks_workspace_bytes(64, 64);
  DeviceBuffer<unsigned char> workspace(bytes);
  if (ppc::find_peaks(heatmap.get(), 64, 64, 0.5f, 10, workspace.get(), bytes / 2, peaks.get(),
                      count.get(), nullptr) != cudaErrorInvalidValue) {
    fail("find_peaks accepted a small workspace");
  }
  // Empty image: count 0 with no workspace at all.
  ok(cudaMemset(count.get(), 0x7f, sizeof(int)), "poison");
  ok(ppc::find_peaks(heatmap.get(), 0, 64, 0.5f, 10, nullptr, 0, peaks.get(), count.get(), nullptr),
     "find_peaks empty");
  int host_count = -1;
  ok(cudaMemcpy(&host_count, count.get(), sizeof(int), cudaMemcpyDeviceToHost), "count");
  if (host_count != 0) fail("empty image gave count " + std::to_string(host_count));
  if (ppc::find_peaks_workspace_bytes(0, 5) != 0) fail("workspace for an empty image");
}

// ---------------------------------------------------------------------------------------------
// Thinning

std::vector<std::uint8_t> make_mask(int kind, int height, int width, std::mt19937& rng) {
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  std::vector<std::uint8_t> mask(static_cast<std::size_t>(height) * width, 0);
  auto set = [&](int r, int c, std::uint8_t v) {
    if (r >= 0 && r < height && c >= 0 && c < width)
      mask[static_cast<std::size_t>(r) * width + c] = v;
  };
  switch (kind) {
    case 0:
    case 1:
    case 2: {  // noise of density 0.2, 0.5, 0.85, with nonzero values other than 1
      const float density = kind == 0 ? 0.2f : kind == 1 ? 0.5f : 0.85f;
      for (std::uint8_t& v : mask) v = uniform(rng) < density ? (uniform(rng) < 0.5f ? 1 : 255) : 0;
      break;
    }
    case 3:  // everything: the foreground touches all four borders
      for (std::uint8_t& v : mask) v = 7;
      break;
    case 4: {  // thick strokes, catheter-like, some running off the image
      const int strokes = 1 + (height + width) / 40;
      for (int s = 0; s < strokes; ++s) {
        float y = uniform(rng) * height, x = uniform(rng) * width;
        float angle = uniform(rng) * 6.2831853f;
        const float radius = 0.5f + 6.0f * uniform(rng);
        const int steps = static_cast<int>((height + width) * uniform(rng)) + 1;
        for (int i = 0; i < steps; ++i) {
          angle += (uniform(rng) - 0.5f) * 0.2f;
          y += std::sin(angle);
          x += std::cos(angle);
          const int ir = static_cast<int>(radius) + 1;
          for (int dy = -ir; dy <= ir; ++dy) {
            for (int dx = -ir; dx <= ir; ++dx) {
              if (dy * dy + dx * dx <= radius * radius) {
                set(static_cast<int>(y) + dy, static_cast<int>(x) + dx, 1);
              }
            }
          }
        }
      }
      break;
    }
    default: {  // smooth blobs (thresholded sum of Gaussians): holes, junctions, big iteration
                // counts
      std::vector<float> field(mask.size(), 0.0f);
      const int blobs = 1 + (height * width) / 300;
      for (int b = 0; b < blobs; ++b) {
        const float cy = uniform(rng) * height, cx = uniform(rng) * width;
        const float sigma = 1.0f + 8.0f * uniform(rng);
        const int reach = static_cast<int>(3.0f * sigma) + 1;
        for (int r = static_cast<int>(cy) - reach; r <= static_cast<int>(cy) + reach; ++r) {
          for (int c = static_cast<int>(cx) - reach; c <= static_cast<int>(cx) + reach; ++c) {
            if (r < 0 || r >= height || c < 0 || c >= width) continue;
            const float d2 = (r - cy) * (r - cy) + (c - cx) * (c - cx);
            field[static_cast<std::size_t>(r) * width + c] +=
                std::exp(-d2 / (2.0f * sigma * sigma));
          }
        }
      }
      for (std::size_t i = 0; i < mask.size(); ++i) mask[i] = field[i] > 0.5f ? 1 : 0;
      break;
    }
  }
  return mask;
}

void check_thin_case(const std::vector<std::uint8_t>& mask, int height, int width, bool in_place,
                     const std::string& label) {
  std::vector<std::uint8_t> expected = mask;
  const int expected_iterations = pp::thin(expected.data(), height, width);

  const std::size_t pixels = mask.size();
  DeviceBuffer<std::uint8_t> device_input(pixels);
  DeviceBuffer<std::uint8_t> device_output(pixels);
  const std::size_t workspace_bytes = ppc::thin_workspace_bytes(height, width);
  DeviceBuffer<unsigned char> workspace(workspace_bytes + 3);
  cudaStream_t stream = nullptr;
  if (!ok(cudaStreamCreate(&stream), "cudaStreamCreate")) return;
  if (pixels > 0) {
    ok(cudaMemcpy(device_input.get(), mask.data(), pixels, cudaMemcpyHostToDevice), "copy mask");
    ok(cudaMemset(device_output.get(), 0xcd, pixels), "poison output");
  }
  std::uint8_t* output = in_place ? device_input.get() : device_output.get();
  int iterations = -1;
  const bool ran = ok(ppc::thin(device_input.get(), output, height, width, workspace.get() + 3,
                                workspace_bytes, stream, &iterations),
                      ("thin " + label).c_str()) &&
                   ok(cudaStreamSynchronize(stream), "sync");
  cudaStreamDestroy(stream);
  if (!ran) return;
  std::vector<std::uint8_t> got(pixels);
  if (pixels > 0) ok(cudaMemcpy(got.data(), output, pixels, cudaMemcpyDeviceToHost), "copy back");
  if (iterations != expected_iterations) {
    fail(label + ": " + std::to_string(iterations) + " iterations, CPU " +
         std::to_string(expected_iterations));
  }
  for (std::size_t i = 0; i < pixels; ++i) {
    if (got[i] != expected[i]) {
      fail(label + ": pixel " + std::to_string(i) + " CUDA " + std::to_string(got[i]) + " CPU " +
           std::to_string(expected[i]));
      return;
    }
  }
}

void check_thinning(std::mt19937& rng) {
  const int sizes[][2] = {{1, 1},   {1, 9},     {9, 1},     {2, 2},     {3, 5},      {17, 31},
                          {64, 64}, {127, 255}, {256, 512}, {513, 257}, {1024, 1024}};
  int cases = 0;
  for (const auto& size : sizes) {
    for (int kind = 0; kind < 6; ++kind) {
      const std::vector<std::uint8_t> mask = make_mask(kind, size[0], size[1], rng);
      for (bool in_place : {false, true}) {
        const std::string label = std::to_string(size[0]) + "x" + std::to_string(size[1]) +
                                  " kind " + std::to_string(kind) + (in_place ? " in place" : "");
        check_thin_case(mask, size[0], size[1], in_place, label);
        ++cases;
      }
    }
  }
  // A full disc needs ~radius iterations: several convergence checks, the doubling schedule.
  const int side = 301;
  std::vector<std::uint8_t> disc(static_cast<std::size_t>(side) * side, 0);
  for (int r = 0; r < side; ++r) {
    for (int c = 0; c < side; ++c) {
      if ((r - 150) * (r - 150) + (c - 150) * (c - 150) <= 150 * 150) disc[r * side + c] = 1;
    }
  }
  check_thin_case(disc, side, side, false, "disc");
  std::printf("thinning: %d cases\n", cases + 1);
}

void check_thin_errors() {
  DeviceBuffer<std::uint8_t> image(64 * 64);
  const std::size_t bytes = ppc::thin_workspace_bytes(64, 64);
  DeviceBuffer<unsigned char> workspace(bytes);
  int iterations = -1;
  if (ppc::thin(image.get(), image.get(), 64, 64, workspace.get(), bytes - 300, nullptr,
                &iterations) != cudaErrorInvalidValue) {
    fail("thin accepted a small workspace");
  }
  iterations = -1;
  ok(ppc::thin(nullptr, nullptr, 0, 0, nullptr, 0, nullptr, &iterations), "thin empty");
  if (iterations != 0) fail("empty thin gave " + std::to_string(iterations) + " iterations");
}

}  // namespace

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("no CUDA device, kernels not run\n");
    return 77;
  }
  std::mt19937 rng(20240611u);
  check_peaks(rng);
  check_peaks_errors();
  check_thinning(rng);
  check_thin_errors();
  if (g_failures > 0) {
    std::fprintf(stderr, "%d failure(s)\n", g_failures);
    return 1;
  }
  std::printf("CUDA post-processing equals the CPU reference bit for bit\n");
  return 0;
}
