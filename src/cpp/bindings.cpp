// The one pybind11 module, cathtrack._native. Thin: checks array shapes, releases the GIL, calls
// the post-processing core or the runtime engine. Friendly dtype conversion and error messages
// live in python/cathtrack/postprocess.py and tracker.py; the checks here are a second line so
// no input can crash.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/version.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "postprocess/arguments.hpp"
#include "postprocess/centerline.hpp"
#include "postprocess/geometry.hpp"
#include "postprocess/patterns.hpp"
#include "postprocess/peaks.hpp"
#include "postprocess/thinning.hpp"
#include "runtime/decode_settings.hpp"
#include "runtime/engine.hpp"
#include "runtime/preprocess.hpp"

#ifdef CATHTRACK_WITH_CUDA
#include "postprocess/cuda/postprocess_cuda.hpp"
#endif

namespace py = pybind11;
namespace pp = cathtrack::postprocess;
namespace rt = cathtrack::runtime;

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
  // The engine's GPU pixel stages (engine_cuda.cpp): a CUDA torch and the kernels.
#ifdef CATHTRACK_TORCH_CUDA
  info["cuda_engine"] = true;
#else
  info["cuda_engine"] = false;
#endif
  return info;
}

// A Python integer that must fit in [0, 2^31 - 1] (a count the core holds in an int): one clear
// ValueError for any other, instead of pybind11's list of overloads for one beyond 32 bits.
int as_count(const py::handle& value, const char* name) {
  const auto number = py::reinterpret_steal<py::object>(PyNumber_Index(value.ptr()));
  if (!number) throw py::error_already_set();  // TypeError: not an integer
  int overflow = 0;
  const long long count = PyLong_AsLongLongAndOverflow(number.ptr(), &overflow);
  if (count == -1 && PyErr_Occurred()) throw py::error_already_set();
  const std::string text = py::str(number).cast<std::string>();
  // On overflow count is -1 and overflow the sign.
  if (overflow < 0 || (overflow == 0 && count < 0)) pp::refuse(name, ">= 0", text);
  if (overflow > 0 || count > INT32_MAX) pp::refuse(name, "<= 2147483647", text);
  return static_cast<int>(count);
}

