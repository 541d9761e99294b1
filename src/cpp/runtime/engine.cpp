#include "runtime/engine.hpp"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/sigmoid.h>
#include <ATen/ops/upsample_bilinear2d.h>
#include <c10/core/InferenceMode.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>

#include "postprocess/centerline.hpp"
#include "postprocess/peaks.hpp"
#include "postprocess/thinning.hpp"
#include "runtime/model_file.hpp"

#ifdef CATHTRACK_TORCH_CUDA
#include "runtime/engine_cuda.hpp"
#endif

namespace cathtrack::runtime {
namespace pp = cathtrack::postprocess;
namespace {

using Clock = std::chrono::steady_clock;

double milliseconds(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

// at::set_num_threads() acts on the calling thread's OpenMP team size; restore it afterwards so
// an engine's setting never leaks into the caller's own torch work.
class ThreadCountGuard {
 public:
  explicit ThreadCountGuard(int threads) : previous_(threads > 0 ? at::get_num_threads() : 0) {
    if (threads > 0) at::set_num_threads(threads);
  }
  ~ThreadCountGuard() {
    if (previous_ > 0) at::set_num_threads(previous_);
  }
  ThreadCountGuard(const ThreadCountGuard&) = delete;
  ThreadCountGuard& operator=(const ThreadCountGuard&) = delete;

 private:
  int previous_;
};

c10::Device parse_device(const std::string& name) {
  c10::Device device(c10::kCPU);
  try {
    device = c10::Device(name);
  } catch (const std::exception&) {
    throw std::invalid_argument("device must be 'cpu', 'cuda' or 'cuda:N', got '" + name + "'");
  }
  if (device.is_cuda() && !at::hasCUDA()) {
    throw std::invalid_argument("device '" + name +
                                "' requested, but this torch has no CUDA support or no GPU");
  }
  if (!device.is_cpu() && !device.is_cuda()) {
    throw std::invalid_argument("device must be 'cpu', 'cuda' or 'cuda:N', got '" + name + "'");
  }
  return device;
}

// The model's outputs as the engine expects them for the heatmap stride its metadata names (the
// size divides by it: S is a multiple of 32), or a clear error naming the file.
void check_outputs(const std::vector<at::Tensor>& outputs, int size, int stride,
                   const std::string& path) {
  const int cells = size / stride;
  const std::vector<std::vector<std::int64_t>> expected = {
      {1, 1, size, size}, {1, 1, cells, cells}, {1, 2, cells, cells}};
  bool ok = outputs.size() == expected.size();
  for (std::size_t i = 0; ok && i < outputs.size(); ++i) {
    ok = outputs[i].defined() && outputs[i].sizes().vec() == expected[i];
  }
  if (!ok) {
    throw ModelFileError(path +
                         ": the model did not return (segmentation (1,1,S,S), "
                         "heatmap (1,1,S/s,S/s), size (1,2,S/s,S/s)) for S = " +
                         std::to_string(size) + ", s = " + std::to_string(stride) +
                         " (metadata output_strides)");
  }
}

// cathtrack.pipeline._orient_by_electrodes, in the same float32/float64 arithmetic: turns the
// centerline around when the median arc position of its electrodes lies in its proximal half.
void orient_by_electrodes(pp::Polyline& line, std::vector<std::int32_t>& group,
                          const std::vector<pp::Point>& electrodes) {
  if (group.empty() || line.size() < 2) return;
  std::vector<double> arc(line.size(), 0.0);
  float cumulative = 0.0f;
  for (std::size_t k = 1; k < line.size(); ++k) {
    const float dx = line[k].x - line[k - 1].x, dy = line[k].y - line[k - 1].y;
    cumulative += std::sqrt(dx * dx + dy * dy);
    arc[k] = cumulative;
  }
  std::vector<double> positions;
  for (const std::int32_t index : group) {
    std::size_t nearest = 0;
    float best = INFINITY;
    for (std::size_t k = 0; k < line.size(); ++k) {
      const float dx = electrodes[index].x - line[k].x, dy = electrodes[index].y - line[k].y;
      const float distance = std::sqrt(dx * dx + dy * dy);
      if (distance < best) {
        best = distance;
        nearest = k;
      }
    }
    positions.push_back(arc[nearest]);
  }
  std::sort(positions.begin(), positions.end());
  const std::size_t n = positions.size();
  const double median =
      n % 2 == 1 ? positions[n / 2] : (positions[n / 2 - 1] + positions[n / 2]) / 2.0;
  if (median <= 0.5 * arc.back()) return;
  std::reverse(line.begin(), line.end());
  std::reverse(group.begin(), group.end());
}

// The point `distance` pixels of arc length from the start of a polyline (its end if shorter).
pp::Point point_along(const pp::Polyline& line, float distance) {
  float travelled = 0.0f;
  for (std::size_t k = 1; k < line.size(); ++k) {
    const float dx = line[k].x - line[k - 1].x, dy = line[k].y - line[k - 1].y;
    const float step = std::sqrt(dx * dx + dy * dy);
    if (travelled + step >= distance && step > 0.0f) {
      const float t = (distance - travelled) / step;
      return {line[k - 1].x + t * dx, line[k - 1].y + t * dy};
    }
    travelled += step;
  }
  return line.back();
}

// Model-grid -> frame-grid mapping of cathtrack.pipeline.to_frame: x_frame = (x + 0.5) W/S - 0.5.
struct FrameMapping {
  float sx, sy;
  pp::Point point(pp::Point p) const {
    return {(p.x + 0.5f) * sx - 0.5f, (p.y + 0.5f) * sy - 0.5f};
  }
  pp::Point extent(pp::Point p) const { return {p.x * sx, p.y * sy}; }
};

}  // namespace

void check_settings(const EngineSettings& s) {
  if (s.threads < 0) throw std::invalid_argument("threads must be >= 0");
  check_decode_settings(s.decode);
}

struct Engine::Impl {
  Impl(const std::string& model_path, EngineSettings engine_settings)
      : path(model_path),
        settings(std::move(engine_settings)),
        device(parse_device(settings.device)),
        model(ModelFile::open(path, device)),
        preprocess(model->spec().input_size) {}

