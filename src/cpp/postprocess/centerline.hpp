// Ordered centerlines from a one-pixel-wide skeleton.
#pragma once

#include <cstdint>
#include <vector>

#include "geometry.hpp"

namespace cathtrack::postprocess {

// One ordered polyline per device in a skeleton, kept if its traced length is >= min_length pixels
// (arc length of the pixel path, steps of 1 and sqrt(2)).
//
// The skeleton is read as a graph: junction pixels (>= 3 skeleton neighbours; adjacent ones form
// one junction cluster) joined by branches (runs of pixels with at most two neighbours). Clusters
// joined by a branch of <= 28 px are one cluster: a shallow crossing thins into two junctions that
// far apart. Branches with a free end shorter than 6 px are thinning spurs and are dropped, though
// a cluster keeps its two longest arms. At each cluster the remaining arms are paired by direction
// (measured 2 to 10 px out of the cluster): most nearly straight through first, a pair only if it
// bends by <= 60 degrees; a cluster with two arms is a plain run and its arms are always paired.
// Branches chained through paired arms make one polyline each: an X crossing gives two polylines
// through it, a T (a device ending on the side of another) the through path and a separate branch
// that ends at the junction, a Y of a catheter and a spur one. Across a crossing-sized cluster the
// polyline is the straight line between the arms (their last 4 px trimmed, past the bend thinning
// puts next to a junction); elsewhere it follows the skeleton. A closed loop (a circular mapping
// catheter seen face-on) gives one polyline all the way round, opened at its first pixel in raster
// order (in the middle of a branch where the loop runs through junctions); a cluster without arms
// (a blob, an all-ones image) gives its longest geodesic path.
//
// Orientation: the polyline starts at the end farther from the image border (catheters enter the
// field from an edge, so the free end inside the field is the distal tip); on equal distance the
// end with the smaller raster index comes first. Pixel centres are at integer coordinates; end
// points are skeleton pixels. The pixel path is smoothed by a 5-pixel moving average (end points
// fixed), so points are sub-pixel and the polyline's length is the curve's length, not that of a
// staircase. Polylines are returned in raster order of their first point (ties: of their last).
// Memory: a few per-pixel arrays, no allocation per pixel.
// Throws std::invalid_argument for a min_length that is not finite and >= 0, a negative size, or
// an image of 2^31 pixels or more.
std::vector<Polyline> trace_centerlines(const std::uint8_t* skeleton, int height, int width,
                                        float min_length);

}  // namespace cathtrack::postprocess
