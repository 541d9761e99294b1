// Electrodes -> catheters, and catheter type from the electrode spacing pattern.
#pragma once

#include <cstdint>
#include <vector>

#include "geometry.hpp"

namespace cathtrack::postprocess {

struct Assignment {
  std::int32_t centerline;  // index into the centerlines, -1 when farther than max_distance
  float arc_length;         // position of the projection along that centerline from its start
  float distance;           // distance to that centerline in pixels
};

// Projects each electrode (x, y) onto the nearest centerline segment. Electrodes within
// max_distance pixels are assigned to it; ties between centerlines go to the lower index.
// Throws std::invalid_argument for a max_distance that is not finite and >= 0 or a negative count.
std::vector<Assignment> assign_electrodes(const std::vector<Polyline>& centerlines,
                                          const Point* electrodes, int count, float max_distance);

// Electrode indices of each centerline ordered by arc length (distal first, since centerlines
// run distal -> proximal); ties by electrode index.
std::vector<std::vector<std::int32_t>> group_by_centerline(
    const std::vector<Assignment>& assignments, std::size_t centerline_count);

// A device's expected centre-to-centre spacings, distal -> proximal (any unit: matching is
// scale-invariant). type identifies the device type for the caller.
struct SpacingTemplate {
  std::int32_t type;
  std::vector<float> spacing;
};

struct Classification {
  std::int32_t type;     // the best template's type, -1 when nothing matches
  std::int32_t variant;  // index of the best template, -1 when nothing matches
  float score;           // in [0, 1]: fit x its share of all types' fits (see classify_spacing)
};

// Matches the ordered electrodes' consecutive distances against every template.
//
// For a template of n electrodes and m <= n observed ones, each window of m-1 consecutive template
// spacings w is compared with the observed spacings g after the least-squares scale
// s = (g.w)/(w.w): relative residual e = |g - s w| / |g|, shape = exp(-(e / tolerance)^2 / 2).
// fit = shape * m / n, so a partial view of a long device scores lower than a full view of a
// short one with the same pattern. Templates with fewer electrodes than observed are skipped.
// The best fit names the type; its score is fit * fit / (sum over types of each type's best
// fit): 1 only for a good, complete fit no other type shares, lower where the pattern is
// ambiguous (two electrodes fit every device). Fewer than two electrodes give {-1, -1, 0}.
// Ties keep the earlier template; templates with a negative type are ignored. Throws
// std::invalid_argument for a tolerance that is not finite and > 0.
Classification classify_spacing(const Point* ordered, int count,
                                const std::vector<SpacingTemplate>& templates,
                                float tolerance = 0.15f);

}  // namespace cathtrack::postprocess
