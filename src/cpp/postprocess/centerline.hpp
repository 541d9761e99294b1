// Ordered centerlines from a one-pixel-wide skeleton.
#pragma once

#include <cstdint>
#include <vector>

namespace cathtrack::postprocess {

struct Point {
  float x;
  float y;
};

using Polyline = std::vector<Point>;

// One ordered polyline per 8-connected skeleton component whose traced length is >= min_length
// pixels (arc length with steps of 1 and sqrt(2)).
//
// Branch pruning and junctions: a component is a graph of pixels; its centerline is the longest
// geodesic path through it, found by two Dijkstra sweeps (exact for trees, which thinned masks
// almost always are). At a junction the trace continues along the arm that makes the path longest;
// shorter arms (thinning spurs, the stub of a crossing device) are dropped. Components with loops
// (a circular mapping catheter seen face-on) give the longest geodesic path around the loop.
//
// Orientation: the polyline starts at the end farther from the image border (catheters enter the
// field from an edge, so the free end inside the field is the distal tip); on equal distance the
// end with the smaller raster index comes first. Pixel centres are at integer coordinates.
// The pixel path is smoothed by a 5-pixel moving average (end points fixed), so points are
// sub-pixel and the polyline's length is the curve's length, not that of a staircase.
// Components are returned in raster order of their first pixel.
std::vector<Polyline> trace_centerlines(const std::uint8_t* skeleton, int height, int width,
                                        float min_length);

}  // namespace cathtrack::postprocess
