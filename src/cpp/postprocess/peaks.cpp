#include "peaks.hpp"

#include <algorithm>
#include <cmath>

#include "arguments.hpp"
#include "peak_rules.hpp"

namespace cathtrack::postprocess {

std::vector<Peak> find_peaks(const float* heatmap, int height, int width, float threshold,
                             int max_peaks) {
  require_image_size(height, width);
  if (std::isnan(threshold)) throw std::invalid_argument("threshold must not be NaN");
  require_non_negative("max_peaks", max_peaks);
  std::vector<Peak> peaks;
  if (max_peaks == 0) return peaks;
  for (int row = 0; row < height; ++row) {
    const float* line = heatmap + static_cast<std::ptrdiff_t>(row) * width;
    for (int col = 0; col < width; ++col) {
      const float value = line[col];
      if (!(value >= threshold)) continue;                              // also rejects NaN
      if (!is_peak(heatmap, height, width, row, col, value)) continue;  // and +-inf
      const float dx = (col > 0 && col + 1 < width) ? peak_offset(comparable(line[col - 1]), value,
                                                                  comparable(line[col + 1]))
                                                    : 0.0f;
      const float dy =
          (row > 0 && row + 1 < height)
              ? peak_offset(comparable(line[col - width]), value, comparable(line[col + width]))
              : 0.0f;
      peaks.push_back({static_cast<float>(col) + dx, static_cast<float>(row) + dy, value,
                       static_cast<std::int32_t>(row * width + col)});
    }
  }
  const std::size_t keep = std::min<std::size_t>(peaks.size(), static_cast<std::size_t>(max_peaks));
  std::partial_sort(peaks.begin(), peaks.begin() + keep, peaks.end(), peak_before);
  peaks.resize(keep);
  return peaks;
}

}  // namespace cathtrack::postprocess
