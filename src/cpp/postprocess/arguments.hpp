// Argument checks of the post-processing core's entry points and of the decoding settings: a bad
// value throws std::invalid_argument "<name> must be <rule>, got <value>" (pybind11 turns it into
// a ValueError). Values print as Python prints the float they name, so a refusal reads the same
// from C++ and from cathtrack.settings (tests/test_settings.py compares them). Header-only and
// torch-free.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <string>
#include <system_error>

namespace cathtrack::postprocess {

// A float as Python's repr() prints the same value: the shortest digits that read back to it,
// fixed notation for decimal exponents in [-4, 16) with at least one digit after the point
// ("2.0", "0.0001"), scientific outside ("1e-05", "1.5e+20"), and "nan", "inf", "-inf".
inline std::string python_repr(float value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buffer[64];
  const auto result =
      std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::scientific);
  if (result.ec != std::errc()) return "?";
  // buffer holds [-]d[.ddd]e(+|-)xx: split it into sign, digits and decimal exponent.
  const std::string text(buffer, result.ptr);
  const std::size_t e = text.find('e');
  std::string sign, digits;
  for (std::size_t i = 0; i < e; ++i) {
    if (text[i] == '-') {
      sign = "-";
    } else if (text[i] != '.') {
      digits += text[i];
    }
  }
  const int exponent = std::atoi(text.c_str() + e + 1);
  std::string out;
  if (exponent >= -4 && exponent < 16) {
    if (exponent < 0) {
      out = "0." + std::string(static_cast<std::size_t>(-exponent - 1), '0') + digits;
    } else {
      const auto integer = static_cast<std::size_t>(exponent) + 1;
      if (digits.size() < integer) digits.append(integer - digits.size(), '0');
      const std::string fraction = digits.substr(integer);
      out = digits.substr(0, integer) + "." + (fraction.empty() ? "0" : fraction);
    }
  } else {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    const int magnitude = std::abs(exponent);
    out += std::string("e") + (exponent < 0 ? "-" : "+") + (magnitude < 10 ? "0" : "") +
           std::to_string(magnitude);
  }
  return sign + out;
}

inline std::string python_repr(int value) { return std::to_string(value); }

[[noreturn]] inline void refuse(const char* name, const char* rule, const std::string& value) {
  throw std::invalid_argument(std::string(name) + " must be " + rule + ", got " + value);
}

// Lengths, distances and thresholds: finite and >= 0.
inline void require_finite_non_negative(const char* name, float value) {
  if (!(std::isfinite(value) && value >= 0.0f)) {
    refuse(name, "finite and >= 0", python_repr(value));
  }
}

// Scales and tolerances: finite and > 0.
inline void require_finite_positive(const char* name, float value) {
  if (!(std::isfinite(value) && value > 0.0f)) refuse(name, "finite and > 0", python_repr(value));
}

inline void require_non_negative(const char* name, int value) {
  if (value < 0) refuse(name, ">= 0", python_repr(value));
}

// A (height, width) image whose pixel indices fit in int32 (the core indexes pixels with them),
// plus `margin` pixels on every side (a padded copy). 0 x N is an empty image, not an error.
inline void require_image_size(int height, int width, int margin = 0) {
  if (height < 0 || width < 0) {
    throw std::invalid_argument("image size must not be negative, got " + std::to_string(height) +
                                " x " + std::to_string(width));
  }
  const std::int64_t padded = (static_cast<std::int64_t>(height) + 2 * margin) *
                              (static_cast<std::int64_t>(width) + 2 * margin);
  if (padded > std::numeric_limits<std::int32_t>::max()) {
    throw std::invalid_argument("image is too large: " + std::to_string(height) + " x " +
                                std::to_string(width) + " pixels (at most 2^31 - 1 in all)");
  }
}

}  // namespace cathtrack::postprocess
