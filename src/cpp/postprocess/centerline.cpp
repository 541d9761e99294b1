#include "centerline.hpp"

#include <algorithm>
#include <functional>
#include <limits>
#include <queue>
#include <utility>

namespace cathtrack::postprocess {

namespace {

constexpr float kDiagonal = 1.41421356f;
constexpr int kSmoothingRadius = 2;
constexpr int kDy[8] = {-1, -1, -1, 0, 0, 1, 1, 1};
constexpr int kDx[8] = {-1, 0, 1, -1, 1, -1, 0, 1};

// Shortest-path distances inside one component, from one pixel, with predecessors.
class GeodesicSearch {
 public:
  GeodesicSearch(const std::uint8_t* skeleton, int height, int width)
      : skeleton_(skeleton),
        height_(height),
        width_(width),
        distance_(static_cast<std::size_t>(height) * width, kUnreached),
        previous_(static_cast<std::size_t>(height) * width, -1) {}

  // Runs from source over the given component pixels; returns the farthest pixel (ties: smallest
  // index, so the result does not depend on heap order).
  std::int32_t run(std::int32_t source, const std::vector<std::int32_t>& component) {
    for (const std::int32_t p : component) {
      distance_[p] = kUnreached;
      previous_[p] = -1;
    }
    using Item = std::pair<float, std::int32_t>;
    std::priority_queue<Item, std::vector<Item>, std::greater<Item>> queue;
    distance_[source] = 0.0f;
    queue.push({0.0f, source});
    while (!queue.empty()) {
      const auto [d, p] = queue.top();
      queue.pop();
      if (d > distance_[p]) continue;
      const int row = p / width_, col = p % width_;
      for (int k = 0; k < 8; ++k) {
        const int r = row + kDy[k], c = col + kDx[k];
        if (r < 0 || r >= height_ || c < 0 || c >= width_) continue;
        const std::int32_t q = r * width_ + c;
        if (!skeleton_[q]) continue;
        const float step = (kDy[k] != 0 && kDx[k] != 0) ? kDiagonal : 1.0f;
        if (d + step < distance_[q]) {
          distance_[q] = d + step;
          previous_[q] = p;
          queue.push({distance_[q], q});
        }
      }
    }
    std::int32_t farthest = source;
    for (const std::int32_t p : component) {
      if (distance_[p] > distance_[farthest] ||
          (distance_[p] == distance_[farthest] && p < farthest)) {
        farthest = p;
      }
    }
    return farthest;
  }

  float distance(std::int32_t p) const { return distance_[p]; }
  std::int32_t previous(std::int32_t p) const { return previous_[p]; }

 private:
  static constexpr float kUnreached = std::numeric_limits<float>::infinity();
  const std::uint8_t* skeleton_;
  int height_, width_;
  std::vector<float> distance_;
  std::vector<std::int32_t> previous_;
};

std::vector<std::vector<std::int32_t>> connected_components(const std::uint8_t* skeleton,
                                                            int height, int width) {
  std::vector<std::vector<std::int32_t>> components;
  std::vector<std::uint8_t> seen(static_cast<std::size_t>(height) * width, 0);
  std::vector<std::int32_t> stack;
  for (std::int32_t start = 0; start < height * width; ++start) {
    if (!skeleton[start] || seen[start]) continue;
    std::vector<std::int32_t> component;
    seen[start] = 1;
    stack.push_back(start);
    while (!stack.empty()) {
      const std::int32_t p = stack.back();
      stack.pop_back();
      component.push_back(p);
      const int row = p / width, col = p % width;
      for (int k = 0; k < 8; ++k) {
        const int r = row + kDy[k], c = col + kDx[k];
        if (r < 0 || r >= height || c < 0 || c >= width) continue;
        const std::int32_t q = r * width + c;
        if (skeleton[q] && !seen[q]) {
          seen[q] = 1;
          stack.push_back(q);
        }
      }
    }
    components.push_back(std::move(component));
  }
  return components;
}

// Moving average over 2*radius+1 pixels, the window shrinking symmetrically at the ends so the end
// points stay where they are. Removes the staircase of the 8-connected pixel path, whose length
// overestimates the true arc length by up to 8 % (at 22.5 degrees); electrode spacing is
// measured along these polylines.
Polyline smooth(const Polyline& line, int radius) {
  const int n = static_cast<int>(line.size());
  Polyline out(line.size());
  for (int i = 0; i < n; ++i) {
    const int k = std::min({radius, i, n - 1 - i});
    float x = 0.0f, y = 0.0f;
    for (int j = i - k; j <= i + k; ++j) {
      x += line[j].x;
      y += line[j].y;
    }
    out[i] = {x / static_cast<float>(2 * k + 1), y / static_cast<float>(2 * k + 1)};
  }
  return out;
}

int distance_to_border(std::int32_t p, int height, int width) {
  const int row = p / width, col = p % width;
  return std::min(std::min(row, height - 1 - row), std::min(col, width - 1 - col));
}

}  // namespace

std::vector<Polyline> trace_centerlines(const std::uint8_t* skeleton, int height, int width,
                                        float min_length) {
  std::vector<Polyline> centerlines;
  if (height <= 0 || width <= 0) return centerlines;
  GeodesicSearch search(skeleton, height, width);
  for (const auto& component : connected_components(skeleton, height, width)) {
    // Double sweep: the farthest pixel from anywhere is one end of the longest path; the
    // farthest pixel from that end is the other.
    const std::int32_t first_end = search.run(component.front(), component);
    const std::int32_t second_end = search.run(first_end, component);
    if (search.distance(second_end) < min_length) continue;
    std::vector<std::int32_t> path;
    for (std::int32_t p = second_end; p != -1; p = search.previous(p)) path.push_back(p);
    // path runs second_end -> first_end; put the distal end (farther from the border) first.
    const int border_first = distance_to_border(first_end, height, width);
    const int border_second = distance_to_border(second_end, height, width);
    const bool first_is_distal =
        border_first > border_second || (border_first == border_second && first_end < second_end);
    if (first_is_distal) std::reverse(path.begin(), path.end());
    Polyline line;
    line.reserve(path.size());
    for (const std::int32_t p : path) {
      line.push_back({static_cast<float>(p % width), static_cast<float>(p / width)});
    }
    centerlines.push_back(smooth(line, kSmoothingRadius));
  }
  return centerlines;
}

}  // namespace cathtrack::postprocess
