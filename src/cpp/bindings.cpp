// The one pybind11 module, cathtrack._native. Thin: checks array shapes, releases the GIL, calls
// the post-processing core. Friendly dtype conversion and error messages live in
// python/cathtrack/postprocess.py; the checks here are a second line so no input can crash.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/version.h>

#include <cstdint>
#include <string>
#include <vector>

#include "postprocess/centerline.hpp"
#include "postprocess/patterns.hpp"
#include "postprocess/peaks.hpp"
#include "postprocess/thinning.hpp"

#ifdef CATHTRACK_WITH_CUDA
#include "postprocess/cuda/postprocess_cuda.hpp"
#endif

namespace py = pybind11;
namespace pp = cathtrack::postprocess;

namespace {

template <typename T>
using CArray = py::array_t<T, py::array::c_style>;

void require_image(const py::array& image, const char* name) {
  if (image.ndim() != 2) {
    throw py::value_error(std::string(name) + " must be 2-D (height, width), got " +
                          std::to_string(image.ndim()) + "-D");
  }
  if (image.shape(0) == 0 || image.shape(1) == 0) {
    throw py::value_error(std::string(name) + " must not be empty");
  }
  if (image.shape(0) > INT32_MAX / 4 || image.shape(0) * image.shape(1) > INT32_MAX / 4) {
    throw py::value_error(std::string(name) + " is too large (more than 2^29 pixels)");
  }
}

void require_points(const py::array& points, const char* name) {
  if (points.ndim() != 2 || points.shape(1) != 2) {
    throw py::value_error(std::string(name) + " must have shape (N, 2)");
  }
}

const pp::Point* as_points(const CArray<float>& points) {
  static_assert(sizeof(pp::Point) == 2 * sizeof(float), "Point must be two packed floats");
  return reinterpret_cast<const pp::Point*>(points.data());
}

py::array_t<float> polyline_to_array(const pp::Polyline& line) {
  py::array_t<float> out({static_cast<py::ssize_t>(line.size()), py::ssize_t{2}});
  float* data = out.mutable_data();
  for (std::size_t i = 0; i < line.size(); ++i) {
    data[2 * i] = line[i].x;
    data[2 * i + 1] = line[i].y;
  }
  return out;
}

py::dict build_info() {
  py::dict info;
  info["torch_version"] = TORCH_VERSION;
#if defined(__clang__)
  info["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  info["compiler"] = std::string("gcc ") + __VERSION__;
#else
  info["compiler"] = "unknown";
#endif
  info["cxx_standard"] = static_cast<long>(__cplusplus);
#ifdef CATHTRACK_WITH_CUDA
  info["cuda_kernels"] = true;
  info["cuda_architectures"] = CATHTRACK_CUDA_ARCHITECTURES;
#else
  info["cuda_kernels"] = false;
  info["cuda_architectures"] = "";
#endif
  return info;
}

py::tuple find_peaks(const CArray<float>& heatmap, float threshold, int max_peaks) {
  require_image(heatmap, "heatmap");
  const int height = static_cast<int>(heatmap.shape(0)), width = static_cast<int>(heatmap.shape(1));
  std::vector<pp::Peak> peaks;
  {
    py::gil_scoped_release release;
    peaks = pp::find_peaks(heatmap.data(), height, width, threshold, max_peaks);
  }
  const auto n = static_cast<py::ssize_t>(peaks.size());
  py::array_t<float> xy({n, py::ssize_t{2}});
  py::array_t<float> scores(n);
  py::array_t<std::int32_t> index(n);
  for (py::ssize_t i = 0; i < n; ++i) {
    xy.mutable_at(i, 0) = peaks[i].x;
    xy.mutable_at(i, 1) = peaks[i].y;
    scores.mutable_at(i) = peaks[i].score;
    index.mutable_at(i) = peaks[i].index;
  }
  return py::make_tuple(xy, scores, index);
}

py::tuple thin(const CArray<std::uint8_t>& mask) {
  require_image(mask, "mask");
  const int height = static_cast<int>(mask.shape(0)), width = static_cast<int>(mask.shape(1));
  py::array_t<std::uint8_t> skeleton({mask.shape(0), mask.shape(1)});
  int iterations = 0;
  {
    py::gil_scoped_release release;
    std::copy(mask.data(), mask.data() + mask.size(), skeleton.mutable_data());
    iterations = pp::thin(skeleton.mutable_data(), height, width);
  }
  return py::make_tuple(skeleton, iterations);
}

py::list trace_centerlines(const CArray<std::uint8_t>& skeleton, float min_length) {
  require_image(skeleton, "skeleton");
  std::vector<pp::Polyline> lines;
  {
    py::gil_scoped_release release;
    lines = pp::trace_centerlines(skeleton.data(), static_cast<int>(skeleton.shape(0)),
                                  static_cast<int>(skeleton.shape(1)), min_length);
  }
  py::list out;
  for (const auto& line : lines) out.append(polyline_to_array(line));
  return out;
}

py::tuple assign_electrodes(const std::vector<CArray<float>>& centerlines,
                            const CArray<float>& electrodes, float max_distance) {
  require_points(electrodes, "electrodes");
  std::vector<pp::Polyline> lines;
  for (const auto& array : centerlines) {
    require_points(array, "each centerline");
    const pp::Point* p = as_points(array);
    lines.emplace_back(p, p + array.shape(0));
  }
  std::vector<pp::Assignment> assignments;
  std::vector<std::vector<std::int32_t>> groups;
  {
    py::gil_scoped_release release;
    assignments = pp::assign_electrodes(lines, as_points(electrodes),
                                        static_cast<int>(electrodes.shape(0)), max_distance);
    groups = pp::group_by_centerline(assignments, lines.size());
  }
  const auto n = static_cast<py::ssize_t>(assignments.size());
  py::array_t<std::int32_t> labels(n);
  py::array_t<float> arc_length(n), distance(n);
  for (py::ssize_t i = 0; i < n; ++i) {
    labels.mutable_at(i) = assignments[i].centerline;
    arc_length.mutable_at(i) = assignments[i].arc_length;
    distance.mutable_at(i) = assignments[i].distance;
  }
  py::list ordered;
  for (const auto& group : groups) {
    py::array_t<std::int64_t> indices(static_cast<py::ssize_t>(group.size()));
    for (std::size_t i = 0; i < group.size(); ++i) indices.mutable_at(i) = group[i];
    ordered.append(indices);
  }
  return py::make_tuple(ordered, labels, arc_length, distance);
}

py::tuple classify_spacing(const CArray<float>& ordered,
                           const std::vector<std::pair<int, std::vector<float>>>& templates,
                           float tolerance) {
  require_points(ordered, "ordered electrodes");
  std::vector<pp::SpacingTemplate> converted;
  for (const auto& [type, spacing] : templates) converted.push_back({type, spacing});
  pp::Classification result;
  {
    py::gil_scoped_release release;
    result = pp::classify_spacing(as_points(ordered), static_cast<int>(ordered.shape(0)), converted,
                                  tolerance);
  }
  return py::make_tuple(result.type, result.variant, result.score);
}

#ifdef CATHTRACK_WITH_CUDA
// The CUDA entry points take device pointers and the stream as integers (torch's data_ptr() and
// torch.cuda.current_stream().cuda_stream), so this module needs no CUDA build of torch.
void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(status));
  }
}

