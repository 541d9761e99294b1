#include "runtime/decode_settings.hpp"

#include "postprocess/arguments.hpp"

namespace cathtrack::runtime {

namespace pp = cathtrack::postprocess;

void check_decode_settings(const DecodeSettings& s) {
  // Field by field, in declaration order, so the first bad one is named (the order of
  // cathtrack.settings.DecodeSettings, whose check gives the same messages).
  pp::require_finite_non_negative("score_threshold", s.score_threshold);
  if (s.score_threshold > 1.0f) {
    pp::refuse("score_threshold", "<= 1 (a heatmap score is a probability)",
               pp::python_repr(s.score_threshold));
  }
  pp::require_non_negative("max_peaks", s.max_peaks);
  pp::require_finite_non_negative("mask_threshold", s.mask_threshold);
  if (s.mask_threshold >= 1.0f) {
    pp::refuse("mask_threshold", "< 1 (a pixel is catheter where its probability is above it)",
               pp::python_repr(s.mask_threshold));
  }
  pp::require_finite_non_negative("min_centerline_length", s.min_centerline_length);
  pp::require_finite_non_negative("max_assign_distance", s.max_assign_distance);
  pp::require_finite_positive("spacing_tolerance", s.spacing_tolerance);
  pp::require_finite_non_negative("tip_lookback", s.tip_lookback);
}

}  // namespace cathtrack::runtime