  FrameResult run(const FrameView& frame, std::uint8_t* mask_out);
  at::Tensor forward(const float* input);
  void pixel_stages(const std::vector<at::Tensor>& outputs, const at::Tensor& probability,
                    std::vector<pp::Peak>& peaks);
  void find_catheters(const std::vector<pp::Point>& electrodes, const FrameMapping& mapping,
                      FrameResult& result);
  void write_mask(at::Tensor probability, const FrameView& frame, std::uint8_t* mask_out);

  std::string path;
  EngineSettings settings;
  c10::Device device;
  std::unique_ptr<ModelFile> model;
  Preprocessor preprocess;
  std::mutex mutex;
  std::vector<std::uint8_t> skeleton;  // (S, S) thinned mask, reused
  at::Tensor frame_probability;        // (1, 1, H, W) mask probability, reused while H, W stay
#ifdef CATHTRACK_TORCH_CUDA
  CudaPixelStages cuda_stages;
#endif
};

FrameResult Engine::Impl::run(const FrameView& frame, std::uint8_t* mask_out) {
  check_frame(frame);
  if (mask_out == nullptr) throw std::invalid_argument("mask_out must not be null");
  std::lock_guard<std::mutex> lock(mutex);
  ThreadCountGuard threads(settings.threads);
  c10::InferenceMode inference_mode;
  const int size = model->spec().input_size, stride = model->spec().heatmap_stride;
  FrameResult result;

  const auto start = Clock::now();
  const float* input = preprocess(frame);
  at::Tensor batch = at::from_blob(const_cast<float*>(input), {1, 1, size, size}, at::kFloat);
  if (device.is_cuda()) batch = batch.to(device);
  if (model->spec().precision == Precision::kFloat16) batch = batch.to(at::kHalf);
  if (model->spec().precision == Precision::kBFloat16) batch = batch.to(at::kBFloat16);
  const auto preprocessed = Clock::now();

  std::vector<at::Tensor> outputs = model->forward(batch);
  check_outputs(outputs, size, stride, path);
  if (device.is_cuda()) {  // kernels run asynchronously: wait, so the timing is the forward's
    const c10::impl::VirtualGuardImpl guard(device.type());
    guard.synchronizeStream(guard.getStream(device));
  }
  const auto inferred = Clock::now();

  at::Tensor probability = at::sigmoid(outputs[0].to(at::kFloat));
  std::vector<pp::Peak> peaks;
  pixel_stages(outputs, probability, peaks);
  // electrodes in model-input pixels: heatmap cell u of stride s maps to x = s (u + 0.5) - 0.5
  // (cathtrack.coordinates.to_input_coordinates). The size map has the heatmap's (h, w), so a
  // peak's index addresses it too: widths at [index], heights at [h * w + index].
  const at::Tensor size_map = outputs[2].to(at::kCPU, at::kFloat).contiguous();
  const float* widths = size_map.data_ptr<float>();
  const float* heights = widths + size_map.size(2) * size_map.size(3);
  const float s = static_cast<float>(stride);
  std::vector<pp::Point> electrodes;
  const FrameMapping mapping{static_cast<float>(static_cast<double>(frame.width) / size),
                             static_cast<float>(static_cast<double>(frame.height) / size)};
  for (const pp::Peak& peak : peaks) {
    const pp::Point model_xy{(peak.x + 0.5f) * s - 0.5f, (peak.y + 0.5f) * s - 0.5f};
    electrodes.push_back(model_xy);
    result.electrodes.push_back(mapping.point(model_xy));
    result.scores.push_back(peak.score);
    result.sizes.push_back(
        mapping.extent({std::max(widths[peak.index], 0.0f), std::max(heights[peak.index], 0.0f)}));
  }
  find_catheters(electrodes, mapping, result);
  write_mask(probability, frame, mask_out);
  const auto finished = Clock::now();

  result.timings.preprocess = milliseconds(start, preprocessed);
  result.timings.inference = milliseconds(preprocessed, inferred);
  result.timings.postprocess = milliseconds(inferred, finished);
  result.timings.total = milliseconds(start, finished);
  return result;
}

// Peaks of the heatmap and the thinned mask (into `skeleton`), on the device that holds them.
void Engine::Impl::pixel_stages(const std::vector<at::Tensor>& outputs,
                                const at::Tensor& probability, std::vector<pp::Peak>& peaks) {
  const int size = static_cast<int>(probability.size(2));
#ifdef CATHTRACK_TORCH_CUDA
  if (device.is_cuda()) {
    const at::Tensor heatmap = outputs[1].to(at::kFloat).contiguous();
    const at::Tensor binary =
        probability.gt(settings.decode.mask_threshold).to(at::kByte).contiguous();
    cuda_stages.run(heatmap[0][0], binary[0][0], settings.decode.score_threshold,
                    settings.decode.max_peaks, peaks, skeleton);
    return;
  }
#endif
  const at::Tensor heatmap = outputs[1].to(at::kCPU, at::kFloat).contiguous();
  peaks = pp::find_peaks(heatmap.data_ptr<float>(), static_cast<int>(heatmap.size(2)),
                         static_cast<int>(heatmap.size(3)), settings.decode.score_threshold,
                         settings.decode.max_peaks);
  const at::Tensor host_probability = probability.to(at::kCPU).contiguous();
  const float* p = host_probability.data_ptr<float>();
  skeleton.resize(static_cast<std::size_t>(size) * size);
  const float mask_threshold = settings.decode.mask_threshold;
  for (std::size_t i = 0; i < skeleton.size(); ++i) skeleton[i] = p[i] > mask_threshold;
  pp::thin(skeleton.data(), size, size);
}

void Engine::Impl::find_catheters(const std::vector<pp::Point>& electrodes,
                                  const FrameMapping& mapping, FrameResult& result) {
  const int size = model->spec().input_size;
  std::vector<pp::Polyline> lines =
      pp::trace_centerlines(skeleton.data(), size, size, settings.decode.min_centerline_length);
  const auto assignments =
      pp::assign_electrodes(lines, electrodes.data(), static_cast<int>(electrodes.size()),
                            settings.decode.max_assign_distance);
  auto groups = pp::group_by_centerline(assignments, lines.size());
  for (std::size_t i = 0; i < lines.size(); ++i) {
    pp::Polyline& line = lines[i];
    std::vector<std::int32_t>& group = groups[i];
    orient_by_electrodes(line, group, electrodes);
    CatheterResult catheter;
    if (group.size() >= 2) {
      std::vector<pp::Point> ordered;
      for (const std::int32_t index : group) ordered.push_back(electrodes[index]);
      const pp::Classification match =
          pp::classify_spacing(ordered.data(), static_cast<int>(ordered.size()), settings.templates,
                               settings.decode.spacing_tolerance);
      if (match.type >= 0) {
        catheter.type = match.type;
        catheter.type_score = match.score;
      }
    }
    // Direction measured in the model grid, then both points mapped: a non-square frame
    // stretches the grid, and the direction must be the frame's.
    const pp::Point tip = mapping.point(line.front());
    const pp::Point behind = mapping.point(point_along(line, settings.decode.tip_lookback));
    const float dx = tip.x - behind.x, dy = tip.y - behind.y;
    const float length = std::sqrt(dx * dx + dy * dy);
    catheter.tip = tip;
    if (length > 0.0f) catheter.tip_direction = {dx / length, dy / length};
    catheter.centerline.reserve(line.size());
    for (const pp::Point& p : line) catheter.centerline.push_back(mapping.point(p));
    catheter.electrodes = std::move(group);
    result.catheters.push_back(std::move(catheter));
  }
}

// The mask probability resized bilinearly to the frame (OpenCV INTER_LINEAR's rule, as
// cathtrack.pipeline.to_frame), times 255, rounded half to even, as bytes.
void Engine::Impl::write_mask(at::Tensor probability, const FrameView& frame,
                              std::uint8_t* mask_out) {
  at::Tensor frame_mask = probability;
  if (frame.height != probability.size(2) || frame.width != probability.size(3)) {
    if (!frame_probability.defined() || frame_probability.size(2) != frame.height ||
        frame_probability.size(3) != frame.width ||
        frame_probability.device() != probability.device()) {
      frame_probability = at::empty({1, 1, frame.height, frame.width}, probability.options());
    }
    at::upsample_bilinear2d_out(frame_probability, probability, {frame.height, frame.width},
                                /*align_corners=*/false);
    frame_mask = frame_probability;
  }
  frame_mask.mul_(255.0f).round_();
  at::from_blob(mask_out, {1, 1, frame.height, frame.width}, at::kByte).copy_(frame_mask);
}

Engine::Engine(const std::string& path, EngineSettings settings) {
  check_settings(settings);
  impl_ = std::make_unique<Impl>(path, std::move(settings));
}

Engine::~Engine() = default;

void Engine::set_decode_settings(const DecodeSettings& settings) {
  check_decode_settings(settings);  // before the lock: a refusal leaves the settings untouched
  std::lock_guard<std::mutex> lock(impl_->mutex);  // never between the stages of a frame
  impl_->settings.decode = settings;
}

DecodeSettings Engine::decode_settings() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->settings.decode;
}

FrameResult Engine::run(const FrameView& frame, std::uint8_t* mask_out) {
  return impl_->run(frame, mask_out);
}

const Metadata& Engine::metadata() const { return impl_->model->metadata(); }

int Engine::input_size() const { return impl_->model->spec().input_size; }

std::string Engine::device() const { return impl_->device.str(); }

}  // namespace cathtrack::runtime
