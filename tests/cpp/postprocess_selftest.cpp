// Self-test of the torch-free post-processing core, built with -fsanitize=address,undefined by
// `make sanitize`. Parity with the reference implementations is tested from Python; here every
// entry point runs on edge cases and random inputs so the sanitizers see all code paths, and the
// invariants that hold for any input are checked.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "postprocess/arguments.hpp"
#include "postprocess/centerline.hpp"
#include "postprocess/geometry.hpp"
#include "postprocess/patterns.hpp"
#include "postprocess/peaks.hpp"
#include "postprocess/thinning.hpp"
#include "reference.hpp"
#include "runtime/decode_settings.hpp"

namespace pp = cathtrack::postprocess;
namespace rt = cathtrack::runtime;
using cathtrack::testing::reference_peak_indices;
using cathtrack::testing::reference_thin;

namespace {

int g_checks = 0;
int g_failures = 0;

void check(bool condition, const char* what, int detail = 0) {
  ++g_checks;
  if (!condition) {
    ++g_failures;
    std::printf("FAILED: %s (%d)\n", what, detail);
  }
}

using Image = std::vector<std::uint8_t>;

// The message of the std::invalid_argument `call` throws, "" when it throws none.
template <typename Call>
std::string refusal_of(Call&& call) {
  try {
    call();
  } catch (const std::invalid_argument& error) {
    return error.what();
  }
  return "";
}

Image random_blobs(std::mt19937& rng, int h, int w) {
  Image image(static_cast<std::size_t>(h) * w, 0);
  std::uniform_int_distribution<int> count(0, 6);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  const int n = count(rng);
  for (int b = 0; b < n; ++b) {
    const float cy = unit(rng) * h, cx = unit(rng) * w;
    const float ry = 1.0f + unit(rng) * h / 3.0f, rx = 1.0f + unit(rng) * w / 3.0f;
    for (int r = 0; r < h; ++r) {
      for (int c = 0; c < w; ++c) {
        const float dy = (r - cy) / ry, dx = (c - cx) / rx;
        if (dy * dy + dx * dx <= 1.0f) image[r * w + c] = 1;
      }
    }
  }
  return image;
}

// Number of 8-connected foreground components (thinning preserves it).
int count_components(const Image& image, int h, int w) {
  std::vector<int> label(image.size(), 0);
  int components = 0;
  std::vector<int> stack;
  for (int start = 0; start < h * w; ++start) {
    if (!image[start] || label[start]) continue;
    ++components;
    label[start] = components;
    stack.push_back(start);
    while (!stack.empty()) {
      const int p = stack.back();
      stack.pop_back();
      for (int dy = -1; dy <= 1; ++dy) {
        for (int dx = -1; dx <= 1; ++dx) {
          const int r = p / w + dy, c = p % w + dx;
          if (r < 0 || r >= h || c < 0 || c >= w) continue;
          const int q = r * w + c;
          if (image[q] && !label[q]) {
            label[q] = components;
            stack.push_back(q);
          }
        }
      }
    }
  }
  return components;
}

void test_thinning(std::mt19937& rng) {
  const auto& tables = pp::kThinningTables.deletes;
  // Guo-Hall never deletes an isolated pixel, an end point, or an interior pixel.
  check(tables[0][0] == 0 && tables[1][0] == 0, "isolated pixel kept");
  check(tables[0][255] == 0 && tables[1][255] == 0, "interior pixel kept");
  for (const auto& shape : std::vector<std::pair<int, int>>{{1, 1}, {1, 7}, {7, 1}, {2, 2}}) {
    Image full(static_cast<std::size_t>(shape.first) * shape.second, 1);
    pp::thin(full.data(), shape.first, shape.second);
    check(std::count(full.begin(), full.end(), 1) >= 1, "thin keeps a non-empty tiny image");
  }
  check(pp::thin(nullptr, 0, 0) == 0, "thin of an empty image");
  std::uniform_int_distribution<int> size(1, 64);
  for (int trial = 0; trial < 200; ++trial) {
    const int h = size(rng), w = size(rng);
    const Image input = random_blobs(rng, h, w);
    Image skeleton = input;
    pp::thin(skeleton.data(), h, w);
    bool subset = true;
    for (std::size_t i = 0; i < input.size(); ++i) subset &= skeleton[i] <= input[i];
    check(subset, "skeleton is a subset of the mask", trial);
    check(count_components(skeleton, h, w) == count_components(input, h, w),
          "thinning keeps the number of components", trial);
    Image again = skeleton;
    pp::thin(again.data(), h, w);
    check(again == skeleton, "thinning is idempotent", trial);
  }
  // Testing only the pixels whose neighbourhood changed gives what testing every foreground pixel
  // gives, iteration for iteration: random blobs, noise of every density, solid rectangles.
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  for (int trial = 0; trial < 300; ++trial) {
    const int h = size(rng), w = size(rng);
    Image input;
    if (trial % 3 == 0) {
      input = random_blobs(rng, h, w);
    } else if (trial % 3 == 1) {
      const float density = unit(rng);
      input.resize(static_cast<std::size_t>(h) * w);
      for (auto& pixel : input) pixel = unit(rng) < density ? static_cast<std::uint8_t>(rng()) : 0;
    } else {
      input.assign(static_cast<std::size_t>(h) * w, 7);
    }
    Image fast = input, plain = input;
    const int fast_iterations = pp::thin(fast.data(), h, w);
    const int plain_iterations = reference_thin(plain.data(), h, w);
    check(fast == plain && fast_iterations == plain_iterations,
          "thin equals the plain Guo-Hall loop", trial);
  }
  // A solid square peels one layer per iteration: 256 x 256 takes ~128 iterations, and testing
  // only the pixels next to the last deletions keeps that linear in the pixels.
  Image square(256 * 256, 1), plain = square;
  check(pp::thin(square.data(), 256, 256) == reference_thin(plain.data(), 256, 256) &&
            square == plain,
        "a solid square thins as the plain loop thins it");
  check(
      refusal_of([] { pp::thin(nullptr, -1, 4); }) == "image size must not be negative, got -1 x 4",
      "thin refuses a negative size");
  check(refusal_of([] { pp::thin(nullptr, 46340, 46340); }).rfind("image is too large", 0) == 0,
        "thin refuses an image whose padded copy has 2^31 pixels");
}

void test_peaks(std::mt19937& rng) {
  // A Gaussian with a known sub-pixel centre is recovered by the log-parabola fit.
  const int h = 32, w = 40;
  std::vector<float> heat(h * w);
  const float cx = 17.3f, cy = 12.8f, sigma = 1.7f;
  for (int r = 0; r < h; ++r) {
    for (int c = 0; c < w; ++c) {
      heat[r * w + c] =
          std::exp(-((c - cx) * (c - cx) + (r - cy) * (r - cy)) / (2.0f * sigma * sigma));
    }
  }
  auto peaks = pp::find_peaks(heat.data(), h, w, 0.3f, 10);
  check(peaks.size() == 1, "one Gaussian, one peak", static_cast<int>(peaks.size()));
  if (!peaks.empty()) {
    check(std::fabs(peaks[0].x - cx) < 1e-3f && std::fabs(peaks[0].y - cy) < 1e-3f,
          "Gaussian centre recovered");
  }
  // A plateau gives exactly one peak, its first pixel in raster order.
  std::vector<float> plateau(5 * 5, 0.0f);
  for (int r = 1; r <= 3; ++r) {
    for (int c = 1; c <= 3; ++c) plateau[r * 5 + c] = 0.9f;
  }
  peaks = pp::find_peaks(plateau.data(), 5, 5, 0.5f, 10);
  check(peaks.size() == 1 && peaks[0].index == 6, "plateau gives its first pixel");
  check(pp::find_peaks(plateau.data(), 5, 5, 0.5f, 0).empty(), "max_peaks 0 gives none");
  // Non-finite values are never peaks and never suppress a neighbour: every score is finite.
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> broken(6 * 6, 0.0f);
  broken[1 * 6 + 1] = inf;
  broken[1 * 6 + 2] = 0.8f;  // beside +inf
  broken[4 * 6 + 4] = -inf;
  broken[4 * 6 + 3] = 0.6f;  // beside -inf
  peaks = pp::find_peaks(broken.data(), 6, 6, 0.1f, 10);
  check(peaks.size() == 2 && peaks[0].index == 8 && peaks[1].index == 27,
        "+-inf are no peaks and suppress nothing", static_cast<int>(peaks.size()));
  // Values near the largest floats overflow the raw parabola fit (inf / inf): no offset, not NaN.
  const float big = std::numeric_limits<float>::max();
  const float overflowing[] = {0.9f * big, big, -0.9f * big};
  peaks = pp::find_peaks(overflowing, 1, 3, 0.0f, 10);
  check(peaks.size() == 1 && peaks[0].x == 1.0f && peaks[0].y == 0.0f,
        "an overflowing fit gives no offset (found by the fuzz driver)");
  for (const float value : {inf, -inf, nan}) {
    const std::vector<float> flat(4 * 5, value);
    check(pp::find_peaks(flat.data(), 4, 5, -inf, 10).empty(), "a non-finite image has no peaks");
  }
  check(refusal_of([&] { pp::find_peaks(broken.data(), 6, 6, nan, 10); }) ==
            "threshold must not be NaN",
        "a NaN threshold is refused");
  check(refusal_of([&] { pp::find_peaks(broken.data(), 6, 6, 0.5f, -1); }) ==
            "max_peaks must be >= 0, got -1",
        "a negative max_peaks is refused");
  check(refusal_of([&] {
          pp::find_peaks(broken.data(), 65536, 65536, 0.5f, 1);
        }).rfind("image is too large", 0) == 0,
        "an image of 2^32 pixels is refused before it is read");
  // Random heatmaps with NaN and infinities: sorted, above threshold, within the image,
  // never two adjacent peaks.
  std::uniform_int_distribution<int> size(1, 48);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  const float specials[] = {std::numeric_limits<float>::quiet_NaN(),
                            std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(), 0.0f, -1.0f};
  for (int trial = 0; trial < 300; ++trial) {
    const int hh = size(rng), ww = size(rng);
    std::vector<float> map(static_cast<std::size_t>(hh) * ww);
    for (float& v : map) {
      v = unit(rng) < 0.05f ? specials[rng() % 5] : std::round(unit(rng) * 8.0f) / 8.0f;
    }
    const auto found = pp::find_peaks(map.data(), hh, ww, 0.25f, 64);
    const auto expected = reference_peak_indices(map.data(), hh, ww, 0.25f, 64);
    bool ok = found.size() == expected.size();
    for (std::size_t i = 0; ok && i < found.size(); ++i) ok &= found[i].index == expected[i];
    for (std::size_t i = 0; i < found.size(); ++i) {
      const auto& p = found[i];
      ok &= p.score >= 0.25f && std::isfinite(p.score) && p.index >= 0 && p.index < hh * ww;
      ok &= std::fabs(p.x - static_cast<float>(p.index % ww)) <= 0.5f;
      ok &= std::fabs(p.y - static_cast<float>(p.index / ww)) <= 0.5f;
      if (i > 0) ok &= pp::peak_before(found[i - 1], p);
      for (std::size_t j = 0; j < i; ++j) {
        const int dr = std::abs(found[j].index / ww - p.index / ww);
        const int dc = std::abs(found[j].index % ww - p.index % ww);
        ok &= std::max(dr, dc) > 1;
      }
    }
    check(ok, "random heatmap peaks are valid", trial);
  }
}

// Pixels within width / 2 of the segment (x0, y0) - (x1, y1): a catheter drawn as a thick stroke.
void draw_stroke(Image& image, int h, int w, float x0, float y0, float x1, float y1, float width) {
  const float dx = x1 - x0, dy = y1 - y0, squared = dx * dx + dy * dy;
  for (int r = 0; r < h; ++r) {
    for (int c = 0; c < w; ++c) {
      const float t = std::clamp(((c - x0) * dx + (r - y0) * dy) / squared, 0.0f, 1.0f);
      if (std::hypot(c - x0 - t * dx, r - y0 - t * dy) <= width / 2) image[r * w + c] = 1;
    }
  }
}

float distance_to_segment(const pp::Point& p, float x0, float y0, float x1, float y1) {
  const float dx = x1 - x0, dy = y1 - y0;
  const float t = std::clamp(((p.x - x0) * dx + (p.y - y0) * dy) / (dx * dx + dy * dy), 0.0f, 1.0f);
  return std::hypot(p.x - x0 - t * dx, p.y - y0 - t * dy);
}

bool valid_trace(const std::vector<pp::Polyline>& traced, const Image& skeleton, int h, int w,
                 float min_length) {
  return cathtrack::testing::valid_trace(traced, skeleton.data(), h, w, min_length);
}

void test_centerlines(std::mt19937& rng) {
  // A straight diagonal-free line of 30 pixels traces to 30 points, distal end inside.
  const int h = 20, w = 40;
  Image line(h * w, 0);
  for (int c = 0; c < 30; ++c) line[10 * w + c] = 1;
  auto traced = pp::trace_centerlines(line.data(), h, w, 5.0f);
  check(traced.size() == 1 && traced[0].size() == 30, "straight line traced");
  if (!traced.empty()) {
    check(traced[0].front().x == 29.0f && traced[0].back().x == 0.0f,
          "the end away from the border comes first");
  }
  check(pp::trace_centerlines(line.data(), h, w, 100.0f).empty(), "short lines dropped");
  check(pp::trace_centerlines(nullptr, 0, 0, 1.0f).empty(), "empty skeleton");
  for (const float bad :
       {-1.0f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    check(refusal_of([&] {
            pp::trace_centerlines(line.data(), h, w, bad);
          }).rfind("min_length must be finite and >= 0, got ", 0) == 0,
          "a negative or non-finite min_length is refused");
  }
  check(refusal_of([&] { pp::trace_centerlines(line.data(), h, w, -0.5f); }) ==
            "min_length must be finite and >= 0, got -0.5",
        "the refusal names the value as Python prints it");

  // Two 5 px strokes crossing at 40, 60 and 90 degrees: one polyline on each.
  for (const float angle : {40.0f, 60.0f, 90.0f}) {
    const int size = 100;
    const float half = 0.5f * angle * 3.14159265f / 180.0f, reach = 40.0f;
    const float ends[2][4] = {{50 - reach * std::sin(half), 50 - reach * std::cos(half),
                               50 + reach * std::sin(half), 50 + reach * std::cos(half)},
                              {50 + reach * std::sin(half), 50 - reach * std::cos(half),
                               50 - reach * std::sin(half), 50 + reach * std::cos(half)}};
    Image crossing(size * size, 0);
    for (const auto& e : ends) draw_stroke(crossing, size, size, e[0], e[1], e[2], e[3], 5.0f);
    pp::thin(crossing.data(), size, size);
    traced = pp::trace_centerlines(crossing.data(), size, size, 10.0f);
    check(traced.size() == 2, "a crossing gives two polylines", static_cast<int>(angle));
    int on_own_stroke = 0;
    for (const auto& polyline : traced) {
      for (const auto& e : ends) {
        bool follows = distance_to_segment(polyline.front(), e[0], e[1], e[2], e[3]) < 3.5f &&
                       distance_to_segment(polyline.back(), e[0], e[1], e[2], e[3]) < 3.5f;
        for (std::size_t i = 2; i + 2 < polyline.size(); ++i) {
          follows &= distance_to_segment(polyline[i], e[0], e[1], e[2], e[3]) < 2.0f;
        }
        on_own_stroke += follows;
      }
    }
    check(on_own_stroke == 2, "each crossing polyline follows its own stroke",
          static_cast<int>(angle));
  }

  // A T (a device ending on the side of another) gives the trunk and the side branch; a 3 px
  // spur is pruned; a ring gives one polyline all the way round.
  const int size = 60;
  Image t_junction(size * size, 0);
  for (int c = 5; c < 55; ++c) t_junction[30 * size + c] = 1;
  for (int r = 10; r < 30; ++r) t_junction[r * size + 25] = 1;
  traced = pp::trace_centerlines(t_junction.data(), size, size, 5.0f);
  check(traced.size() == 2, "a T gives two polylines", static_cast<int>(traced.size()));
  check(traced.size() == 2 && traced[1].size() == 50, "the trunk of the T is whole");
  for (int r = 10; r < 27; ++r) t_junction[r * size + 25] = 0;
  traced = pp::trace_centerlines(t_junction.data(), size, size, 5.0f);
  check(traced.size() == 1 && traced[0].size() == 50, "a spur is pruned");
  Image ring(size * size, 0);
  for (int k = 0; k < 720; ++k) {
    const float a = static_cast<float>(k) * 3.14159265f / 360.0f;
    ring[static_cast<int>(std::lround(30 + 20 * std::sin(a))) * size +
         static_cast<int>(std::lround(30 + 20 * std::cos(a)))] = 1;
  }
  pp::thin(ring.data(), size, size);
  traced = pp::trace_centerlines(ring.data(), size, size, 5.0f);
  check(traced.size() == 1, "a ring gives one polyline", static_cast<int>(traced.size()));
  if (traced.size() == 1) {
    const pp::Point first = traced[0].front(), last = traced[0].back();
    check(std::hypot(first.x - last.x, first.y - last.y) <= 1.41422f, "around the whole ring");
  }

  // Edge cases: all-ones images (every pixel a junction), lines along the border.
  for (const auto& shape : std::vector<std::pair<int, int>>{
           {1, 1}, {1, 9}, {9, 1}, {2, 2}, {3, 3}, {2, 40}, {17, 23}}) {
    const Image full(static_cast<std::size_t>(shape.first) * shape.second, 1);
    traced = pp::trace_centerlines(full.data(), shape.first, shape.second, 0.0f);
    check(traced.size() == 1, "an all-ones image gives one polyline",
          shape.first * 100 + shape.second);
    check(valid_trace(traced, full, shape.first, shape.second, 0.0f), "all-ones trace is valid",
          shape.first * 100 + shape.second);
  }
  Image frame(size * size, 0);
  for (int k = 0; k < size; ++k) {
    frame[k] = frame[(size - 1) * size + k] = frame[k * size] = frame[k * size + size - 1] = 1;
  }
  traced = pp::trace_centerlines(frame.data(), size, size, 5.0f);
  // Around the whole frame, cutting the four corner pixels (the shortest path through a corner).
  check(traced.size() == 1 && traced[0].size() == 4 * (size - 2), "a frame along the border");

  // Random inputs: thinned blobs, thinned random strokes, and raw noise that is no skeleton at all
  // (dense junction clusters, loops, many-armed clusters).
  std::uniform_int_distribution<int> image_size(1, 48);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  for (int trial = 0; trial < 600; ++trial) {
    const int hh = image_size(rng), ww = image_size(rng);
    Image skeleton;
    if (trial % 3 == 0) {
      skeleton = random_blobs(rng, hh, ww);
      pp::thin(skeleton.data(), hh, ww);
    } else if (trial % 3 == 1) {
      skeleton.assign(static_cast<std::size_t>(hh) * ww, 0);
      for (int k = static_cast<int>(rng() % 6); k > 0; --k) {
        draw_stroke(skeleton, hh, ww, unit(rng) * ww, unit(rng) * hh, unit(rng) * ww,
                    unit(rng) * hh, 1.0f + 5.0f * unit(rng));
      }
      pp::thin(skeleton.data(), hh, ww);
    } else {
      const float density = unit(rng);
      skeleton.assign(static_cast<std::size_t>(hh) * ww, 0);
      for (auto& pixel : skeleton) pixel = unit(rng) < density;
    }
    const float min_length = trial % 2 ? 0.0f : 8.0f;
    const auto lines = pp::trace_centerlines(skeleton.data(), hh, ww, min_length);
    check(valid_trace(lines, skeleton, hh, ww, min_length), "random trace is valid", trial);
    check(pp::trace_centerlines(skeleton.data(), hh, ww, min_length).size() == lines.size(),
          "tracing is deterministic", trial);
  }
  // One large noisy image, where clusters have many arms and merge across short bridges.
  const int big = 256;
  Image noise(big * big, 0);
  for (auto& pixel : noise) pixel = unit(rng) < 0.35f;
  check(valid_trace(pp::trace_centerlines(noise.data(), big, big, 0.0f), noise, big, big, 0.0f),
        "large noise trace is valid");
}

void test_patterns(std::mt19937& rng) {
  std::vector<pp::Polyline> lines = {{{0, 0}, {10, 0}, {20, 0}}, {{0, 10}, {20, 10}}, {}};
  const pp::Point electrodes[] = {{15, 1}, {5, -1}, {3, 9}, {50, 50}};
  const auto assignments = pp::assign_electrodes(lines, electrodes, 4, 3.0f);
  check(assignments[0].centerline == 0 && std::fabs(assignments[0].arc_length - 15.0f) < 1e-5f,
        "electrode on the first line");
  check(assignments[2].centerline == 1, "electrode on the second line");
  check(assignments[3].centerline == -1, "far electrode unassigned");
  const auto groups = pp::group_by_centerline(assignments, lines.size());
  check(groups[0] == std::vector<std::int32_t>{1, 0}, "ordered along the line");
  check(pp::assign_electrodes(lines, nullptr, 0, 3.0f).empty(), "no electrodes");
  for (const float bad :
       {-1.0f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    check(refusal_of([&] {
            pp::assign_electrodes(lines, electrodes, 4, bad);
          }).rfind("max_distance must be finite and >= 0, got ", 0) == 0,
          "a negative or non-finite max_distance is refused");
  }
  check(refusal_of([&] { pp::assign_electrodes(lines, electrodes, 4, -2.0f); }) ==
            "max_distance must be finite and >= 0, got -2.0",
        "the refusal names the value as Python prints it");
  check(pp::assign_electrodes(lines, electrodes, 4, 0.0f)[0].centerline == -1,
        "max_distance 0 assigns only electrodes on a centerline");

  const std::vector<pp::SpacingTemplate> templates = {{0, {4, 10, 4}}, {1, {7, 7, 7}}, {2, {10}}};
  const pp::Point quad[] = {{0, 0}, {8, 0}, {28, 0}, {36, 0}};  // 4-10-4 at scale 2
  auto result = pp::classify_spacing(quad, 4, templates);
  // 7-7-7 still fits 8-20-8 a little (0.018), which takes 2 % off the share.
  check(result.type == 0 && result.score > 0.97f, "exact pattern matches");
  const pp::Point pair[] = {{0, 0}, {0, 5}};
  const auto two = pp::classify_spacing(pair, 2, templates);
  check(two.type == 2, "two electrodes: the two-electrode device");
  // Every template fits one gap: fits 1, 0.5, 0.5, so the score is 1 * 1 / 2.
  check(std::fabs(two.score - 0.5f) < 1e-6f, "an ambiguous pattern scores its share");
  check(pp::classify_spacing(pair, 1, templates).type == -1, "one electrode is unknown");
  const pp::Point same[] = {{1, 1}, {1, 1}, {1, 1}};
  check(pp::classify_spacing(same, 3, templates).type == -1, "coincident points are unknown");
  for (const float bad : {0.0f, -0.1f, std::numeric_limits<float>::quiet_NaN(),
                          std::numeric_limits<float>::infinity()}) {
    check(refusal_of([&] {
            pp::classify_spacing(quad, 4, templates, bad);
          }).rfind("tolerance must be finite and > 0, got ", 0) == 0,
          "a tolerance that is not finite and > 0 is refused");
  }
  // Types are labels: the largest int32 costs no more memory than 0 and scores the same.
  std::vector<pp::SpacingTemplate> relabelled = templates;
  relabelled[0].type = std::numeric_limits<std::int32_t>::max();
  const auto big = pp::classify_spacing(quad, 4, relabelled);
  check(big.type == relabelled[0].type && big.variant == 0 && big.score == result.score,
        "a huge type is a label like any other");
  std::uniform_real_distribution<float> coordinate(-100.0f, 100.0f);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<pp::Point> points(rng() % 25);
    for (auto& p : points) p = {coordinate(rng), coordinate(rng)};
    const auto r = pp::classify_spacing(points.data(), static_cast<int>(points.size()), templates);
    check(r.score >= 0.0f && r.score <= 1.0f, "score in [0, 1]", trial);
  }
}

// The message check_decode_settings throws for these settings, "" when it accepts them.
std::string refusal(const rt::DecodeSettings& settings) {
  try {
    rt::check_decode_settings(settings);
  } catch (const std::invalid_argument& error) {
    return error.what();
  }
  return "";
}

void test_decode_settings() {
  check(refusal(rt::DecodeSettings{}).empty(), "the default decoding settings are accepted");
  rt::DecodeSettings zero;
  zero.score_threshold = zero.mask_threshold = zero.min_centerline_length = 0.0f;
  zero.max_assign_distance = zero.tip_lookback = 0.0f;
  zero.max_peaks = 0;
  check(refusal(zero).empty(), "zero thresholds, lengths and max_peaks are accepted");
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const std::pair<const char*, float rt::DecodeSettings::*> thresholds[] = {
      {"score_threshold", &rt::DecodeSettings::score_threshold},
      {"mask_threshold", &rt::DecodeSettings::mask_threshold},
      {"min_centerline_length", &rt::DecodeSettings::min_centerline_length},
      {"max_assign_distance", &rt::DecodeSettings::max_assign_distance},
      {"tip_lookback", &rt::DecodeSettings::tip_lookback}};
  int index = 0;
  for (const auto& [name, member] : thresholds) {
    for (const float bad : {-1.0f, nan, inf}) {
      rt::DecodeSettings settings;
      settings.*member = bad;
      check(refusal(settings).rfind(std::string(name) + " must be finite and >= 0, got ", 0) == 0,
            "a bad threshold or length is refused by name", index);
    }
    ++index;
  }
  rt::DecodeSettings peaks;
  peaks.max_peaks = -1;
  check(refusal(peaks) == "max_peaks must be >= 0, got -1", "a negative max_peaks is refused");
  for (const float bad : {0.0f, -0.1f, nan, inf}) {
    rt::DecodeSettings settings;
    settings.spacing_tolerance = bad;
    check(refusal(settings).rfind("spacing_tolerance must be finite and > 0, got ", 0) == 0,
          "a spacing_tolerance that is not > 0 is refused");
  }
  rt::DecodeSettings both;  // the first bad value is named
  both.max_peaks = -1;
  both.spacing_tolerance = 0.0f;
  check(refusal(both) == "max_peaks must be >= 0, got -1", "the first bad value is named");
  // Probabilities: a score_threshold above 1 or a mask_threshold of 1 lets nothing through.
  rt::DecodeSettings ones;
  ones.score_threshold = 1.0f;
  ones.mask_threshold = 0.999f;
  check(refusal(ones).empty(), "score_threshold 1 and mask_threshold just below 1 are accepted");
  rt::DecodeSettings score;
  score.score_threshold = 2.0f;
  check(
      refusal(score) == "score_threshold must be <= 1 (a heatmap score is a probability), got 2.0",
      "a score_threshold above 1 is refused");
  rt::DecodeSettings mask;
  mask.mask_threshold = 1.0f;
  check(refusal(mask) ==
            "mask_threshold must be < 1 (a pixel is catheter where its probability is above it), "
            "got 1.0",
        "a mask_threshold of 1 is refused");
  rt::DecodeSettings order;  // field order: score_threshold comes before max_peaks
  order.score_threshold = 1.5f;
  order.max_peaks = -1;
  check(refusal(order).rfind("score_threshold", 0) == 0, "fields are checked in their order");
}

// Values in messages print as Python's repr() prints the float they name.
void test_python_repr() {
  const std::pair<float, const char*> cases[] = {
      {0.3f, "0.3"},
      {2.0f, "2.0"},
      {-1.0f, "-1.0"},
      {0.0f, "0.0"},
      {-0.0f, "-0.0"},
      {0.0001f, "0.0001"},
      {1e-5f, "1e-05"},
      {100000.0f, "100000.0"},
      {123456.5f, "123456.5"},
      {1e15f, "1000000000000000.0"},
      {1e16f, "1e+16"},
      {1.5e20f, "1.5e+20"},
      {std::numeric_limits<float>::max(), "3.4028235e+38"},
      {std::numeric_limits<float>::denorm_min(), "1e-45"},
      {std::numeric_limits<float>::infinity(), "inf"},
      {-std::numeric_limits<float>::infinity(), "-inf"},
      {std::numeric_limits<float>::quiet_NaN(), "nan"},
      {-std::numeric_limits<float>::quiet_NaN(), "nan"},
  };
  int index = 0;
  for (const auto& [value, text] : cases) {
    const std::string got = pp::python_repr(value);
    check(got == text, "python_repr", index++);
    if (got != text) std::printf("  python_repr: got %s, want %s\n", got.c_str(), text);
  }
}

}  // namespace

int main() {
  std::mt19937 rng(1234);
  test_thinning(rng);
  test_peaks(rng);
  test_centerlines(rng);
  test_patterns(rng);
  test_decode_settings();
  test_python_repr();
  std::printf("postprocess selftest: %d checks, %d failed\n", g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}
