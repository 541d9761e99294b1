// Guo-Hall parallel thinning, equal pixel for pixel to skimage.morphology.thin.
#pragma once

#include <cstdint>

namespace cathtrack::postprocess {

// Neighbourhood code of a pixel: the bit weights skimage correlates with,
//   [[  8,  4,  2],
//    [ 16,  0,  1],
//    [ 32, 64, 128]]
// i.e. bit 0 = east, then counter-clockwise: NE, N, NW, W, SW, S, SE.
enum NeighbourBit : int { kE = 0, kNE = 1, kN = 2, kNW = 3, kW = 4, kSW = 5, kS = 6, kSE = 7 };

// Deletion tables of the two sub-iterations (Guo & Hall 1989, conditions G1, G2, G3 / G3'),
// built exactly as skimage's _generate_thin_luts: deletes[s][code] = 1 when sub-iteration s deletes
// a foreground pixel with that neighbourhood code. Built at compile time, so the CUDA kernels
// initialise their __constant__ copy from the same source.
struct ThinningTables {
  std::uint8_t deletes[2][256];
};

namespace guo_hall {

constexpr bool bit(int code, int i) { return ((code >> i) & 1) != 0; }

// G1: exactly one 4-connected transition around the pixel (it is a simple border point).
constexpr bool g1(int code) {
  int transitions = 0;
  for (int i = 0; i < 8; i += 2) {
    if (!bit(code, i) && (bit(code, i + 1) || bit(code, (i + 2) % 8))) ++transitions;
  }
  return transitions == 1;
}

// G2: 2 <= min(N1, N2) <= 3, so end points and near-end points survive.
constexpr bool g2(int code) {
  int n1 = 0, n2 = 0;
  for (int k = 1; k < 8; k += 2) {
    if (bit(code, k) || bit(code, k - 1)) ++n1;
    if (bit(code, k) || bit(code, (k + 1) % 8)) ++n2;
  }
  const int m = n1 < n2 ? n1 : n2;
  return m == 2 || m == 3;
}

// G3 (first sub-iteration) and G3' (second): which side of the stroke each one peels.
constexpr bool g3(int code) {
  return !((bit(code, 1) || bit(code, 2) || !bit(code, 7)) && bit(code, 0));
}
constexpr bool g3_prime(int code) {
  return !((bit(code, 5) || bit(code, 6) || !bit(code, 3)) && bit(code, 4));
}

}  // namespace guo_hall

constexpr ThinningTables build_thinning_tables() {
  ThinningTables tables{};
  for (int code = 0; code < 256; ++code) {
    const bool g12 = guo_hall::g1(code) && guo_hall::g2(code);
    tables.deletes[0][code] = g12 && guo_hall::g3(code) ? 1 : 0;
    tables.deletes[1][code] = g12 && guo_hall::g3_prime(code) ? 1 : 0;
  }
  return tables;
}

inline constexpr ThinningTables kThinningTables = build_thinning_tables();

// Neither sub-iteration deletes a pixel whose eight neighbours are all foreground, which is what
// lets thin() look at the border of the foreground only.
static_assert(kThinningTables.deletes[0][255] == 0 && kThinningTables.deletes[1][255] == 0);

// Thins a row-major (height, width) binary image in place (nonzero = foreground; output 0/1).
// Borders are treated as background, like skimage's mode='constant'. Iterates to convergence:
// each iteration runs sub-iteration 1 then 2, each deciding every deletion from the image as it
// was before that sub-iteration (parallel thinning). Returns the number of iterations run.
//
// Time is linear in the number of pixels: a sub-iteration tests only the pixels whose
// neighbourhood changed since it last tested them (at first, the foreground pixels with a
// background neighbour), since the same neighbourhood gives the same decision. A solid
// 4096 x 4096 mask takes well under a second, not the minute that testing every foreground pixel
// on each of its ~2000 iterations took. Memory: about 2 bytes per pixel plus the lists of pixels
// to test. Throws std::invalid_argument for a negative size or one whose padded copy
// ((height + 2) x (width + 2)) has 2^31 pixels or more.
int thin(std::uint8_t* image, int height, int width);

}  // namespace cathtrack::postprocess
