// Seeded random fuzz driver of the torch-free post-processing core: find_peaks, thin,
// trace_centerlines, assign_electrodes (+ group_by_centerline) and classify_spacing (the core of
// cathtrack.postprocess.classify_catheter), alone and chained as the engine chains them, on
// arbitrary sizes (empty, 1 x N, N x 1, up to a pixel budget) and values (NaN, +-inf, -0,
// subnormals, the largest floats, raw bit patterns, ties and plateaus) and arguments, valid or
// not. Built and run under AddressSanitizer and UBSan by `make sanitize` (plain C++17: no
// libFuzzer needed).
//
// Every execution checks, besides the sanitizers' own checks:
//   - arguments: the core throws std::invalid_argument exactly for the ones it documents as bad,
//     and nothing else escapes;
//   - outputs: the invariants any result must have (peaks equal to a pixel-by-pixel reference on
//     small images, finite and sorted; thinning equal to the plain Guo-Hall loop on small images,
//     a 0/1 subset of the mask, idempotent; traces inside the image in one-pixel steps from and to
//     skeleton pixels; assignments within max_distance and grouped in arc-length order; a type
//     match that names a template of that type with a score in [0, 1]).
//
//   postprocess_fuzz [--seconds S] [--executions N] [--seed N] [--first I] [--max-pixels P]
//
// Runs until S seconds (default 10) or N executions (default: no limit) have passed and prints
// the executions, seconds and slowest execution. Execution i draws everything from (seed, i), so
// `--seed X --first I --executions 1` replays a failure the run reports. Exits 1 on a failure.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iterator>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "postprocess/centerline.hpp"
#include "postprocess/geometry.hpp"
#include "postprocess/patterns.hpp"
#include "postprocess/peaks.hpp"
#include "postprocess/thinning.hpp"
#include "reference.hpp"

namespace pp = cathtrack::postprocess;
namespace ct = cathtrack::testing;

