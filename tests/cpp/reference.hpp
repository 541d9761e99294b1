// Independent references and invariants shared by the C++ test drivers of the post-processing
// core (postprocess_selftest.cpp, postprocess_fuzz.cpp): a plain implementation of each rule to
// compare the optimised core with, and the properties any output must have.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "postprocess/geometry.hpp"
#include "postprocess/peaks.hpp"
#include "postprocess/thinning.hpp"

namespace cathtrack::testing {

namespace pp = cathtrack::postprocess;

// Guo-Hall thinning the plain way: every foreground pixel tested in every sub-iteration (what
// pp::thin did before it learnt to test only pixels whose neighbourhood changed). Same output,
// same iteration count; time cubic in the side of a solid square, so small images only.
inline int reference_thin(std::uint8_t* image, int height, int width) {
  if (height <= 0 || width <= 0) return 0;
  const int stride = width + 2;
  std::vector<std::uint8_t> padded(static_cast<std::size_t>(height + 2) * stride, 0);
  for (int r = 0; r < height; ++r) {
    for (int c = 0; c < width; ++c) {
      padded[(r + 1) * stride + (c + 1)] = image[static_cast<std::size_t>(r) * width + c] != 0;
    }
  }
  std::vector<std::int32_t> deleted;
  int iterations = 0;
  bool changed = true;
  while (changed) {
    changed = false;
    ++iterations;
    for (const auto& table : pp::kThinningTables.deletes) {
      deleted.clear();
      for (int r = 1; r <= height; ++r) {
        for (int c = 1; c <= width; ++c) {
          const std::int32_t p = r * stride + c;
          if (!padded[p]) continue;
          const std::uint8_t* px = padded.data();
          const int code = px[p + 1] | px[p - stride + 1] << 1 | px[p - stride] << 2 |
                           px[p - stride - 1] << 3 | px[p - 1] << 4 | px[p + stride - 1] << 5 |
                           px[p + stride] << 6 | px[p + stride + 1] << 7;
          if (table[code]) deleted.push_back(p);
        }
      }
      if (deleted.empty()) continue;
      changed = true;
      for (const std::int32_t p : deleted) padded[p] = 0;
    }
  }
  for (int r = 0; r < height; ++r) {
    for (int c = 0; c < width; ++c) {
      image[static_cast<std::size_t>(r) * width + c] = padded[(r + 1) * stride + (c + 1)];
    }
  }
  return iterations;
}

// The peaks' pixel indices by the definition, pixel by pixel: a finite value >= threshold,
// strictly above the finite neighbours before it in raster order and >= those after it
// (non-finite neighbours do not count); sorted by score descending then index; at most max_peaks.
inline std::vector<std::int32_t> reference_peak_indices(const float* heat, int height, int width,
                                                        float threshold, int max_peaks) {
  std::vector<std::pair<float, std::int32_t>> found;
  for (int r = 0; r < height; ++r) {
    for (int c = 0; c < width; ++c) {
      const float v = heat[static_cast<std::size_t>(r) * width + c];
      if (!std::isfinite(v) || !(v >= threshold)) continue;
      bool peak = true;
      for (int dr = -1; dr <= 1 && peak; ++dr) {
        for (int dc = -1; dc <= 1 && peak; ++dc) {
          const int rr = r + dr, cc = c + dc;
          if ((dr == 0 && dc == 0) || rr < 0 || rr >= height || cc < 0 || cc >= width) continue;
          const float n = heat[static_cast<std::size_t>(rr) * width + cc];
          if (!std::isfinite(n)) continue;
          const bool before = dr < 0 || (dr == 0 && dc < 0);
          peak = before ? v > n : v >= n;
        }
      }
      if (peak) found.emplace_back(v, r * width + c);
    }
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  if (found.size() > static_cast<std::size_t>(std::max(max_peaks, 0))) found.resize(max_peaks);
  std::vector<std::int32_t> indices;
  for (const auto& item : found) indices.push_back(item.second);
  return indices;
}

// Invariants of any trace: end points are skeleton pixels; points stay inside the image and move
// at most one 8-connected step at a time (the smoothing averages such steps); a polyline of one
// point only where min_length is 0; polylines in raster order of their first point.
inline bool valid_trace(const std::vector<pp::Polyline>& traced, const std::uint8_t* skeleton,
                        int h, int w, float min_length) {
  bool ok = true;
  for (const auto& polyline : traced) {
    if (polyline.empty()) return false;
    for (const pp::Point& end : {polyline.front(), polyline.back()}) {
      const int r = static_cast<int>(end.y), c = static_cast<int>(end.x);
      ok &= end.x == static_cast<float>(c) && end.y == static_cast<float>(r);
      ok &= r >= 0 && r < h && c >= 0 && c < w && skeleton[r * w + c];
    }
    float length = 0.0f;
    for (std::size_t i = 0; i < polyline.size(); ++i) {
      ok &= polyline[i].x >= 0.0f && polyline[i].x <= w - 1.0f;
      ok &= polyline[i].y >= 0.0f && polyline[i].y <= h - 1.0f;
      if (i > 0) {
        const float step =
            std::hypot(polyline[i].x - polyline[i - 1].x, polyline[i].y - polyline[i - 1].y);
        ok &= step <= 1.41422f;
        length += step;
      }
    }
    // Smoothing only shortens the pixel path, whose length passed the filter.
    ok &= polyline.size() == 1 || length <= static_cast<float>(polyline.size()) * 1.41422f;
    ok &= min_length <= 0.0f || polyline.size() > 1;
  }
  for (std::size_t i = 1; i < traced.size(); ++i) {
    const auto index = [w](const pp::Point& p) { return static_cast<int>(p.y) * w + p.x; };
    ok &= index(traced[i - 1].front()) <= index(traced[i].front());
  }
  return ok;
}

}  // namespace cathtrack::testing
