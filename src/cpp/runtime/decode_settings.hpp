// The decoding settings: how the network's outputs become electrodes, a mask and catheters.
// Plain C++17, no torch.
//
// The documented defaults live in the Python dataclass cathtrack.settings.DecodeSettings
// (python/cathtrack/settings.py), which says why each value was chosen; the values below must
// equal them, and tests/test_runtime.py checks that they do. Bound once, as
// cathtrack._native.DecodeSettings (src/cpp/bindings.cpp).
#pragma once

namespace cathtrack::runtime {

// Lengths in model-input pixels (the model's S x S grid), as in Python.
struct DecodeSettings {
  float score_threshold = 0.3f;         // minimum heatmap probability of an electrode
  int max_peaks = 128;                  // at most this many electrodes per frame
  float mask_threshold = 0.5f;          // probability above which a pixel is catheter
  float min_centerline_length = 10.0f;  // shortest catheter centerline kept
  float max_assign_distance = 4.0f;     // largest electrode-to-centerline distance
  float spacing_tolerance = 0.15f;      // relative spacing error of the catheter type match
  // tip_direction points from the centerline point this far behind the tip towards the tip.
  float tip_lookback = 10.0f;
};

// Throws std::invalid_argument "<field> must be <rule>, got <value>" for the first bad field in
// declaration order: thresholds and lengths that are not finite and >= 0, a score_threshold
// above 1 or a mask_threshold of 1 or more (no electrode or pixel could pass them: both are
// probabilities), a negative max_peaks, a spacing_tolerance that is not finite and > 0. The value
// prints as Python prints it; cathtrack.settings.DecodeSettings refuses the same values with the
// same messages (tests/test_settings.py).
void check_decode_settings(const DecodeSettings& settings);

}  // namespace cathtrack::runtime
