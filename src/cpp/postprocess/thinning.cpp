#include "thinning.hpp"

#include <vector>

namespace cathtrack::postprocess {

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
  const std::uint8_t* px = padded.data();
  std::vector<std::int32_t> deleted;
  int iterations = 0;
  bool changed = true;
  while (changed) {
    changed = false;
    ++iterations;
    for (const auto& table : kThinningTables.deletes) {
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
