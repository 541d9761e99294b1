// Electrode centre extraction from a heatmap: 3x3 NMS, threshold, top-K, sub-pixel refinement.
#pragma once

#include <cstdint>
#include <vector>

namespace cathtrack::postprocess {

struct Peak {
  float x;             // column, pixel centres at integers, refined to sub-pixel
  float y;             // row
  float score;         // heatmap value at the integer peak
  std::int32_t index;  // row * width + column of the integer peak (to read sizes there)
};

// Peaks of a row-major (height, width) float heatmap with value >= threshold. Values that are not
// finite (NaN, +-inf) are never peaks and never suppress a neighbour, so every score is finite.
// Sorted by score descending, ties by index ascending; at most max_peaks (0 gives none).
// The tie rule of the suppression is beats_neighbour() in peak_rules.hpp; the refinement is
// peak_offset() along x and y separately, 0 on an axis whose neighbour is outside the image or
// not finite. Throws std::invalid_argument for a NaN threshold, a negative max_peaks or size, or
// an image of 2^31 pixels or more.
std::vector<Peak> find_peaks(const float* heatmap, int height, int width, float threshold,
                             int max_peaks);

// Strict ordering used for the output, shared with the CUDA path.
inline bool peak_before(const Peak& a, const Peak& b) {
  if (a.score != b.score) return a.score > b.score;
  return a.index < b.index;
}

}  // namespace cathtrack::postprocess
