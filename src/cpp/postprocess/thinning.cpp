#include "thinning.hpp"

#include <vector>

#include "arguments.hpp"

namespace cathtrack::postprocess {

int thin(std::uint8_t* image, int height, int width) {
  require_image_size(height, width, 1);
  if (height == 0 || width == 0) return 0;
  // Work on a copy with a one-pixel background frame so neighbour reads need no bounds checks.
  const int stride = width + 2;
  std::vector<std::uint8_t> padded(static_cast<std::size_t>(height + 2) * stride, 0);
  for (int r = 0; r < height; ++r) {
    for (int c = 0; c < width; ++c) {
      padded[(r + 1) * stride + (c + 1)] = image[static_cast<std::size_t>(r) * width + c] != 0;
    }
  }
  const std::uint8_t* px = padded.data();
  const auto code_of = [px, stride](std::int32_t p) {
    return px[p + 1] | px[p - stride + 1] << 1 | px[p - stride] << 2 | px[p - stride - 1] << 3 |
           px[p - 1] << 4 | px[p + stride - 1] << 5 | px[p + stride] << 6 | px[p + stride + 1] << 7;
  };
  const std::int32_t around[8] = {1,  -stride + 1, -stride, -stride - 1,
                                  -1, stride - 1,  stride,  stride + 1};
  // pending[s]: the pixels sub-iteration s has to test, each once (bit s of queued). A pixel it
  // tested and kept is tested again only after a neighbour was deleted: with the same
  // neighbourhood it would be kept again. Interior pixels are never deleted (static_assert in
  // thinning.hpp), so at first only the border of the foreground is pending.
  std::vector<std::uint8_t> queued(padded.size(), 0);
  std::vector<std::int32_t> pending[2];
  for (int r = 0; r < height; ++r) {
    for (int c = 0; c < width; ++c) {
      const std::int32_t p = (r + 1) * stride + (c + 1);
      if (px[p] && code_of(p) != 255) {
        pending[0].push_back(p);
        pending[1].push_back(p);
        queued[p] = 3;
      }
    }
  }
  std::vector<std::int32_t> deleted;
  int iterations = 0;
  bool changed = true;
  while (changed) {
    changed = false;
    ++iterations;
    for (int s = 0; s < 2; ++s) {
      const auto& table = kThinningTables.deletes[s];
      const auto bit = static_cast<std::uint8_t>(1u << s);
      // Decide every deletion from the image as it is, then apply them together.
      deleted.clear();
      for (const std::int32_t p : pending[s]) {
        queued[p] &= static_cast<std::uint8_t>(~bit);
        if (px[p] && table[code_of(p)]) deleted.push_back(p);  // px[p] == 0: deleted since
      }
      pending[s].clear();
      if (deleted.empty()) continue;
      changed = true;
      for (const std::int32_t p : deleted) padded[p] = 0;
      for (const std::int32_t p : deleted) {
        for (const std::int32_t offset : around) {
          const std::int32_t q = p + offset;
          if (!px[q] || queued[q] == 3) continue;
          if (!(queued[q] & 1)) pending[0].push_back(q);
          if (!(queued[q] & 2)) pending[1].push_back(q);
          queued[q] = 3;
        }
      }
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
