// The metadata every cathtrack model file carries, and the one version of it this build reads.
//
// Both formats hold the same flat map of string keys to string values: a .pt2 in AOTInductor's
// package metadata, a .ts in its extra file "cathtrack.json" (a flat JSON object of strings).
// The keys and values are written by python/cathtrack/export.py; docs/runtime.md lists them.
// Torch-free, so the checks can be unit-tested and reused without libtorch.
#pragma once

#include <map>
#include <stdexcept>
#include <string>

namespace cathtrack::runtime {

// A model file that is missing, unreadable, corrupt, foreign or of a version this build does not
// read. The message starts with the file's path. (Python sees cathtrack._native.ModelFileError,
// a ValueError.)
class ModelFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

using Metadata = std::map<std::string, std::string>;

inline constexpr const char* kFileFormat = "cathtrack-model-file";
inline constexpr int kFormatVersion = 1;
// The preprocessing the network was trained with: normalize_frame() (0.5/99.5 percentile
// stretch at the frame's resolution) then resize_frame() (antialiased bilinear), both in
// cathtrack/data/normalize.py. A model trained with another rule must not run here.
inline constexpr const char* kNormalization = "percentile-stretch+bilinear-antialias";
inline constexpr int kNormalizationVersion = 1;
inline constexpr const char* kHeads = "segmentation_logits,center_heatmap,size";
// output_strides is "1,s,s": the segmentation at the input's resolution, the centre heatmap and
// the size map at the heatmap stride s, one of these (ModelConfig.heatmap_stride; the paper's 4).
// Files from before strides 2 and 1 all say "1,4,4".
inline constexpr int kHeatmapStrides[] = {4, 2, 1};
inline constexpr const char* kTorchScriptMetadataRecord = "cathtrack.json";

enum class Precision { kFloat32, kFloat16, kBFloat16 };

// What the engine needs to know about a model, checked against what this build understands.
struct ModelSpec {
  int input_size = 0;      // side of the square input, pixels (a multiple of 32)
  int heatmap_stride = 0;  // stride s of the heatmap and size outputs (4, 2 or 1)
  Precision precision = Precision::kFloat32;
  std::string device;          // "cpu" or "cuda": where the file was compiled / meant to run
  std::string format;          // "pt2" or "ts"
  std::string cpu_capability;  // for .pt2 on the CPU: the ISA it was compiled for ("AVX512")
};

// Parses a flat JSON object whose values are all strings ({"key": "value", ...}); anything
// else (numbers, nesting, trailing text) throws std::invalid_argument saying what was wrong.
Metadata parse_flat_json(const std::string& text);

// Checks the metadata of a model file of `format` ("pt2" or "ts"). Throws ModelFileError
// starting with `source` (the file name) and naming the missing or unsupported key.
ModelSpec check_metadata(const Metadata& metadata, const std::string& format,
                         const std::string& source);

// "pt2" or "ts" from the path's suffix; ModelFileError naming the file otherwise.
std::string model_format_of(const std::string& path);

// The checked metadata of a model file, read without loading its weights or code. Throws
// ModelFileError starting with the path for a missing, unreadable, corrupt or foreign file.
// Defined in model_file.cpp, beside the archive readers it needs.
Metadata read_metadata(const std::string& path);

}  // namespace cathtrack::runtime
