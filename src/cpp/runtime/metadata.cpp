#include "runtime/metadata.hpp"

#include <cstdint>
#include <stdexcept>
#include <string>

namespace cathtrack::runtime {
namespace {

class FlatJsonParser {
 public:
  explicit FlatJsonParser(const std::string& text) : text_(text) {}

  Metadata parse() {
    Metadata result;
    expect('{');
    if (peek() == '}') {
      ++pos_;
    } else {
      for (;;) {
        std::string key = string_value();
        expect(':');
        if (peek() != '"') fail("the value of \"" + key + "\" is not a string");
        std::string value = string_value();
        if (!result.emplace(std::move(key), std::move(value)).second) fail("duplicate key");
        const char next = peek();
        ++pos_;
        if (next == '}') break;
        if (next != ',') fail("expected ',' or '}'");
      }
    }
    if (peek() != '\0') fail("unexpected text after the object");
    return result;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::invalid_argument("metadata is not a flat JSON object of strings: " + what +
                                " (at character " + std::to_string(pos_) + ")");
  }

  // The next non-space character without consuming it; '\0' at the end.
  char peek() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\n' ||
                                   text_[pos_] == '\r' || text_[pos_] == '\t')) {
      ++pos_;
    }
    return pos_ < text_.size() ? text_[pos_] : '\0';
  }

  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++pos_;
  }

  unsigned hex4() {
    if (pos_ + 4 > text_.size()) fail("truncated \\u escape");
    unsigned code = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = text_[pos_++];
      code <<= 4;
      if (c >= '0' && c <= '9') {
        code |= static_cast<unsigned>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        code |= static_cast<unsigned>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        code |= static_cast<unsigned>(c - 'A' + 10);
      } else {
        fail("bad \\u escape");
      }
    }
    return code;
  }

  static void append_utf8(std::string& out, std::uint32_t code) {
    if (code < 0x80) {
      out += static_cast<char>(code);
    } else if (code < 0x800) {
      out += static_cast<char>(0xC0 | (code >> 6));
      out += static_cast<char>(0x80 | (code & 0x3F));
    } else if (code < 0x10000) {
      out += static_cast<char>(0xE0 | (code >> 12));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (code & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (code >> 18));
      out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (code & 0x3F));
    }
  }

  std::string string_value() {
    expect('"');
    std::string out;
    for (;;) {
      if (pos_ >= text_.size()) fail("unterminated string");
      const char c = text_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in a string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= text_.size()) fail("unterminated escape");
      const char escaped = text_[pos_++];
      switch (escaped) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          std::uint32_t code = hex4();
          if (code >= 0xD800 &&
              code < 0xDC00) {  // a UTF-16 surrogate pair (json.dumps writes them)
            if (pos_ + 2 > text_.size() || text_[pos_] != '\\' || text_[pos_ + 1] != 'u') {
              fail("unpaired surrogate");
            }
            pos_ += 2;
            const std::uint32_t low = hex4();
            if (low < 0xDC00 || low >= 0xE000) fail("unpaired surrogate");
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
          } else if (code >= 0xDC00 && code < 0xE000) {
            fail("unpaired surrogate");
          }
          append_utf8(out, code);
          break;
        }
        default:
          fail("unknown escape");
      }
    }
  }

  const std::string& text_;
  std::size_t pos_ = 0;
};

const std::string& require(const Metadata& metadata, const std::string& key,
                           const std::string& source) {
  const auto found = metadata.find(key);
  if (found == metadata.end()) {
    throw ModelFileError(source +
                         ": not a cathtrack model file this build can read: " + "metadata key '" +
                         key + "' is missing (re-export it with " + "'cathtrack export')");
  }
  return found->second;
}

void require_equal(const Metadata& metadata, const std::string& key, const std::string& expected,
                   const std::string& source) {
  const std::string& value = require(metadata, key, source);
  if (value != expected) {
    throw ModelFileError(source + ": metadata " + key + " is '" + value +
                         "', this build of cathtrack understands only '" + expected + "'");
  }
}

// A non-negative decimal integer (no sign, no spaces), or -1.
long parse_count(const std::string& text) {
  if (text.empty() || text.size() > 9) return -1;
  long value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return -1;
    value = value * 10 + (c - '0');
  }
  return value;
}

// The heatmap stride s of output_strides "1,s,s" (s one of kHeatmapStrides); ModelFileError
// listing what this build reads otherwise.
int parse_output_strides(const Metadata& metadata, const std::string& source) {
  const std::string& value = require(metadata, "output_strides", source);
  std::string understood;
  for (const int stride : kHeatmapStrides) {
    const std::string text = std::to_string(stride);
    if (value == "1," + text + "," + text) return stride;
    understood += (understood.empty() ? "'1," : ", '1,") + text + "," + text + "'";
  }
  throw ModelFileError(source + ": metadata output_strides is '" + value +
                       "', this build of cathtrack understands only " + understood);
}

}  // namespace

Metadata parse_flat_json(const std::string& text) { return FlatJsonParser(text).parse(); }

ModelSpec check_metadata(const Metadata& metadata, const std::string& format,
                         const std::string& source) {
  require_equal(metadata, "format", kFileFormat, source);
  const long version = parse_count(require(metadata, "format_version", source));
  if (version != kFormatVersion) {
    throw ModelFileError(source + ": model file format_version '" + metadata.at("format_version") +
                         "' is not supported; this build of cathtrack reads format_version " +
                         std::to_string(kFormatVersion) +
                         (version > kFormatVersion ? " (upgrade cathtrack)" : ""));
  }
  require_equal(metadata, "model_format", format, source);
  require_equal(metadata, "normalization", kNormalization, source);
  require_equal(metadata, "normalization_version", std::to_string(kNormalizationVersion), source);
  require_equal(metadata, "heads", kHeads, source);
  const int heatmap_stride = parse_output_strides(metadata, source);
  require_equal(metadata, "in_channels", "1", source);
  // Informational, but an exported file always has them: their absence means a foreign file.
  require(metadata, "model_version", source);
  require(metadata, "training_config_hash", source);

  ModelSpec spec;
  spec.format = format;
  spec.heatmap_stride = heatmap_stride;
  const long size = parse_count(require(metadata, "input_size", source));
  if (size < 32 || size > 8192 || size % 32 != 0) {
    throw ModelFileError(source + ": metadata input_size '" + metadata.at("input_size") +
                         "' is not a multiple of 32 between 32 and 8192");
  }
  spec.input_size = static_cast<int>(size);
  const std::string& dtype = require(metadata, "dtype", source);
  if (dtype == "float32") {
    spec.precision = Precision::kFloat32;
  } else if (dtype == "float16") {
    spec.precision = Precision::kFloat16;
  } else if (dtype == "bfloat16") {
    spec.precision = Precision::kBFloat16;
  } else {
    throw ModelFileError(source + ": metadata dtype '" + dtype +
                         "' is not supported (float32, float16 or bfloat16)");
  }
  spec.device = require(metadata, "device", source);
  if (spec.device != "cpu" && spec.device != "cuda") {
    throw ModelFileError(source + ": metadata device '" + spec.device +
                         "' is not supported (cpu or cuda)");
  }
  const auto capability = metadata.find("cpu_capability");
  if (capability != metadata.end()) spec.cpu_capability = capability->second;
  return spec;
}

}  // namespace cathtrack::runtime