namespace {

using Rng = std::mt19937_64;
using Image = std::vector<std::uint8_t>;
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNan = std::numeric_limits<float>::quiet_NaN();

struct Options {
  double seconds = 10.0;
  long long executions = -1;  // no limit
  std::uint64_t seed = 20240917;
  long long first = 0;
  long long max_pixels = 1 << 22;  // 4 Mpixels: 2048 x 2048
};

struct Stats {
  long long executions = 0;
  long long refusals = 0;
  long long by_target[6] = {0, 0, 0, 0, 0, 0};
  long long failures = 0;
  double slowest_seconds = 0.0;
  long long slowest_execution = -1;
};

// One failed check: printed with the execution that replays it.
struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void expect(bool condition, const std::string& what) {
  if (!condition) throw Failure(what);
}

int uniform_int(Rng& rng, int lo, int hi) {
  return std::uniform_int_distribution<int>(lo, hi)(rng);
}

float unit(Rng& rng) { return std::uniform_real_distribution<float>(0.0f, 1.0f)(rng); }

bool chance(Rng& rng, float p) { return unit(rng) < p; }

float random_bits(Rng& rng) {
  const auto bits = static_cast<std::uint32_t>(rng());
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

// A float from everywhere a caller could get one: ordinary values, the edges of the format and
// raw bit patterns (any NaN payload, subnormals).
float any_float(Rng& rng, float lo, float hi) {
  static const float specials[] = {0.0f,
                                   -0.0f,
                                   1.0f,
                                   -1.0f,
                                   0.5f,
                                   kNan,
                                   -kNan,
                                   kInf,
                                   -kInf,
                                   std::numeric_limits<float>::min(),
                                   std::numeric_limits<float>::denorm_min(),
                                   -std::numeric_limits<float>::denorm_min(),
                                   std::numeric_limits<float>::max(),
                                   std::numeric_limits<float>::lowest(),
                                   std::numeric_limits<float>::epsilon(),
                                   1e-30f,
                                   1e30f};
  switch (uniform_int(rng, 0, 9)) {
    case 0:
    case 1:
      return specials[uniform_int(rng, 0, static_cast<int>(std::size(specials)) - 1)];
    case 2:
      return random_bits(rng);
    default:
      return lo + (hi - lo) * unit(rng);
  }
}

// (height, width): empty, a row, a column, tiny, small, medium, and now and then as large as the
// pixel budget allows (square or a long strip).
std::pair<int, int> any_shape(Rng& rng, long long max_pixels) {
  const int kind = uniform_int(rng, 0, 99);
  if (kind < 4) return {uniform_int(rng, 0, 1) ? 0 : uniform_int(rng, 0, 9), 0};
  if (kind < 8) return {0, uniform_int(rng, 0, 9)};
  if (kind < 16) return {1, uniform_int(rng, 1, 300)};
  if (kind < 24) return {uniform_int(rng, 1, 300), 1};
  if (kind < 50) return {uniform_int(rng, 1, 8), uniform_int(rng, 1, 8)};
  if (kind < 85) return {uniform_int(rng, 2, 64), uniform_int(rng, 2, 64)};
  if (kind < 98) return {uniform_int(rng, 32, 256), uniform_int(rng, 32, 256)};
  // Large: a square or a strip of up to max_pixels.
  const auto side = static_cast<int>(std::sqrt(static_cast<double>(max_pixels)));
  if (uniform_int(rng, 0, 1)) {
    const int h = uniform_int(rng, side / 2, side);
    return {h, uniform_int(rng, side / 2, side)};
  }
  const int long_side = static_cast<int>(std::min<long long>(max_pixels / 2, 1 << 20));
  const int w = uniform_int(rng, long_side / 2, long_side);
  return uniform_int(rng, 0, 1) ? std::pair<int, int>{2, w} : std::pair<int, int>{w, 2};
}

std::vector<float> any_heatmap(Rng& rng, int h, int w) {
  const std::size_t n = static_cast<std::size_t>(h) * w;
  std::vector<float> heat(n);
  const int kind = uniform_int(rng, 0, 6);
  if (kind == 0) {  // continuous values: few ties
    for (float& v : heat) v = unit(rng);
  } else if (kind == 1) {  // quantised: plateaus and ties
    const float levels = static_cast<float>(uniform_int(rng, 1, 8));
    for (float& v : heat) v = std::round(unit(rng) * levels) / levels;
  } else if (kind == 2) {  // blobs, as a network gives
    std::fill(heat.begin(), heat.end(), 0.0f);
    for (int b = uniform_int(rng, 0, 12); b > 0; --b) {
      const float cx = unit(rng) * w, cy = unit(rng) * h, sigma = 0.5f + 3.0f * unit(rng);
      const int r0 = std::max(0, static_cast<int>(cy - 4 * sigma));
      const int r1 = std::min(h, static_cast<int>(cy + 4 * sigma) + 1);
      const int c0 = std::max(0, static_cast<int>(cx - 4 * sigma));
      const int c1 = std::min(w, static_cast<int>(cx + 4 * sigma) + 1);
      for (int r = r0; r < r1; ++r) {
        for (int c = c0; c < c1; ++c) {
          const float d2 = (c - cx) * (c - cx) + (r - cy) * (r - cy);
          float& v = heat[static_cast<std::size_t>(r) * w + c];
          v = std::max(v, std::exp(-d2 / (2 * sigma * sigma)));
        }
      }
    }
  } else if (kind == 3) {  // one value everywhere (possibly NaN or infinite)
    std::fill(heat.begin(), heat.end(), any_float(rng, -1.0f, 2.0f));
  } else if (kind == 4) {  // raw bits: every float the format has
    for (float& v : heat) v = random_bits(rng);
  } else {  // ordinary values with specials sprinkled in
    const float rate = unit(rng) * 0.5f;
    for (float& v : heat) v = chance(rng, rate) ? any_float(rng, -2.0f, 2.0f) : unit(rng);
  }
  return heat;
}

void draw_line(Image& image, int h, int w, float x0, float y0, float x1, float y1) {
  const int steps = static_cast<int>(std::max(std::fabs(x1 - x0), std::fabs(y1 - y0))) + 1;
  for (int k = 0; k <= steps; ++k) {
    const float t = static_cast<float>(k) / steps;
    const int c = static_cast<int>(std::lround(x0 + t * (x1 - x0)));
    const int r = static_cast<int>(std::lround(y0 + t * (y1 - y0)));
    if (r >= 0 && r < h && c >= 0 && c < w) image[static_cast<std::size_t>(r) * w + c] = 1;
  }
}

Image any_mask(Rng& rng, int h, int w) {
  const std::size_t n = static_cast<std::size_t>(h) * w;
  Image mask(n, 0);
  const int kind = uniform_int(rng, 0, 6);
  if (kind == 0) {  // noise of any density, any nonzero byte
    const float density = unit(rng);
    for (auto& v : mask) v = chance(rng, density) ? static_cast<std::uint8_t>(rng() | 1) : 0;
  } else if (kind == 1) {  // solid
    std::fill(mask.begin(), mask.end(), 1);
  } else if (kind == 2) {  // stripes or a checkerboard
    const int period = uniform_int(rng, 1, 4);
    const bool checker = uniform_int(rng, 0, 1);
    for (int r = 0; r < h; ++r) {
      for (int c = 0; c < w; ++c) {
        mask[static_cast<std::size_t>(r) * w + c] = ((c / period) + (checker ? r / period : 0)) % 2;
      }
    }
  } else if (kind == 3) {  // ellipses
    for (int b = uniform_int(rng, 1, 6); b > 0; --b) {
      const float cy = unit(rng) * h, cx = unit(rng) * w;
      const float ry = 1.0f + unit(rng) * h / 3.0f, rx = 1.0f + unit(rng) * w / 3.0f;
      const int r0 = std::max(0, static_cast<int>(cy - ry)), r1 = std::min(h, int(cy + ry) + 1);
      const int c0 = std::max(0, static_cast<int>(cx - rx)), c1 = std::min(w, int(cx + rx) + 1);
      for (int r = r0; r < r1; ++r) {
        for (int c = c0; c < c1; ++c) {
          const float dy = (r - cy) / ry, dx = (c - cx) / rx;
          if (dy * dy + dx * dx <= 1.0f) mask[static_cast<std::size_t>(r) * w + c] = 1;
        }
      }
    }
  } else {  // one-pixel lines, crossing and touching: a skeleton already, or nearly
    for (int k = uniform_int(rng, 1, 10); k > 0; --k) {
      draw_line(mask, h, w, unit(rng) * w, unit(rng) * h, unit(rng) * w, unit(rng) * h);
    }
  }
  return mask;
}

std::vector<pp::Point> any_points(Rng& rng, int count, float extent) {
  std::vector<pp::Point> points(static_cast<std::size_t>(count));
  const bool wild = chance(rng, 0.2f);
  for (auto& p : points) {
    p = wild ? pp::Point{any_float(rng, -extent, extent), any_float(rng, -extent, extent)}
             : pp::Point{unit(rng) * extent, unit(rng) * extent};
  }
  return points;
}

// Calls `call`; true when it returned, false when it refused with std::invalid_argument. The
// refusal must happen exactly when `valid` is false.
template <typename Call>
bool run_checked(bool valid, const char* what, Stats& stats, Call&& call) {
  try {
    call();
  } catch (const std::invalid_argument& error) {
    ++stats.refusals;
    expect(!valid, std::string(what) + " refused valid arguments: " + error.what());
    return false;
  }
  expect(valid, std::string(what) + " accepted arguments it should refuse");
  return true;
}

bool finite_non_negative(float v) { return std::isfinite(v) && v >= 0.0f; }

// ---- the targets --------------------------------------------------------------------------------

void check_peaks(const std::vector<pp::Peak>& peaks, const std::vector<float>& heat, int h, int w,
                 float threshold, int max_peaks) {
  expect(peaks.size() <= static_cast<std::size_t>(max_peaks), "more peaks than max_peaks");
  for (std::size_t i = 0; i < peaks.size(); ++i) {
    const pp::Peak& p = peaks[i];
    expect(p.index >= 0 && p.index < h * w, "peak index outside the image");
    expect(std::isfinite(p.score) && p.score >= threshold, "peak score not finite or below");
    expect(p.score == heat[p.index], "score is not the pixel's value");
    expect(std::fabs(p.x - static_cast<float>(p.index % w)) <= 0.5f &&
               std::fabs(p.y - static_cast<float>(p.index / w)) <= 0.5f,
           "refined peak more than half a pixel away");
    if (i > 0) expect(pp::peak_before(peaks[i - 1], p), "peaks not sorted");
  }
  if (static_cast<long long>(h) * w <= 4096) {
    const auto expected = ct::reference_peak_indices(heat.data(), h, w, threshold, max_peaks);
    expect(expected.size() == peaks.size(), "peak count differs from the reference");
    for (std::size_t i = 0; i < peaks.size(); ++i) {
      expect(peaks[i].index == expected[i], "peak differs from the reference");
    }
  }
}

void fuzz_find_peaks(Rng& rng, const Options& options, Stats& stats) {
  const auto [h, w] = any_shape(rng, options.max_pixels);
  const std::vector<float> heat = any_heatmap(rng, h, w);
  const float threshold = chance(rng, 0.1f) ? any_float(rng, -1.0f, 2.0f) : unit(rng);
  const int max_peaks = chance(rng, 0.1f)    ? uniform_int(rng, -3, 0)
                        : chance(rng, 0.05f) ? std::numeric_limits<int>::max()
                                             : uniform_int(rng, 1, 500);
  std::vector<pp::Peak> peaks;
  const bool valid = !std::isnan(threshold) && max_peaks >= 0;
  if (run_checked(valid, "find_peaks", stats,
                  [&] { peaks = pp::find_peaks(heat.data(), h, w, threshold, max_peaks); })) {
    check_peaks(peaks, heat, h, w, threshold, max_peaks);
  }
}

Image checked_thin(const Image& mask, int h, int w) {
  Image skeleton = mask;
  const int iterations = pp::thin(skeleton.data(), h, w);
  bool subset = true;
  for (std::size_t i = 0; i < mask.size(); ++i) {
    subset &= skeleton[i] <= 1 && (skeleton[i] == 0 || mask[i] != 0);
  }
  expect(subset, "skeleton is not a 0/1 subset of the mask");
  expect(iterations >= (mask.empty() ? 0 : 1), "no iteration on a non-empty mask");
  if (static_cast<long long>(h) * w <= 4096) {
    Image plain = mask;
    expect(ct::reference_thin(plain.data(), h, w) == iterations && plain == skeleton,
           "thin differs from the plain Guo-Hall loop");
    Image again = skeleton;
    pp::thin(again.data(), h, w);
    expect(again == skeleton, "thinning is not idempotent");
  }
  return skeleton;
}

void fuzz_thin(Rng& rng, const Options& options, Stats&) {
  const auto [h, w] = any_shape(rng, options.max_pixels);
  checked_thin(any_mask(rng, h, w), h, w);
}

float any_length(Rng& rng) {
  if (chance(rng, 0.15f)) return any_float(rng, -10.0f, 10.0f);
  return chance(rng, 0.3f) ? 0.0f : unit(rng) * 30.0f;
}

std::vector<pp::Polyline> checked_trace(const Image& skeleton, int h, int w, float min_length,
                                        Stats& stats) {
  std::vector<pp::Polyline> lines;
  if (run_checked(finite_non_negative(min_length), "trace_centerlines", stats,
                  [&] { lines = pp::trace_centerlines(skeleton.data(), h, w, min_length); })) {
    expect(ct::valid_trace(lines, skeleton.data(), h, w, min_length), "invalid trace");
  }
  return lines;
}

void fuzz_trace(Rng& rng, const Options& options, Stats& stats) {
  // Raw masks are no skeletons (dense junction clusters, every pixel a junction where solid):
  // traced as they are, but at most 512 x 512.
  const bool raw = chance(rng, 0.5f);
  const auto [h, w] =
      any_shape(rng, raw ? std::min<long long>(options.max_pixels, 512 * 512) : options.max_pixels);
  const Image mask = any_mask(rng, h, w);
  const Image skeleton = raw ? mask : checked_thin(mask, h, w);
  checked_trace(skeleton, h, w, any_length(rng), stats);
}

void check_assignments(const std::vector<pp::Assignment>& assignments,
                       const std::vector<pp::Polyline>& lines, int count, float max_distance) {
  expect(assignments.size() == static_cast<std::size_t>(count), "one assignment per electrode");
  for (int e = 0; e < count; ++e) {
    const pp::Assignment& a = assignments[e];
    expect(a.centerline >= -1 && a.centerline < static_cast<int>(lines.size()),
           "assignment to no such centerline");
    if (a.centerline >= 0) {
      expect(!lines[a.centerline].empty(), "assignment to an empty centerline");
      expect(a.distance <= max_distance && a.distance >= 0.0f, "assigned beyond max_distance");
      expect(!(a.arc_length < 0.0f), "negative arc length");
    }
  }
  const auto groups = pp::group_by_centerline(assignments, lines.size());
  expect(groups.size() == lines.size(), "one group per centerline");
  std::vector<int> seen(static_cast<std::size_t>(count), 0);
  for (std::size_t c = 0; c < groups.size(); ++c) {
    for (std::size_t i = 0; i < groups[c].size(); ++i) {
      const std::int32_t e = groups[c][i];
      expect(e >= 0 && e < count && assignments[e].centerline == static_cast<int>(c),
             "group holds an electrode of another centerline");
      ++seen[e];
      // Arc-length order, NaN (from NaN centerline points) last.
      const auto key = [&](std::int32_t k) {
        const float arc = assignments[k].arc_length;
        return std::isnan(arc) ? kInf : arc;
      };
      if (i > 0) expect(key(groups[c][i - 1]) <= key(e), "group not in arc-length order");
    }
  }
  for (int e = 0; e < count; ++e) {
    expect(seen[e] == (assignments[e].centerline >= 0 ? 1 : 0), "electrode grouped wrongly");
  }
}

void fuzz_assign(Rng& rng, const Options&, Stats& stats) {
  std::vector<pp::Polyline> lines(static_cast<std::size_t>(uniform_int(rng, 0, 6)));
  for (auto& line : lines) line = any_points(rng, uniform_int(rng, 0, 60), 100.0f);
  const int count = uniform_int(rng, -2, 80);
  const std::vector<pp::Point> electrodes = any_points(rng, std::max(count, 0), 100.0f);
  const float max_distance = chance(rng, 0.2f) ? any_float(rng, -5.0f, 50.0f) : unit(rng) * 20;
  std::vector<pp::Assignment> assignments;
  const bool valid = finite_non_negative(max_distance) && count >= 0;
  if (run_checked(valid, "assign_electrodes", stats, [&] {
        assignments = pp::assign_electrodes(lines, electrodes.data(), count, max_distance);
      })) {
    check_assignments(assignments, lines, count, max_distance);
  }
}

std::vector<pp::SpacingTemplate> any_templates(Rng& rng) {
  std::vector<pp::SpacingTemplate> templates(static_cast<std::size_t>(uniform_int(rng, 0, 12)));
  for (auto& t : templates) {
    const int kind = uniform_int(rng, 0, 9);
    t.type = kind == 0   ? std::numeric_limits<std::int32_t>::max() - uniform_int(rng, 0, 2)
             : kind == 1 ? uniform_int(rng, -3, -1)
                         : uniform_int(rng, 0, 8);
    t.spacing.resize(static_cast<std::size_t>(uniform_int(rng, 0, 20)));
    const bool wild = chance(rng, 0.2f);
    for (float& s : t.spacing) s = wild ? any_float(rng, -5.0f, 20.0f) : 1.0f + 10.0f * unit(rng);
  }
  return templates;
}

void check_classification(const pp::Classification& result,
                          const std::vector<pp::SpacingTemplate>& templates) {
  expect((result.type == -1) == (result.variant == -1), "type and variant disagree");
  if (result.variant >= 0) {
    expect(result.variant < static_cast<int>(templates.size()), "no such template");
    expect(templates[result.variant].type == result.type && result.type >= 0,
           "type is not the template's");
  }
  expect(std::isfinite(result.score) && result.score >= 0.0f && result.score <= 1.0f,
         "score outside [0, 1]");
  expect(result.variant >= 0 || result.score == 0.0f, "a score without a match");
}

float any_tolerance(Rng& rng) {
  return chance(rng, 0.15f) ? any_float(rng, -1.0f, 1.0f) : 0.01f + unit(rng);
}

void fuzz_classify(Rng& rng, const Options&, Stats& stats) {
  const auto templates = any_templates(rng);
  const int count = uniform_int(rng, -2, 25);
  const std::vector<pp::Point> points = any_points(rng, std::max(count, 0), 200.0f);
  const float tolerance = any_tolerance(rng);
  pp::Classification result{};
  if (run_checked(std::isfinite(tolerance) && tolerance > 0.0f, "classify_spacing", stats, [&] {
        result = pp::classify_spacing(points.data(), count, templates, tolerance);
      })) {
    check_classification(result, templates);
  }
}

// The engine's chain on one frame's outputs: peaks; thinning of the thresholded mask; centerlines;
// electrodes assigned and ordered; each catheter's type.
void fuzz_pipeline(Rng& rng, const Options& options, Stats& stats) {
  const auto [h, w] = any_shape(rng, std::min<long long>(options.max_pixels, 512 * 512));
  const std::vector<float> heat = any_heatmap(rng, h, w);
  const std::vector<float> probability = any_heatmap(rng, h, w);
  const float threshold = unit(rng);
  const int max_peaks = uniform_int(rng, 0, 256);
  std::vector<pp::Peak> peaks;
  run_checked(true, "find_peaks", stats,
              [&] { peaks = pp::find_peaks(heat.data(), h, w, threshold, max_peaks); });
  check_peaks(peaks, heat, h, w, threshold, max_peaks);
  Image mask(probability.size());
  const float mask_threshold = unit(rng);
  for (std::size_t i = 0; i < mask.size(); ++i) mask[i] = probability[i] > mask_threshold;
  const Image skeleton = checked_thin(mask, h, w);
  const auto lines = checked_trace(skeleton, h, w, unit(rng) * 20.0f, stats);
  std::vector<pp::Point> electrodes;
  for (const auto& p : peaks) electrodes.push_back({p.x, p.y});
  const float max_distance = unit(rng) * 10.0f;
  std::vector<pp::Assignment> assignments;
  run_checked(true, "assign_electrodes", stats, [&] {
    assignments = pp::assign_electrodes(lines, electrodes.data(),
                                        static_cast<int>(electrodes.size()), max_distance);
  });
  check_assignments(assignments, lines, static_cast<int>(electrodes.size()), max_distance);
  const auto templates = any_templates(rng);
  for (const auto& group : pp::group_by_centerline(assignments, lines.size())) {
    std::vector<pp::Point> ordered;
    for (const std::int32_t e : group) ordered.push_back(electrodes[e]);
    pp::Classification result{};
    run_checked(true, "classify_spacing", stats, [&] {
      result = pp::classify_spacing(ordered.data(), static_cast<int>(ordered.size()), templates);
    });
    check_classification(result, templates);
  }
}

using Target = void (*)(Rng&, const Options&, Stats&);
constexpr Target kTargets[] = {fuzz_find_peaks, fuzz_thin,     fuzz_trace,
                               fuzz_assign,     fuzz_classify, fuzz_pipeline};
constexpr const char* kTargetNames[] = {
    "find_peaks", "thin", "trace_centerlines", "assign_electrodes", "classify_spacing", "pipeline"};

bool parse_options(int argc, char** argv, Options& options) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) return false;
    const char* value = argv[++i];
    char* end = nullptr;
    if (arg == "--seconds") {
      options.seconds = std::strtod(value, &end);
    } else if (arg == "--executions") {
      options.executions = std::strtoll(value, &end, 10);
    } else if (arg == "--seed") {
      options.seed = std::strtoull(value, &end, 10);
    } else if (arg == "--first") {
      options.first = std::strtoll(value, &end, 10);
    } else if (arg == "--max-pixels") {
      options.max_pixels = std::strtoll(value, &end, 10);
    } else {
      return false;
    }
    if (end == value || *end != '\0') return false;
  }
  return options.seconds >= 0 && options.max_pixels >= 64 && options.max_pixels <= (1LL << 28);
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (!parse_options(argc, argv, options)) {
    std::fprintf(stderr,
                 "usage: %s [--seconds S] [--executions N] [--seed N] [--first I] "
                 "[--max-pixels P (64 to 2^28)]\n",
                 argv[0]);
    return 2;
  }
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
  Stats stats;
  for (long long i = options.first;; ++i) {
    if (options.executions >= 0 && stats.executions >= options.executions) break;
    if (options.executions < 0 && elapsed() >= options.seconds) break;
    std::seed_seq seeds{static_cast<std::uint32_t>(options.seed),
                        static_cast<std::uint32_t>(options.seed >> 32),
                        static_cast<std::uint32_t>(i), static_cast<std::uint32_t>(i >> 32)};
    Rng rng(seeds);
    const auto target = static_cast<std::size_t>(uniform_int(rng, 0, 5));
    const auto before = Clock::now();
    try {
      kTargets[target](rng, options, stats);
    } catch (const Failure& failure) {
      ++stats.failures;
      std::printf("FAILED %s: %s (replay: --seed %llu --first %lld --executions 1)\n",
                  kTargetNames[target], failure.what(),
                  static_cast<unsigned long long>(options.seed), i);
    } catch (const std::exception& error) {
      ++stats.failures;
      std::printf(
          "FAILED %s: unexpected exception: %s (replay: --seed %llu --first %lld "
          "--executions 1)\n",
          kTargetNames[target], error.what(), static_cast<unsigned long long>(options.seed), i);
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - before).count();
    if (seconds > stats.slowest_seconds) {
      stats.slowest_seconds = seconds;
      stats.slowest_execution = i;
    }
    ++stats.executions;
    ++stats.by_target[target];
    if (stats.failures >= 20) break;
  }
  const double total = elapsed();
  std::printf(
      "postprocess fuzz: %lld executions in %.1f s (seed %llu, %.0f/s), %lld refusals, "
      "%lld failures\n",
      stats.executions, total, static_cast<unsigned long long>(options.seed),
      total > 0 ? stats.executions / total : 0.0, stats.refusals, stats.failures);
  std::printf("  per target:");
  for (std::size_t t = 0; t < 6; ++t) std::printf(" %s %lld", kTargetNames[t], stats.by_target[t]);
  std::printf("\n  slowest execution: %lld (%.2f s)\n", stats.slowest_execution,
              stats.slowest_seconds);
  return stats.failures == 0 ? 0 : 1;
}
