// The rules of peak finding (tie rule, NMS test, sub-pixel refinement), shared by the CPU
// reference and the CUDA kernel so both give the same bits.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "host_device.hpp"

namespace cathtrack::postprocess {

// Natural logarithm from +,-,*,/ only, so host and device give identical bits.
// Valid for positive normal floats (callers check x >= 1.17549435e-38f). Max error ~1e-7 relative.
CT_HOST_DEVICE inline float portable_log(float x) {
  std::uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  int exponent = static_cast<int>((bits >> 23) & 0xffu) - 127;
  bits = (bits & 0x007fffffu) | 0x3f800000u;  // mantissa m in [1, 2)
  float m;
  std::memcpy(&m, &bits, sizeof m);
  if (m > 1.41421356f) {  // centre the range on 1: m in (0.707, 1.414]
    m = m * 0.5f;
    exponent += 1;
  }
  // log(m) = 2 atanh(s) with s = (m-1)/(m+1), |s| <= 0.172: five odd terms reach float precision.
  const float s = (m - 1.0f) / (m + 1.0f);
  const float s2 = s * s;
  const float series =
      1.0f + s2 * (0.333333343f + s2 * (0.2f + s2 * (0.142857149f + s2 * 0.111111112f)));
  return 2.0f * s * series + static_cast<float>(exponent) * 0.693147182f;
}

// Offset in [-0.5, 0.5] of the maximum of the curve through (-1, left), (0, centre), (1, right).
// A parabola through the logarithms (a Gaussian fit) when all three values are positive: exact for
// sampled Gaussians, which is what a CenterNet heatmap approximates. A parabola through the raw
// values otherwise. 0 when the curve is not strictly concave (plateau), a value is not finite, or
// the fit overflows (inf / inf from values near the largest floats).
CT_HOST_DEVICE inline bool is_finite(float v) { return v - v == 0.0f; }

CT_HOST_DEVICE inline float peak_offset(float left, float centre, float right) {
  if (!(is_finite(left) && is_finite(centre) && is_finite(right))) return 0.0f;
  const float kMinNormal = 1.17549435e-38f;
  if (left >= kMinNormal && centre >= kMinNormal && right >= kMinNormal) {
    left = portable_log(left);
    centre = portable_log(centre);
    right = portable_log(right);
  }
  const float curvature = left - 2.0f * centre + right;
  if (!(curvature < 0.0f)) return 0.0f;
  float offset = 0.5f * (left - right) / curvature;
  // inf / inf, where raw values near the float range overflow both: no vertex to speak of.
  if (offset != offset) return 0.0f;
  if (offset > 0.5f) offset = 0.5f;
  if (offset < -0.5f) offset = -0.5f;
  return offset;
}

// A value that takes part in comparisons: a value that is not finite (NaN, +inf, -inf: a broken
// network output, never a probability) counts as -infinity, so it never suppresses a neighbour.
CT_HOST_DEVICE inline float comparable(float v) { return is_finite(v) ? v : -INFINITY; }

// The tie rule of the 3x3 non-maximum suppression, one neighbour at a time. A pixel is a peak when
// it is strictly greater than the neighbours that come before it in raster order and greater or
// equal to those after it. On a plateau exactly the first pixel in raster order survives, so every
// plateau gives one peak, whatever the order pixels are visited in (CPU loop or CUDA threads).
CT_HOST_DEVICE inline bool beats_neighbour(float value, float neighbour, int dy, int dx) {
  const bool neighbour_first = dy < 0 || (dy == 0 && dx < 0);
  return neighbour_first ? value > neighbour : value >= neighbour;
}

// The 3x3 non-maximum suppression test of pixel (row, col) holding `value`: a finite value that
// beats every neighbour inside the image under the tie rule above, non-finite neighbours counting
// as -infinity. A non-finite value is never a peak (an infinite score would be one downstream).
CT_HOST_DEVICE inline bool is_peak(const float* heatmap, int height, int width, std::int64_t row,
                                   int col, float value) {
  if (!is_finite(value)) return false;
  for (int dy = -1; dy <= 1; ++dy) {
    const std::int64_t r = row + dy;
    if (r < 0 || r >= height) continue;
    for (int dx = -1; dx <= 1; ++dx) {
      const int c = col + dx;
      if ((dy == 0 && dx == 0) || c < 0 || c >= width) continue;
      if (!beats_neighbour(value, comparable(heatmap[r * width + c]), dy, dx)) return false;
    }
  }
  return true;
}

}  // namespace cathtrack::postprocess
