// The per-frame engine: preprocess -> forward -> decode -> post-processing core -> frame pixels.
//
// Python's reference is cathtrack/pipeline.py; this engine gives the same electrodes, mask and
// catheters (docs/runtime.md says how closely). The interface is torch-free (pimpl), so the
// bindings compile without libtorch's headers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "postprocess/geometry.hpp"
#include "postprocess/patterns.hpp"
#include "runtime/decode_settings.hpp"
#include "runtime/metadata.hpp"
#include "runtime/preprocess.hpp"

namespace cathtrack::runtime {

struct EngineSettings {
  std::string device = "cpu";  // "cpu", "cuda" or "cuda:N"
  int threads = 0;             // intra-op threads during this engine's calls; 0: torch's setting
  DecodeSettings decode;       // thresholds and lengths (decode_settings.hpp)
  std::vector<postprocess::SpacingTemplate> templates;  // cathtrack.postprocess.spacing_templates()
};

// Throws std::invalid_argument naming the first bad value: negative threads, or bad decoding
// settings (check_decode_settings).
void check_settings(const EngineSettings& settings);

struct CatheterResult {
  std::int32_t type = -1;  // a template's type, -1 when no template matched (< 2 electrodes)
  float type_score = 0.0f;
  postprocess::Polyline centerline;      // frame pixels, distal tip -> proximal
  std::vector<std::int32_t> electrodes;  // indices into FrameResult::electrodes, distal first
  postprocess::Point tip{0.0f, 0.0f};    // = centerline.front()
  postprocess::Point tip_direction{0.0f, 0.0f};  // unit vector, shaft -> tip; 0 if degenerate
};

struct Timings {  // milliseconds
  double preprocess = 0.0;
  double inference = 0.0;
  double postprocess = 0.0;
  double total = 0.0;
};

struct FrameResult {
  std::vector<postprocess::Point> electrodes;  // (x, y) frame pixels, by score descending
  std::vector<float> scores;
  std::vector<postprocess::Point> sizes;  // (width, height) frame pixels
  std::vector<CatheterResult> catheters;
  Timings timings;
};

class Engine {
 public:
  // Loads a .pt2 or .ts model file (model_file.hpp) for settings.device. Throws
  // std::invalid_argument for bad settings and ModelFileError for a file it cannot use.
  Engine(const std::string& path, EngineSettings settings);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // One frame. mask_out receives frame.height * frame.width bytes: the catheter probability
  // * 255, rounded, at the frame's resolution. Calls on one engine are serialised by a mutex;
  // for parallelism use one engine per thread. Throws std::invalid_argument for a bad frame.
  FrameResult run(const FrameView& frame, std::uint8_t* mask_out);

  // Takes these decoding settings for the next frames; device, threads and templates stay as
  // constructed. Bad values throw std::invalid_argument (check_decode_settings) and leave the
  // current settings in place.
  void set_decode_settings(const DecodeSettings& settings);
  // A copy of the decoding settings the next frame uses.
  DecodeSettings decode_settings() const;

  const Metadata& metadata() const;
  int input_size() const;
  std::string device() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cathtrack::runtime