py::tuple find_peaks(const CArray<float>& heatmap, float threshold, const py::object& max_peaks) {
  require_image(heatmap, "heatmap");
  const int count = as_count(max_peaks, "max_peaks");
  const int height = static_cast<int>(heatmap.shape(0)), width = static_cast<int>(heatmap.shape(1));
  std::vector<pp::Peak> peaks;
  {
    py::gil_scoped_release release;
    peaks = pp::find_peaks(heatmap.data(), height, width, threshold, count);
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

// ---- runtime: frames in, engine results out ---------------------------------------------------

// A (H, W) uint8, uint16 or float32 array as a C-contiguous frame of native byte order; `keep`
// holds a converted copy when the input was not C-contiguous or not in native byte order (a
// big-endian DICOM's pixels). The dtype is matched by value (kind and size), never by identity:
// a frame that went through pickle (multiprocessing, ProcessPoolExecutor, Ray) has a dtype equal
// to numpy's but not numpy's own object. Other dtypes are a TypeError (tracker.py converts them
// first).
rt::FrameView as_frame(const py::array& frame, py::array& keep) {
  if (frame.ndim() != 2) {
    throw py::value_error("frame must be 2-D (height, width), got " + std::to_string(frame.ndim()) +
                          "-D");
  }
  if (frame.shape(0) == 0 || frame.shape(1) == 0) throw py::value_error("frame must not be empty");
  if (frame.shape(0) > (1 << 16) || frame.shape(1) > (1 << 16)) {
    throw py::value_error("frame is too large (a side over 65536 pixels)");
  }
  rt::FrameView view;
  const py::dtype dtype = frame.dtype();
  const char kind = dtype.kind();  // structured and sub-array dtypes are kind 'V'
  const py::ssize_t size = dtype.itemsize();
  // ensure() converts to the native byte order and C order; it gives a null object when numpy
  // cannot convert, which cannot happen for these dtypes but is checked all the same.
  py::object converted;
  if (kind == 'u' && size == 1) {
    converted = CArray<std::uint8_t>::ensure(frame);
    view.type = rt::PixelType::kUint8;
  } else if (kind == 'u' && size == 2) {
    converted = CArray<std::uint16_t>::ensure(frame);
    view.type = rt::PixelType::kUint16;
  } else if (kind == 'f' && size == 4) {
    converted = CArray<float>::ensure(frame);
    view.type = rt::PixelType::kFloat32;
  }
  if (!converted) {
    throw py::type_error("frame dtype must be uint8, uint16 or float32, got " +
                         py::str(dtype).cast<std::string>());
  }
  keep = py::reinterpret_borrow<py::array>(converted);
  view.data = keep.data();
  view.height = static_cast<int>(frame.shape(0));
  view.width = static_cast<int>(frame.shape(1));
  rt::check_frame(view);
  return view;
}

py::dict result_to_dict(const rt::FrameResult& result, py::array_t<std::uint8_t> mask) {
  py::dict out;
  out["mask"] = std::move(mask);
  out["electrodes"] = polyline_to_array(result.electrodes);
  out["scores"] =
      py::array_t<float>(static_cast<py::ssize_t>(result.scores.size()), result.scores.data());
  out["sizes"] = polyline_to_array(result.sizes);
  py::list catheters;
  for (const auto& catheter : result.catheters) {
    py::dict item;
    item["type"] = catheter.type;
    item["type_score"] = catheter.type_score;
    item["centerline"] = polyline_to_array(catheter.centerline);
    py::array_t<std::int64_t> electrodes(static_cast<py::ssize_t>(catheter.electrodes.size()));
    std::copy(catheter.electrodes.begin(), catheter.electrodes.end(), electrodes.mutable_data());
    item["electrodes"] = electrodes;
    item["tip"] = py::make_tuple(catheter.tip.x, catheter.tip.y);
    item["tip_direction"] = py::make_tuple(catheter.tip_direction.x, catheter.tip_direction.y);
    catheters.append(item);
  }
  out["catheters"] = catheters;
  py::dict timings;
  timings["preprocess"] = result.timings.preprocess;
  timings["inference"] = result.timings.inference;
  timings["postprocess"] = result.timings.postprocess;
  timings["total"] = result.timings.total;
  out["timings"] = timings;
  return out;
}

py::dict run_engine(rt::Engine& engine, const py::array& frame) {
  py::array keep;
  const rt::FrameView view = as_frame(frame, keep);
  py::array_t<std::uint8_t> mask({frame.shape(0), frame.shape(1)});
  std::uint8_t* mask_data = mask.mutable_data();
  rt::FrameResult result;
  {
    py::gil_scoped_release release;
    result = engine.run(view, mask_data);
  }
  return result_to_dict(result, std::move(mask));
}

std::unique_ptr<rt::Engine> make_engine(
    const std::string& path, const std::string& device, int threads,
    const std::vector<std::pair<int, std::vector<float>>>& templates,
    const rt::DecodeSettings& decode) {
  rt::EngineSettings settings;
  settings.device = device;
  settings.threads = threads;
  settings.decode = decode;
  for (const auto& [type, spacing] : templates) settings.templates.push_back({type, spacing});
  py::gil_scoped_release release;  // loading a .pt2 extracts and dlopens it: seconds
  return std::make_unique<rt::Engine>(path, std::move(settings));
}

// ---- DecodeSettings: the one binding of the decoding settings ----------------------------------

// Every field once: name, member pointer. The constructor, repr, equality and pickling use it.
template <typename F>
void for_each_field(F&& f) {
  f("score_threshold", &rt::DecodeSettings::score_threshold);
  f("max_peaks", &rt::DecodeSettings::max_peaks);
  f("mask_threshold", &rt::DecodeSettings::mask_threshold);
  f("min_centerline_length", &rt::DecodeSettings::min_centerline_length);
  f("max_assign_distance", &rt::DecodeSettings::max_assign_distance);
  f("spacing_tolerance", &rt::DecodeSettings::spacing_tolerance);
  f("tip_lookback", &rt::DecodeSettings::tip_lookback);
}

bool same_settings(const rt::DecodeSettings& a, const rt::DecodeSettings& b) {
  bool equal = true;
  for_each_field([&](const char*, auto member) { equal = equal && a.*member == b.*member; });
  return equal;
}

// A value as Python would print the float it names (shortest round trip: 0.3, 10.0, 1e-05).
std::string format_value(float value) { return pp::python_repr(value); }

std::string format_value(int value) { return std::to_string(value); }

std::string repr(const rt::DecodeSettings& settings) {
  std::string out = "DecodeSettings(";
  const char* separator = "";
  for_each_field([&](const char* name, auto member) {
    out += separator;
    out += name;
    out += "=";
    out += format_value(settings.*member);
    separator = ", ";
  });
  return out + ")";
}

py::tuple settings_state(const rt::DecodeSettings& settings) {
  py::list values;
  for_each_field([&](const char*, auto member) { values.append(settings.*member); });
  return py::tuple(values);
}

rt::DecodeSettings settings_from_state(const py::tuple& state) {
  rt::DecodeSettings settings;
  std::size_t count = 0;
  for_each_field([&](const char*, auto) { ++count; });
  if (state.size() != count) throw std::runtime_error("DecodeSettings: bad pickled state");
  std::size_t i = 0;
  for_each_field([&](const char*, auto member) {
    using Value = std::remove_reference_t<decltype(settings.*member)>;
    settings.*member = state[i++].cast<Value>();
  });
  return settings;
}

void bind_decode_settings(py::module_& m) {
  const rt::DecodeSettings defaults{};
  py::class_<rt::DecodeSettings> cls(m, "DecodeSettings",
                                     "The engine's decoding settings (src/cpp/runtime/"
                                     "decode_settings.hpp). Build from "
                                     "cathtrack.settings.DecodeSettings.to_native().");
  cls.def(py::init([](float score_threshold, int max_peaks, float mask_threshold,
                      float min_centerline_length, float max_assign_distance,
                      float spacing_tolerance, float tip_lookback) {
            rt::DecodeSettings settings;
            settings.score_threshold = score_threshold;
            settings.max_peaks = max_peaks;
            settings.mask_threshold = mask_threshold;
            settings.min_centerline_length = min_centerline_length;
            settings.max_assign_distance = max_assign_distance;
            settings.spacing_tolerance = spacing_tolerance;
            settings.tip_lookback = tip_lookback;
            return settings;
          }),
          py::kw_only(), py::arg("score_threshold") = defaults.score_threshold,
          py::arg("max_peaks") = defaults.max_peaks,
          py::arg("mask_threshold") = defaults.mask_threshold,
          py::arg("min_centerline_length") = defaults.min_centerline_length,
          py::arg("max_assign_distance") = defaults.max_assign_distance,
          py::arg("spacing_tolerance") = defaults.spacing_tolerance,
          py::arg("tip_lookback") = defaults.tip_lookback);
  for_each_field([&](const char* name, auto member) { cls.def_readwrite(name, member); });
  cls.def("__repr__", &repr)
      .def("__eq__", &same_settings, py::is_operator())
      .def("__copy__", [](const rt::DecodeSettings& s) { return s; })
      .def(
          "__deepcopy__", [](const rt::DecodeSettings& s, const py::dict&) { return s; },
          py::arg("memo"))
      .def(py::pickle(&settings_state, &settings_from_state));
  cls.attr("__hash__") = py::none();  // mutable, compared by value
}

py::array_t<float> normalize_frame(const py::array& frame) {
  py::array keep;
  const rt::FrameView view = as_frame(frame, keep);
  py::array_t<float> out({frame.shape(0), frame.shape(1)});
  float* data = out.mutable_data();
  {
    py::gil_scoped_release release;
    rt::Normalizer normalize;
    normalize(view, data);
  }
  return out;
}

py::array_t<float> preprocess_frame(const py::array& frame, int size) {
  if (size <= 0 || size > 8192) throw py::value_error("size must be in [1, 8192]");
  py::array keep;
  const rt::FrameView view = as_frame(frame, keep);
  py::array_t<float> out({size, size});
  float* data = out.mutable_data();
  {
    py::gil_scoped_release release;
    rt::Preprocessor preprocess(size);
    const float* input = preprocess(view);
    std::copy(input, input + static_cast<std::size_t>(size) * size, data);
  }
  return out;
}

py::dict metadata_to_dict(const rt::Metadata& metadata) {
  py::dict out;
  for (const auto& [key, value] : metadata) out[py::str(key)] = value;
  return out;
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
  m.doc() =
      "cathtrack native core (post-processing, runtime engine); use cathtrack.postprocess and "
      "cathtrack.Tracker, not this module";
  m.def("build_info", &build_info);
  // Arguments the core refuses (a NaN threshold, negative max_peaks, a NaN or negative min_length
  // or max_distance, a tolerance not > 0) throw std::invalid_argument: ValueError in Python.
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

  py::register_exception<rt::ModelFileError>(m, "ModelFileError", PyExc_ValueError);
  m.def("normalize_frame", &normalize_frame, py::arg("frame"));
  m.def("preprocess_frame", &preprocess_frame, py::arg("frame"), py::arg("size"));
  m.def(
      "read_model_metadata",
      [](const std::string& path) {
        rt::Metadata metadata;
        {
          py::gil_scoped_release release;
          metadata = rt::read_metadata(path);
        }
        return metadata_to_dict(metadata);
      },
      py::arg("path"));
  bind_decode_settings(m);
  m.def("check_decode_settings", &rt::check_decode_settings,
        "The engine's check of decoding settings (ValueError naming the bad value).",
        py::arg("settings"));
  py::class_<rt::Engine>(m, "Engine")
      .def(py::init(&make_engine), py::arg("path"), py::kw_only(), py::arg("device") = "cpu",
           py::arg("threads") = 0,
           py::arg("templates") = std::vector<std::pair<int, std::vector<float>>>{},
           py::arg("settings") = rt::DecodeSettings{})
      .def("__call__", &run_engine, py::arg("frame"))
      .def(
          "set_settings",
          [](rt::Engine& engine, const rt::DecodeSettings& settings) {
            py::gil_scoped_release release;  // waits for a frame another thread is running
            engine.set_decode_settings(settings);
          },
          "Decoding settings for the next frames (checked first: bad values raise ValueError "
          "and leave the current ones).",
          py::arg("settings"))
      .def_property_readonly(
          "settings",
          [](const rt::Engine& engine) {
            py::gil_scoped_release release;  // waits for a frame another thread is running
            return engine.decode_settings();
          },
          "A copy of the decoding settings (change them with set_settings).")
      .def("metadata", [](const rt::Engine& engine) { return metadata_to_dict(engine.metadata()); })
      .def_property_readonly("input_size", &rt::Engine::input_size)
      .def_property_readonly("device", &rt::Engine::device);
#ifdef CATHTRACK_WITH_CUDA
  m.def("find_peaks_cuda_workspace_bytes", &pp::cuda::find_peaks_workspace_bytes);
  m.def("find_peaks_cuda", &find_peaks_cuda);
  m.def("thin_cuda_workspace_bytes", &pp::cuda::thin_workspace_bytes);
  m.def("thin_cuda", &thin_cuda);
#endif
}
