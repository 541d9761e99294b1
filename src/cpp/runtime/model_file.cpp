// The one translation unit that includes the heavy TorchScript and AOTInductor headers.
#include "runtime/model_file.hpp"

#include <ATen/Version.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>
#include <torch/version.h>

#include <array>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <utility>

namespace cathtrack::runtime {
namespace {

// AOTInductor's name of the model inside a package written by aoti_compile_and_package().
constexpr const char* kPackageModelName = "model";

std::string suffix_of(const std::string& path) {
  return std::filesystem::path(path).extension().string();
}

void require_file(const std::string& path) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) {
    throw ModelFileError(path + ": model file not found");
  }
}

// What a libtorch exception says, without its C++ backtrace.
std::string reason(const std::exception& error) {
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&error)) {
    return c10_error->what_without_backtrace();
  }
  return error.what();
}

Metadata read_torchscript_metadata(const std::string& path) {
  std::string text;
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    const std::string record = std::string("extra/") + kTorchScriptMetadataRecord;
    if (!reader.hasRecord(record)) {
      throw ModelFileError(path +
                           ": not a cathtrack model file (a TorchScript archive "
                           "without the cathtrack.json metadata; export it with "
                           "'cathtrack export --format ts')");
    }
    auto [data, size] = reader.getRecord(record);
    text.assign(static_cast<const char*>(data.get()), size);
  } catch (const ModelFileError&) {
    throw;
  } catch (const std::exception& error) {
    throw ModelFileError(path + ": cannot read the TorchScript archive (" + reason(error) + ")");
  }
  try {
    return parse_flat_json(text);
  } catch (const std::invalid_argument& error) {
    throw ModelFileError(path + ": " + error.what());
  }
}

Metadata read_package_metadata(const std::string& path) {
  std::unordered_map<std::string, std::string> found;
  try {
    found = torch::inductor::AOTIModelPackageLoader::load_metadata_from_package(path,
                                                                                kPackageModelName);
  } catch (const std::exception& error) {
    throw ModelFileError(path + ": cannot read the AOTInductor package (" + reason(error) + ")");
  }
  return Metadata(found.begin(), found.end());
}

// A .pt2 holds machine code for one CPU instruction set: refuse one compiled for an ISA this
// machine lacks instead of dying of SIGILL inside it.
void check_cpu_capability(const ModelSpec& spec, const std::string& path) {
  static constexpr std::array<const char*, 3> kX86Levels = {"DEFAULT", "AVX2", "AVX512"};
  const std::string here = at::get_cpu_capability();
  auto level = [](const std::string& name) {
    for (std::size_t i = 0; i < kX86Levels.size(); ++i) {
      if (name == kX86Levels[i]) return static_cast<int>(i);
    }
    return -1;
  };
  const int wanted = level(spec.cpu_capability), have = level(here);
  const bool ok = spec.cpu_capability == here || (wanted >= 0 && have >= 0 && wanted <= have);
  if (!ok) {
    throw ModelFileError(path + ": compiled for CPU capability '" + spec.cpu_capability +
                         "' but this machine has '" + here +
                         "'; export the model again on this machine");
  }
}

// An AOTInductor package calls into the libtorch that compiled it: run by another torch it can
// crash the process, so refuse one whose recorded torch release differs from the linked one.
// Local version labels ("+cpu", "+cu130") are ignored: the ABI is the release's.
void check_torch_version(const Metadata& metadata, const std::string& path) {
  const auto recorded = metadata.find("torch_version");
  if (recorded == metadata.end()) return;  // older files: the Python loader warns about them
  auto release = [](const std::string& version) { return version.substr(0, version.find('+')); };
  const std::string linked = std::to_string(TORCH_VERSION_MAJOR) + "." +
                             std::to_string(TORCH_VERSION_MINOR) + "." +
                             std::to_string(TORCH_VERSION_PATCH);
  if (release(recorded->second) != linked) {
    throw ModelFileError(path + ": compiled by torch " + recorded->second +
                         " but this engine links torch " + linked +
                         "; export the model again with this torch");
  }
}

class TorchScriptModel final : public ModelFile {
 public:
  TorchScriptModel(const std::string& path, const c10::Device& device, Metadata metadata,
                   ModelSpec spec)
      : ModelFile(std::move(metadata), std::move(spec)) {
    try {
      module_ = torch::jit::load(path, device);
    } catch (const std::exception& error) {
      throw ModelFileError(path + ": cannot load the TorchScript model (" + reason(error) + ")");
    }
    module_.eval();
  }

  std::vector<at::Tensor> forward(const at::Tensor& input) override {
    const c10::IValue output = module_.forward({input});
    std::vector<at::Tensor> tensors;
    if (output.isTuple()) {
      for (const auto& element : output.toTupleRef().elements()) {
        if (element.isTensor()) tensors.push_back(element.toTensor());
      }
    }
    return tensors;
  }

 private:
  torch::jit::Module module_;
};

class PackageModel final : public ModelFile {
 public:
  PackageModel(const std::string& path, const c10::Device& device, Metadata metadata,
               ModelSpec spec)
      : ModelFile(std::move(metadata), std::move(spec)) {
    try {
      loader_ = std::make_unique<torch::inductor::AOTIModelPackageLoader>(
          path, kPackageModelName, /*run_single_threaded=*/false, /*num_runners=*/1,
          device.is_cuda() ? device.index() : c10::DeviceIndex{-1});
    } catch (const std::exception& error) {
      throw ModelFileError(path + ": cannot load the AOTInductor package (" + reason(error) + ")");
    }
  }

  std::vector<at::Tensor> forward(const at::Tensor& input) override {
    return loader_->run({input});
  }

 private:
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader_;
};

}  // namespace

std::string model_format_of(const std::string& path) {
  const std::string suffix = suffix_of(path);
  if (suffix == ".pt2") return "pt2";
  if (suffix == ".ts") return "ts";
  throw ModelFileError(path + ": unknown model file suffix '" + suffix +
                       "' (expected .pt2 or .ts, written by 'cathtrack export')");
}

Metadata read_metadata(const std::string& path) {
  const std::string format = model_format_of(path);
  require_file(path);
  Metadata metadata =
      format == "pt2" ? read_package_metadata(path) : read_torchscript_metadata(path);
  check_metadata(metadata, format, path);
  return metadata;
}

std::unique_ptr<ModelFile> ModelFile::open(const std::string& path, const c10::Device& device) {
  Metadata metadata = read_metadata(path);
  ModelSpec spec = check_metadata(metadata, model_format_of(path), path);
  if (spec.precision == Precision::kFloat16 && !device.is_cuda()) {
    throw ModelFileError(path +
                         ": a float16 model runs only on CUDA (export it without "
                         "--half for the CPU)");
  }
  if (spec.format == "ts") {
    return std::make_unique<TorchScriptModel>(path, device, std::move(metadata), std::move(spec));
  }
  const std::string device_type = c10::DeviceTypeName(device.type(), /*lower_case=*/true);
  if (spec.device != device_type) {
    throw ModelFileError(path + ": compiled for device '" + spec.device + "', cannot run on '" +
                         device_type + "'; export it with --device " + device_type);
  }
  check_torch_version(metadata, path);
  if (!device.is_cuda()) check_cpu_capability(spec, path);
  return std::make_unique<PackageModel>(path, device, std::move(metadata), std::move(spec));
}

}  // namespace cathtrack::runtime