template <typename T>
T* device_pointer(std::uintptr_t address) {
  return reinterpret_cast<T*>(address);
}

void find_peaks_cuda(std::uintptr_t heatmap, int height, int width, float threshold, int max_peaks,
                     std::uintptr_t workspace, std::size_t workspace_bytes,
                     std::uintptr_t out_peaks, std::uintptr_t out_count, std::uintptr_t stream) {
  py::gil_scoped_release release;
  check_cuda(
      pp::cuda::find_peaks(device_pointer<const float>(heatmap), height, width, threshold,
                           max_peaks, device_pointer<void>(workspace), workspace_bytes,
                           device_pointer<pp::Peak>(out_peaks), device_pointer<int>(out_count),
                           reinterpret_cast<cudaStream_t>(stream)),
      "find_peaks (cuda)");
}

int thin_cuda(std::uintptr_t input, std::uintptr_t output, int height, int width,
              std::uintptr_t workspace, std::size_t workspace_bytes, std::uintptr_t stream) {
  py::gil_scoped_release release;
  int iterations = 0;
  check_cuda(pp::cuda::thin(device_pointer<const std::uint8_t>(input),
                            device_pointer<std::uint8_t>(output), height, width,
                            device_pointer<void>(workspace), workspace_bytes,
                            reinterpret_cast<cudaStream_t>(stream), &iterations),
             "thin (cuda)");
  return iterations;
}
#endif

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "cathtrack native core (post-processing); use cathtrack.postprocess, not this module";
  m.def("build_info", &build_info);
  m.def("find_peaks", &find_peaks, py::arg("heatmap"), py::arg("threshold"), py::arg("max_peaks"));
  m.def("thin", &thin, py::arg("mask"));
  m.def("trace_centerlines", &trace_centerlines, py::arg("skeleton"), py::arg("min_length"));
  m.def("assign_electrodes", &assign_electrodes, py::arg("centerlines"), py::arg("electrodes"),
        py::arg("max_distance"));
  m.def("classify_spacing", &classify_spacing, py::arg("ordered"), py::arg("templates"),
        py::arg("tolerance"));
  m.def("thinning_tables", [] {
    const auto& tables = pp::kThinningTables.deletes;
    return py::make_tuple(std::vector<int>(tables[0], tables[0] + 256),
                          std::vector<int>(tables[1], tables[1] + 256));
  });
#ifdef CATHTRACK_WITH_CUDA
  m.def("find_peaks_cuda_workspace_bytes", &pp::cuda::find_peaks_workspace_bytes);
  m.def("find_peaks_cuda", &find_peaks_cuda);
  m.def("thin_cuda_workspace_bytes", &pp::cuda::thin_workspace_bytes);
  m.def("thin_cuda", &thin_cuda);
#endif
}
