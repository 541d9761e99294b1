// Model files (.pt2 AOTInductor packages, .ts TorchScript archives): metadata check and forward.
//
// The loader is chosen by the file's suffix. Metadata is read and checked (metadata.hpp) before
// any compiled code or weights are loaded, so a foreign or outdated file is refused with a
// clear error instead of failing somewhere inside libtorch.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <memory>
#include <string>
#include <vector>

#include "runtime/metadata.hpp"

namespace cathtrack::runtime {

class ModelFile {
 public:
  // Opens a model file for `device` (CPU or CUDA). Refuses a file whose metadata this build does
  // not understand, a .pt2 compiled for another device or a CPU this machine's cannot run, and
  // an fp16 file on the CPU. Errors are ModelFileError starting with the path.
  static std::unique_ptr<ModelFile> open(const std::string& path, const c10::Device& device);

  virtual ~ModelFile() = default;

  // input (1, 1, S, S) on the device in the model's precision -> (segmentation logits
  // (1, 1, S, S), centre heatmap (1, 1, S/s, S/s), size (1, 2, S/s, S/s)) for the heatmap
  // stride s = spec().heatmap_stride (4, 2 or 1). Call under
  // c10::InferenceMode. Not thread-safe: one engine (and one ModelFile) per thread.
  virtual std::vector<at::Tensor> forward(const at::Tensor& input) = 0;

  const Metadata& metadata() const { return metadata_; }
  const ModelSpec& spec() const { return spec_; }

 protected:
  ModelFile(Metadata metadata, ModelSpec spec)
      : metadata_(std::move(metadata)), spec_(std::move(spec)) {}

 private:
  Metadata metadata_;
  ModelSpec spec_;
};

}  // namespace cathtrack::runtime
