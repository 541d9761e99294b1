// Frame -> network input, exactly as cathtrack/data/normalize.py does it in training:
// normalize_frame() at the frame's own resolution, then resize_frame() to the model's size.
//
// The interface is torch-free (plain pointers), so the bindings and tests include it cheaply;
// the resize itself calls libtorch's antialiased bilinear operator, the one resize_frame() uses.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace cathtrack::runtime {

enum class PixelType { kUint8, kUint16, kFloat32 };

// A row-major, C-contiguous (height, width) grey frame owned by the caller.
struct FrameView {
  const void* data = nullptr;
  PixelType type = PixelType::kUint8;
  int height = 0;
  int width = 0;
};

// Throws std::invalid_argument for an empty frame or one over 2^28 pixels.
void check_frame(const FrameView& frame);

// normalize_frame() bit for bit (rule in normalize.py's docstring): the n finite pixels' order
// statistics lo = v[floor(0.005 (n-1))] and hi = v[ceil(0.995 (n-1))] (a histogram for integer
// frames, nth_element for floats); out = clip((x - lo) / (hi - lo), 0, 1) in float32, 0.5
// inside when hi == lo, 0 for NaN/inf pixels (all 0 when none is finite). Keeps its work
// buffers between calls; not thread-safe.
class Normalizer {
 public:
  // Writes frame.height * frame.width floats in [0, 1] to out.
  void operator()(const FrameView& frame, float* out);

 private:
  std::vector<std::uint32_t> histogram_;
  std::vector<float> lookup_;
  std::vector<float> finite_;
};

// Normalises and resizes frames to (size, size) float32, reusing its buffers while the frame
// size stays the same. Not thread-safe: each engine owns one.
class Preprocessor {
 public:
  explicit Preprocessor(int size);
  ~Preprocessor();
  Preprocessor(const Preprocessor&) = delete;
  Preprocessor& operator=(const Preprocessor&) = delete;

  // The network input, size * size floats, valid until the next call.
  const float* operator()(const FrameView& frame);

  int size() const { return size_; }

 private:
  struct Resizer;  // the libtorch part
  int size_;
  Normalizer normalize_;
  std::vector<float> normalized_;
  std::unique_ptr<Resizer> resize_;
};

}  // namespace cathtrack::runtime
