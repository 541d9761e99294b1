// The plain 2-D geometry the post-processing core and the runtime share.
#pragma once

#include <vector>

namespace cathtrack::postprocess {

// (x, y) in pixels: x the column, y the row, pixel centres at integer coordinates. Two packed
// floats, so an (N, 2) float32 array can be read as N points.
struct Point {
  float x;
  float y;
};

// An ordered path of points (a centerline, distal tip first where that is known).
using Polyline = std::vector<Point>;

}  // namespace cathtrack::postprocess
