// Guo-Hall parallel thinning, equal pixel for pixel to skimage.morphology.thin.
#pragma once

#include <array>
#include <cstdint>

namespace cathtrack::postprocess {

// Neighbourhood code of a pixel: the bit weights skimage correlates with,
//   [[  8,  4,  2],
//    [ 16,  0,  1],
//    [ 32, 64, 128]]
// i.e. bit 0 = east, then counter-clockwise: NE, N, NW, W, SW, S, SE.
enum NeighbourBit : int { kE = 0, kNE = 1, kN = 2, kNW = 3, kW = 4, kSW = 5, kS = 6, kSE = 7 };

// Deletion tables of the two sub-iterations (Guo & Hall 1989, conditions G1, G2, G3 / G3'),
// built exactly as skimage's _generate_thin_luts: entry = 1 when a foreground pixel with that
// neighbourhood code is deleted.
using ThinningTable = std::array<std::uint8_t, 256>;
const std::array<ThinningTable, 2>& thinning_tables();

// Thins a row-major (height, width) binary image in place (nonzero = foreground; output 0/1).
// Borders are treated as background, like skimage's mode='constant'. Iterates to convergence:
// each iteration runs sub-iteration 1 then 2, each deciding every deletion from the image as it
// was before that sub-iteration (parallel thinning). Returns the number of iterations run.
int thin(std::uint8_t* image, int height, int width);

}  // namespace cathtrack::postprocess
