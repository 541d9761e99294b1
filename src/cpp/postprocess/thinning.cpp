#include "thinning.hpp"

#include <vector>

namespace cathtrack::postprocess {

namespace {

bool bit(int code, int i) { return ((code >> i) & 1) != 0; }

// G1: exactly one 4-connected transition around the pixel (it is a simple border point).
bool g1(int code) {
  int transitions = 0;
  for (int i : {0, 2, 4, 6}) {
    if (!bit(code, i) && (bit(code, i + 1) || bit(code, (i + 2) % 8))) ++transitions;
  }
  return transitions == 1;
}

// G2: 2 <= min(N1, N2) <= 3, so end points and near-end points survive.
bool g2(int code) {
  int n1 = 0, n2 = 0;
  for (int k : {1, 3, 5, 7}) {
    if (bit(code, k) || bit(code, k - 1)) ++n1;
    if (bit(code, k) || bit(code, (k + 1) % 8)) ++n2;
  }
  const int m = n1 < n2 ? n1 : n2;
  return m == 2 || m == 3;
}

// G3 (first sub-iteration) and G3' (second): which side of the stroke each one peels.
bool g3(int code) { return !((bit(code, 1) || bit(code, 2) || !bit(code, 7)) && bit(code, 0)); }
bool g3_prime(int code) { return !((bit(code, 5) || bit(code, 6) || !bit(code, 3)) && bit(code, 4)); }

std::array<ThinningTable, 2> build_tables() {
  std::array<ThinningTable, 2> tables{};
  for (int code = 0; code < 256; ++code) {
    const bool g12 = g1(code) && g2(code);
    tables[0][code] = g12 && g3(code) ? 1 : 0;
    tables[1][code] = g12 && g3_prime(code) ? 1 : 0;
  }
  return tables;
}

}  // namespace

const std::array<ThinningTable, 2>& thinning_tables() {
  static const std::array<ThinningTable, 2> tables = build_tables();
  return tables;
}

int thin(std::uint8_t* image, int height, int width) {
  if (height <= 0 || width <= 0) return 0;
  // Work on a copy with a one-pixel background frame so neighbour reads need no bounds checks,
  // and visit only foreground pixels: thinning touches nothing else, and the foreground shrinks.
  const int stride = width + 2;
  std::vector<std::uint8_t> padded(static_cast<std::size_t>(height + 2) * stride, 0);
  std::vector<std::int32_t> foreground;
  for (int r = 0; r < height; ++r) {
    for (int c = 0; c < width; ++c) {
      if (image[static_cast<std::size_t>(r) * width + c]) {
        const std::int32_t p = (r + 1) * stride + (c + 1);
        padded[p] = 1;
        foreground.push_back(p);
      }
    }
  }
  const auto& tables = thinning_tables();
  const std::uint8_t* px = padded.data();
  std::vector<std::int32_t> deleted;
  int iterations = 0;
  bool changed = true;
  while (changed) {
    changed = false;
    ++iterations;
    for (const ThinningTable& table : tables) {
      deleted.clear();
      // Decide every deletion from the image as it is, then apply them together.
      for (const std::int32_t p : foreground) {
        const int code = px[p + 1] | px[p - stride + 1] << 1 | px[p - stride] << 2 |
                         px[p - stride - 1] << 3 | px[p - 1] << 4 | px[p + stride - 1] << 5 |
                         px[p + stride] << 6 | px[p + stride + 1] << 7;
        if (table[code]) deleted.push_back(p);
      }
      if (deleted.empty()) continue;
      changed = true;
      for (const std::int32_t p : deleted) padded[p] = 0;
      std::size_t kept = 0;
      for (const std::int32_t p : foreground) {
        if (padded[p]) foreground[kept++] = p;
      }
      foreground.resize(kept);
    }
  }
  for (int r = 0; r < height; ++r) {
    for (int c = 0; c < width; ++c) {
      image[static_cast<std::size_t>(r) * width + c] = padded[(r + 1) * stride + (c + 1)];
    }
  }
  return iterations;
}

}  // namespace cathtrack::postprocess
