#include "runtime/preprocess.hpp"

#include <ATen/core/Tensor.h>
#include <ATen/ops/_upsample_bilinear2d_aa.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>

namespace cathtrack::runtime {
namespace {

// Ranks of lo and hi among n sorted values, in integer arithmetic as normalize.py's
// _rank_bounds: floor(0.005 (n-1)) and ceil(0.995 (n-1)).
std::pair<std::int64_t, std::int64_t> rank_bounds(std::int64_t n) {
  const std::int64_t last = n - 1;
  return {last * 5 / 1000, (last * 995 + 999) / 1000};
}

// Step 3 of the rule, in float32 like numpy: (x - lo) / (hi - lo) clipped to [0, 1].
struct Stretch {
  float lo, hi, range;
  Stretch(float low, float high) : lo(low), hi(high), range(high - low) {}
  float operator()(float x) const {
    if (hi > lo) return std::min(std::max((x - lo) / range, 0.0f), 1.0f);
    return x < lo ? 0.0f : (x > hi ? 1.0f : 0.5f);
  }
};

template <typename T>
void stretch_by_histogram(const T* pixels, std::int64_t n, std::vector<std::uint32_t>& histogram,
                          std::vector<float>& lookup, float* out) {
  constexpr std::size_t kBins = std::size_t{1} << (8 * sizeof(T));
  histogram.assign(kBins, 0);
  for (std::int64_t i = 0; i < n; ++i) ++histogram[pixels[i]];
  const auto [lo_rank, hi_rank] = rank_bounds(n);
  // The value of rank r is the first bin whose cumulative count exceeds r.
  std::int64_t cumulative = 0;
  std::size_t lo_bin = kBins, hi_bin = kBins;
  for (std::size_t bin = 0; bin < kBins && hi_bin == kBins; ++bin) {
    cumulative += histogram[bin];
    if (lo_bin == kBins && cumulative > lo_rank) lo_bin = bin;
    if (cumulative > hi_rank) hi_bin = bin;
  }
  const Stretch stretch(static_cast<float>(lo_bin), static_cast<float>(hi_bin));
  lookup.resize(kBins);
  for (std::size_t value = 0; value < kBins; ++value) {
    lookup[value] = stretch(static_cast<float>(value));
  }
  for (std::int64_t i = 0; i < n; ++i) out[i] = lookup[pixels[i]];
}

void stretch_by_partition(const float* pixels, std::int64_t n, std::vector<float>& finite,
                          float* out) {
  finite.clear();
  for (std::int64_t i = 0; i < n; ++i) {
    if (std::isfinite(pixels[i])) finite.push_back(pixels[i]);
  }
  if (finite.empty()) {
    std::fill(out, out + n, 0.0f);
    return;
  }
  const auto [lo_rank, hi_rank] = rank_bounds(static_cast<std::int64_t>(finite.size()));
  std::nth_element(finite.begin(), finite.begin() + hi_rank, finite.end());
  const float hi = finite[hi_rank];
  std::nth_element(finite.begin(), finite.begin() + lo_rank, finite.begin() + hi_rank);
  const float lo = finite[lo_rank];
  const Stretch stretch(lo, hi);
  for (std::int64_t i = 0; i < n; ++i) {
    out[i] = std::isfinite(pixels[i]) ? stretch(pixels[i]) : 0.0f;
  }
}

}  // namespace

void check_frame(const FrameView& frame) {
  if (frame.data == nullptr || frame.height <= 0 || frame.width <= 0) {
    throw std::invalid_argument("the frame is empty (" + std::to_string(frame.height) + "x" +
                                std::to_string(frame.width) + ")");
  }
  if (static_cast<std::int64_t>(frame.height) * frame.width > (std::int64_t{1} << 28)) {
    throw std::invalid_argument("the frame is too large (" + std::to_string(frame.height) + "x" +
                                std::to_string(frame.width) + ", more than 2^28 pixels)");
  }
}

void Normalizer::operator()(const FrameView& frame, float* out) {
  check_frame(frame);
  const std::int64_t n = static_cast<std::int64_t>(frame.height) * frame.width;
  switch (frame.type) {
    case PixelType::kUint8:
      stretch_by_histogram(static_cast<const std::uint8_t*>(frame.data), n, histogram_, lookup_,
                           out);
      break;
    case PixelType::kUint16:
      stretch_by_histogram(static_cast<const std::uint16_t*>(frame.data), n, histogram_, lookup_,
                           out);
      break;
    case PixelType::kFloat32:
      stretch_by_partition(static_cast<const float*>(frame.data), n, finite_, out);
      break;
  }
}

struct Preprocessor::Resizer {
  at::Tensor output;  // (1, 1, size, size) float32, allocated once
};

Preprocessor::Preprocessor(int size) : size_(size), resize_(std::make_unique<Resizer>()) {
  if (size <= 0) throw std::invalid_argument("the model input size must be positive");
  resize_->output = at::empty({1, 1, size, size}, at::kFloat);
}

Preprocessor::~Preprocessor() = default;

const float* Preprocessor::operator()(const FrameView& frame) {
  check_frame(frame);
  normalized_.resize(static_cast<std::size_t>(frame.height) * frame.width);
  normalize_(frame, normalized_.data());
  if (frame.height == size_ && frame.width == size_) return normalized_.data();
  // resize_frame(): F.interpolate(mode="bilinear", align_corners=False, antialias=True) with an
  // output size and no scale factors, i.e. this operator with scales derived from the sizes.
  const at::Tensor input =
      at::from_blob(normalized_.data(), {1, 1, frame.height, frame.width}, at::kFloat);
  at::_upsample_bilinear2d_aa_out(resize_->output, input, {size_, size_}, false);
  return resize_->output.data_ptr<float>();
}

}  // namespace cathtrack::runtime
