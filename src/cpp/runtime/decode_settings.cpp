#include "runtime/decode_settings.hpp"

#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace cathtrack::runtime {
namespace {

template <typename T>
[[noreturn]] void refuse(const char* name, const char* rule, T value) {
  std::ostringstream message;
  message << name << " must be " << rule << ", got " << value;
  throw std::invalid_argument(message.str());
}

}  // namespace

void check_decode_settings(const DecodeSettings& s) {
  if (s.max_peaks < 0) refuse("max_peaks", ">= 0", s.max_peaks);
  const std::pair<const char*, float> non_negative[] = {
      {"score_threshold", s.score_threshold},
      {"mask_threshold", s.mask_threshold},
      {"min_centerline_length", s.min_centerline_length},
      {"max_assign_distance", s.max_assign_distance},
      {"tip_lookback", s.tip_lookback},
  };
  for (const auto& [name, value] : non_negative) {
    if (!(std::isfinite(value) && value >= 0.0f)) refuse(name, "finite and >= 0", value);
  }
  if (!(std::isfinite(s.spacing_tolerance) && s.spacing_tolerance > 0.0f)) {
    refuse("spacing_tolerance", "finite and > 0", s.spacing_tolerance);
  }
}

}  // namespace cathtrack::runtime
