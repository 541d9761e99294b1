#include "patterns.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>

#include "arguments.hpp"

namespace cathtrack::postprocess {

namespace {

struct Projection {
  float distance;
  float arc_length;
};

Projection project(const Polyline& line, Point p) {
  Projection best{std::numeric_limits<float>::infinity(), 0.0f};
  if (line.size() == 1) {
    best.distance = std::hypot(p.x - line[0].x, p.y - line[0].y);
    return best;
  }
  float start_arc = 0.0f;
  for (std::size_t i = 0; i + 1 < line.size(); ++i) {
    const Point a = line[i], b = line[i + 1];
    const float vx = b.x - a.x, vy = b.y - a.y;
    const float length_sq = vx * vx + vy * vy;
    const float length = std::sqrt(length_sq);
    float t = length_sq > 0.0f ? ((p.x - a.x) * vx + (p.y - a.y) * vy) / length_sq : 0.0f;
    t = std::clamp(t, 0.0f, 1.0f);
    const float d = std::hypot(p.x - (a.x + t * vx), p.y - (a.y + t * vy));
    if (d < best.distance) best = {d, start_arc + t * length};
    start_arc += length;
  }
  return best;
}

}  // namespace

std::vector<Assignment> assign_electrodes(const std::vector<Polyline>& centerlines,
                                          const Point* electrodes, int count, float max_distance) {
  require_finite_non_negative("max_distance", max_distance);
  require_non_negative("count", count);
  std::vector<Assignment> assignments(static_cast<std::size_t>(count),
                                      Assignment{-1, 0.0f, std::numeric_limits<float>::infinity()});
  for (int e = 0; e < count; ++e) {
    Assignment& a = assignments[e];
    for (std::size_t c = 0; c < centerlines.size(); ++c) {
      if (centerlines[c].empty()) continue;
      const Projection p = project(centerlines[c], electrodes[e]);
      if (p.distance < a.distance) a = {static_cast<std::int32_t>(c), p.arc_length, p.distance};
    }
    if (!(a.distance <= max_distance)) a.centerline = -1;
  }
  return assignments;
}

std::vector<std::vector<std::int32_t>> group_by_centerline(
    const std::vector<Assignment>& assignments, std::size_t centerline_count) {
  std::vector<std::vector<std::int32_t>> groups(centerline_count);
  for (std::size_t e = 0; e < assignments.size(); ++e) {
    const std::int32_t c = assignments[e].centerline;
    if (c >= 0 && static_cast<std::size_t>(c) < centerline_count) {
      groups[c].push_back(static_cast<std::int32_t>(e));
    }
  }
  // NaN (from NaN centerline points) sorts last: a comparison with NaN in it would not be the
  // strict weak ordering stable_sort needs.
  const auto key = [&](std::int32_t e) {
    const float arc = assignments[e].arc_length;
    return std::isnan(arc) ? std::numeric_limits<float>::infinity() : arc;
  };
  for (auto& group : groups) {
    std::stable_sort(group.begin(), group.end(),
                     [&](std::int32_t a, std::int32_t b) { return key(a) < key(b); });
  }
  return groups;
}

Classification classify_spacing(const Point* ordered, int count,
                                const std::vector<SpacingTemplate>& templates, float tolerance) {
  require_finite_positive("tolerance", tolerance);
  Classification best{-1, -1, 0.0f};
  if (count < 2) return best;
  std::vector<float> observed(static_cast<std::size_t>(count - 1));
  for (int i = 0; i + 1 < count; ++i) {
    observed[i] = std::hypot(ordered[i + 1].x - ordered[i].x, ordered[i + 1].y - ordered[i].y);
  }
  const float observed_norm_sq =
      std::inner_product(observed.begin(), observed.end(), observed.begin(), 0.0f);
  if (!(observed_norm_sq > 0.0f) || !std::isfinite(observed_norm_sq)) return best;
  const std::size_t gaps = observed.size();
  // The best match of each type; the winner's score is then discounted by its share of all
  // types' best matches, so a pattern several devices fit (two electrodes fit every template
  // perfectly) gets a low confidence instead of 1. Keyed by type, in ascending order (the order of
  // the sum below): types are labels, any int32, not sizes to allocate.
  std::map<std::int32_t, float> type_best;
  for (std::size_t t = 0; t < templates.size(); ++t) {
    const std::vector<float>& spacing = templates[t].spacing;
    if (spacing.size() < gaps || templates[t].type < 0) continue;
    const float coverage = static_cast<float>(count) / static_cast<float>(spacing.size() + 1);
    for (std::size_t offset = 0; offset + gaps <= spacing.size(); ++offset) {
      const float* w = spacing.data() + offset;
      float gw = 0.0f, ww = 0.0f;
      for (std::size_t i = 0; i < gaps; ++i) {
        gw += observed[i] * w[i];
        ww += w[i] * w[i];
      }
      if (!(ww > 0.0f)) continue;
      const float scale = gw / ww;
      float residual_sq = 0.0f;
      for (std::size_t i = 0; i < gaps; ++i) {
        const float r = observed[i] - scale * w[i];
        residual_sq += r * r;
      }
      const float relative = std::sqrt(residual_sq / observed_norm_sq) / tolerance;
      const float score = std::exp(-0.5f * relative * relative) * coverage;
      float& type_score = type_best[templates[t].type];  // 0 when new
      type_score = std::max(type_score, score);
      if (score > best.score) best = {templates[t].type, static_cast<std::int32_t>(t), score};
    }
  }
  float total = 0.0f;
  for (const auto& entry : type_best) total += entry.second;
  if (best.type >= 0 && total > 0.0f) best.score *= best.score / total;
  return best;
}

}  // namespace cathtrack::postprocess
