// The prune run's report as JSON, Markdown and SVG charts (see report.h).
#include "prune/report.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <numeric>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

#include "base/error.h"
#include "base/atomic_file.h"

namespace prunerec::prune {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;
using MetricMap = google::protobuf::Map<std::string, double>;

// ---------------------------------------------------------------------------------------
// Small shared helpers.

// "HR@5" < "HR@10" < "NDCG@5": digit runs compare as numbers, everything else bytewise.
bool natural_less(std::string_view a, std::string_view b) {
  std::size_t i = 0, j = 0;
  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  while (i < a.size() && j < b.size()) {
    if (digit(a[i]) && digit(b[j])) {
      std::size_t i_end = i, j_end = j;
      while (i_end < a.size() && digit(a[i_end])) ++i_end;
      while (j_end < b.size() && digit(b[j_end])) ++j_end;
      std::string_view da = a.substr(i, i_end - i), db = b.substr(j, j_end - j);
      while (da.size() > 1 && da[0] == '0') da.remove_prefix(1);
      while (db.size() > 1 && db[0] == '0') db.remove_prefix(1);
      if (da.size() != db.size()) return da.size() < db.size();
      if (da != db) return da < db;
      i = i_end;
      j = j_end;
    } else {
      if (a[i] != b[j]) return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[j]);
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

std::vector<std::string> sorted_keys(const MetricMap& m) {
  std::vector<std::string> keys;
  for (const auto& [k, v] : m) keys.push_back(k);
  std::sort(keys.begin(), keys.end(), [](const std::string& a, const std::string& b) { return natural_less(a, b); });
  return keys;
}

std::optional<double> lookup(const MetricMap& m, const std::string& key) {
  const auto it = m.find(key);
  if (it == m.end()) return std::nullopt;
  return it->second;
}

std::string printf_str(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

// The layers of a config, expanding the num_layers x layer_defaults shorthand.
std::vector<pb::LayerConfig> expand_layers(const pb::ModelConfig& c) {
  if (c.layers_size() > 0) return {c.layers().begin(), c.layers().end()};
  return std::vector<pb::LayerConfig>(static_cast<std::size_t>(std::max(0, c.num_layers())), c.layer_defaults());
}

// ---------------------------------------------------------------------------------------
// JSON printer (Note [report JSON]).

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

// Shortest text that reads back to the same value; null for NaN and infinities.
template <class Float>
void append_json_float(std::string& out, Float v) {
  if (!std::isfinite(v)) {
    out += "null";
    return;
  }
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, res.ptr);
}

std::string base64(std::string_view bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const std::uint32_t v = (std::uint32_t(std::uint8_t(bytes[i])) << 16) |
                            (std::uint32_t(std::uint8_t(bytes[i + 1])) << 8) | std::uint8_t(bytes[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += kAlphabet[(v >> s) & 63];
  }
  if (i < bytes.size()) {
    std::uint32_t v = std::uint32_t(std::uint8_t(bytes[i])) << 16;
    if (i + 1 < bytes.size()) v |= std::uint32_t(std::uint8_t(bytes[i + 1])) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

class JsonPrinter {
 public:
  static constexpr std::size_t kLineWidth = 100;

  std::string print(const Message& m) {
    out_.clear();
    message(m, 0);
    out_ += '\n';
    return std::move(out_);
  }

 private:
  void pad(int indent) { out_.append(static_cast<std::size_t>(indent), ' '); }

  void message(const Message& m, int indent) {
    std::vector<const FieldDescriptor*> fields;
    m.GetReflection()->ListFields(m, &fields);  // set fields, in field-number order
    if (fields.empty()) {
      out_ += "{}";
      return;
    }
    out_ += "{\n";
    for (std::size_t i = 0; i < fields.size(); ++i) {
      const FieldDescriptor* f = fields[i];
      pad(indent + 2);
      append_json_string(out_, f->is_extension() ? "[" + f->full_name() + "]" : f->name());
      out_ += ": ";
      field(m, f, indent + 2);
      if (i + 1 < fields.size()) out_ += ',';
      out_ += '\n';
    }
    pad(indent);
    out_ += '}';
  }

  void field(const Message& m, const FieldDescriptor* f, int indent) {
    const Reflection* refl = m.GetReflection();
    if (f->is_map()) {
      map_object(m, f, indent);
    } else if (!f->is_repeated()) {
      if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE)
        message(refl->GetMessage(m, f), indent);
      else
        out_ += scalar(m, f, -1);
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      out_ += "[\n";
      const int n = refl->FieldSize(m, f);
      for (int i = 0; i < n; ++i) {
        pad(indent + 2);
        message(refl->GetRepeatedMessage(m, f, i), indent + 2);
        if (i + 1 < n) out_ += ',';
        out_ += '\n';
      }
      pad(indent);
      out_ += ']';
    } else {
      scalar_array(m, f, indent);
    }
  }

  // Repeated scalars on one line, or filled lines when they do not fit.
  void scalar_array(const Message& m, const FieldDescriptor* f, int indent) {
    const int n = m.GetReflection()->FieldSize(m, f);
    std::vector<std::string> items;
    std::size_t total = 0;
    for (int i = 0; i < n; ++i) {
      items.push_back(scalar(m, f, i));
      total += items.back().size() + 2;
    }
    if (static_cast<std::size_t>(indent) + f->name().size() + total + 6 <= kLineWidth) {
      out_ += '[';
      for (int i = 0; i < n; ++i) out_ += (i ? ", " : "") + items[static_cast<std::size_t>(i)];
      out_ += ']';
      return;
    }
    out_ += "[\n";
    std::size_t column = 0;
    for (int i = 0; i < n; ++i) {
      const std::string& item = items[static_cast<std::size_t>(i)];
      if (column == 0) {
        pad(indent + 2);
        column = static_cast<std::size_t>(indent) + 2;
      } else if (column + item.size() + 2 > kLineWidth) {
        out_ += '\n';
        pad(indent + 2);
        column = static_cast<std::size_t>(indent) + 2;
      } else {
        out_ += ' ';
        ++column;
      }
      out_ += item;
      column += item.size();
      if (i + 1 < n) {
        out_ += ',';
        ++column;
      }
    }
    out_ += '\n';
    pad(indent);
    out_ += ']';
  }

  void map_object(const Message& m, const FieldDescriptor* f, int indent) {
    const Reflection* refl = m.GetReflection();
    const FieldDescriptor* key_field = f->message_type()->map_key();
    const FieldDescriptor* value_field = f->message_type()->map_value();
    std::vector<std::pair<std::string, const Message*>> entries;
    for (int i = 0; i < refl->FieldSize(m, f); ++i) {
      const Message& entry = refl->GetRepeatedMessage(m, f, i);
      std::string key = key_field->cpp_type() == FieldDescriptor::CPPTYPE_STRING
                            ? entry.GetReflection()->GetString(entry, key_field)
                            : scalar(entry, key_field, -1);
      entries.emplace_back(std::move(key), &entry);
    }
    std::sort(entries.begin(), entries.end(),
              [](const auto& a, const auto& b) { return natural_less(a.first, b.first); });
    out_ += "{\n";
    for (std::size_t i = 0; i < entries.size(); ++i) {
      pad(indent + 2);
      append_json_string(out_, entries[i].first);
      out_ += ": ";
      field(*entries[i].second, value_field, indent + 2);
      if (i + 1 < entries.size()) out_ += ',';
      out_ += '\n';
    }
    pad(indent);
    out_ += '}';
  }

  // One scalar value; index -1 for a singular field.
  static std::string scalar(const Message& m, const FieldDescriptor* f, int index) {
    const Reflection* r = m.GetReflection();
    const bool rep = index >= 0;
    std::string out;
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
        return std::to_string(rep ? r->GetRepeatedInt32(m, f, index) : r->GetInt32(m, f));
      case FieldDescriptor::CPPTYPE_INT64:
        return std::to_string(rep ? r->GetRepeatedInt64(m, f, index) : r->GetInt64(m, f));
      case FieldDescriptor::CPPTYPE_UINT32:
        return std::to_string(rep ? r->GetRepeatedUInt32(m, f, index) : r->GetUInt32(m, f));
      case FieldDescriptor::CPPTYPE_UINT64:
        return std::to_string(rep ? r->GetRepeatedUInt64(m, f, index) : r->GetUInt64(m, f));
      case FieldDescriptor::CPPTYPE_DOUBLE:
        append_json_float(out, rep ? r->GetRepeatedDouble(m, f, index) : r->GetDouble(m, f));
        return out;
      case FieldDescriptor::CPPTYPE_FLOAT:
        append_json_float(out, rep ? r->GetRepeatedFloat(m, f, index) : r->GetFloat(m, f));
        return out;
      case FieldDescriptor::CPPTYPE_BOOL:
        return (rep ? r->GetRepeatedBool(m, f, index) : r->GetBool(m, f)) ? "true" : "false";
      case FieldDescriptor::CPPTYPE_ENUM: {
        const auto* value = rep ? r->GetRepeatedEnum(m, f, index) : r->GetEnum(m, f);
        append_json_string(out, value->name());
        return out;
      }
      case FieldDescriptor::CPPTYPE_STRING: {
        const std::string s = rep ? r->GetRepeatedString(m, f, index) : r->GetString(m, f);
        append_json_string(out, f->type() == FieldDescriptor::TYPE_BYTES ? base64(s) : s);
        return out;
      }
      case FieldDescriptor::CPPTYPE_MESSAGE:
        break;
    }
    throw InternalError("report_json: field " + f->full_name() + " is not a scalar");
  }

  std::string out_;
};

// Rewrites each null that stands for a float or double field's value as "NaN" (Note
// [report JSON]), following the message schema through objects, arrays and maps. Returns
// nullopt for text it cannot follow; the protobuf parser then reports the error.
class NullAsNaN {
 public:
  explicit NullAsNaN(std::string_view in) : in_(in) {}

  std::optional<std::string> run(const Descriptor* root) {
    if (!value(nullptr, false, root)) return std::nullopt;
    skip_ws();
    if (pos_ != in_.size()) return std::nullopt;
    return std::move(out_);
  }

 private:
  void skip_ws() {
    while (pos_ < in_.size() && (in_[pos_] == ' ' || in_[pos_] == '\n' || in_[pos_] == '\r' || in_[pos_] == '\t'))
      out_ += in_[pos_++];
  }

  bool string_token(std::string* text) {
    if (pos_ >= in_.size() || in_[pos_] != '"') return false;
    const std::size_t start = pos_++;
    while (pos_ < in_.size() && in_[pos_] != '"') pos_ += in_[pos_] == '\\' ? 2 : 1;
    if (pos_ >= in_.size()) return false;
    ++pos_;
    out_.append(in_.substr(start, pos_ - start));
    if (text) *text = std::string(in_.substr(start + 1, pos_ - start - 2));  // escapes kept; keys have none
    return true;
  }

  static const FieldDescriptor* find_field(const Descriptor* d, const std::string& key) {
    for (int i = 0; i < d->field_count(); ++i)
      if (d->field(i)->name() == key || d->field(i)->json_name() == key) return d->field(i);
    return nullptr;
  }

  // The value of field f (an element of it when `element`), or a message of type `message`
  // (the root); all null means a value of unknown type.
  bool value(const FieldDescriptor* f, bool element, const Descriptor* message) {
    skip_ws();
    if (pos_ >= in_.size()) return false;
    const char c = in_[pos_];
    if (c == '{') {
      const bool map_object = f && f->is_map() && !element;
      const Descriptor* d = message;
      if (!d && f && !map_object && f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && (element || !f->is_repeated()))
        d = f->message_type();
      out_ += in_[pos_++];
      skip_ws();
      if (pos_ < in_.size() && in_[pos_] == '}') {
        out_ += in_[pos_++];
        return true;
      }
      while (true) {
        skip_ws();
        std::string key;
        if (!string_token(&key)) return false;
        skip_ws();
        if (pos_ >= in_.size() || in_[pos_] != ':') return false;
        out_ += in_[pos_++];
        const FieldDescriptor* member = map_object ? f->message_type()->map_value() : d ? find_field(d, key) : nullptr;
        if (!value(member, false, nullptr)) return false;
        skip_ws();
        if (pos_ >= in_.size()) return false;
        if (in_[pos_] == ',') {
          out_ += in_[pos_++];
          continue;
        }
        if (in_[pos_] != '}') return false;
        out_ += in_[pos_++];
        return true;
      }
    }
    if (c == '[') {
      const FieldDescriptor* element_field = f && f->is_repeated() && !element ? f : nullptr;
      out_ += in_[pos_++];
      skip_ws();
      if (pos_ < in_.size() && in_[pos_] == ']') {
        out_ += in_[pos_++];
        return true;
      }
      while (true) {
        if (!value(element_field, true, nullptr)) return false;
        skip_ws();
        if (pos_ >= in_.size()) return false;
        if (in_[pos_] == ',') {
          out_ += in_[pos_++];
          continue;
        }
        if (in_[pos_] != ']') return false;
        out_ += in_[pos_++];
        return true;
      }
    }
    if (c == '"') return string_token(nullptr);
    const std::size_t start = pos_;
    while (pos_ < in_.size() && std::string_view("+-.0123456789eEtrufalsn").find(in_[pos_]) != std::string_view::npos)
      ++pos_;
    if (pos_ == start) return false;
    const std::string_view token = in_.substr(start, pos_ - start);
    const bool is_float =
        f && (element || !f->is_repeated()) &&
        (f->cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE || f->cpp_type() == FieldDescriptor::CPPTYPE_FLOAT);
    if (token == "null" && is_float)
      out_ += "\"NaN\"";
    else
      out_.append(token);
    return true;
  }

  std::string_view in_;
  std::size_t pos_ = 0;
  std::string out_;
};

// ---------------------------------------------------------------------------------------
// Composition of the stage plans (Note [stage indices]).

// Checks that `kept` is ascending and inside [0, count) and maps it through `names`
// (the teacher indices of the current units).
std::vector<int> map_kept(const google::protobuf::RepeatedField<std::int32_t>& kept, const std::vector<int>& names,
                          const std::string& where) {
  std::vector<int> out;
  int previous = -1;
  for (const int i : kept) {
    PR_CHECK_T(ConfigError, i >= 0 && i < static_cast<int>(names.size()), where, ": index ", i,
               " out of range (the model has ", names.size(), ")");
    PR_CHECK_T(ConfigError, i > previous, where, ": indices must be ascending and distinct, got ", i, " after ",
               previous);
    previous = i;
    out.push_back(names[static_cast<std::size_t>(i)]);
  }
  return out;
}

std::string stage_label(const pb::Report& r, int k) {
  return "report: stage " + std::to_string(k) + " '" + r.stages(k).name() + "'";
}

std::vector<KeptUnitsLayer> kept_from_trace(const std::vector<TeacherIndexedUnits>& trace) {
  std::vector<KeptUnitsLayer> kept;
  if (trace.empty()) return kept;
  const TeacherIndexedUnits& teacher = trace.front();
  kept.resize(teacher.layers.size());
  for (std::size_t l = 0; l < teacher.layers.size(); ++l) {
    kept[l].head_last_stage.assign(teacher.heads[l].size(), 0);
    kept[l].mlp_last_stage.assign(teacher.mlp[l].size(), 0);
  }
  for (std::size_t k = 0; k < trace.size(); ++k) {
    const TeacherIndexedUnits& s = trace[k];
    for (std::size_t l = 0; l < s.layers.size(); ++l) {
      KeptUnitsLayer& t = kept[static_cast<std::size_t>(s.layers[l])];
      t.layer_last_stage = static_cast<int>(k);
      for (const int h : s.heads[l]) t.head_last_stage[static_cast<std::size_t>(h)] = static_cast<int>(k);
      for (const int j : s.mlp[l]) t.mlp_last_stage[static_cast<std::size_t>(j)] = static_cast<int>(k);
    }
  }
  return kept;
}

// ---------------------------------------------------------------------------------------
// Number formatting for people.

const char* const kDash = "\xE2\x80\x94";  // an em dash: the value is missing

std::string fmt_count(std::int64_t v) {
  std::string digits = std::to_string(v < 0 ? -static_cast<std::uint64_t>(v) : static_cast<std::uint64_t>(v));
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return v < 0 ? "-" + out : out;
}

std::string fmt_metric(std::optional<double> v) {
  if (!v) return kDash;
  if (std::isnan(*v)) return "NaN";
  return printf_str("%.4f", *v);
}

std::string fmt_signed_metric(std::optional<double> v) {
  if (!v || !std::isfinite(*v)) return kDash;
  return printf_str("%+.4f", *v);
}

std::string fmt_percent(std::optional<double> fraction) {
  if (!fraction || !std::isfinite(*fraction)) return kDash;
  return printf_str("%.1f%%", 100.0 * *fraction);
}

// 1.23 G, 456 M, 12.3 k
std::string fmt_si(double v, int significant = 3) {
  if (!std::isfinite(v)) return kDash;
  static constexpr std::pair<double, const char*> kUnits[] = {{1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}};
  for (const auto& [scale, unit] : kUnits) {
    if (std::fabs(v) >= scale) {
      const double x = v / scale;
      const int decimals = std::max(0, significant - 1 - static_cast<int>(std::floor(std::log10(std::fabs(x)))));
      return printf_str(("%." + std::to_string(decimals) + "f ").c_str(), x) + unit;
    }
  }
  return printf_str("%.0f", v);
}

// Axis ticks of counts: 200k, 1M, 1.5M.
std::string fmt_tick_count(double v) {
  static constexpr std::pair<double, const char*> kUnits[] = {{1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}, {1, ""}};
  for (const auto& [scale, unit] : kUnits) {
    if (std::fabs(v) >= scale || scale == 1) {
      std::string s = printf_str("%.1f", v / scale);
      if (s.size() > 2 && s.compare(s.size() - 2, 2, ".0") == 0) s.resize(s.size() - 2);
      return s + unit;
    }
  }
  return "";
}

std::string fmt_ms(std::optional<double> ms) {
  if (!ms) return kDash;
  if (!std::isfinite(*ms)) return "NaN";
  const double a = std::fabs(*ms);
  if (a >= 100) return printf_str("%.0f", *ms);
  if (a >= 10) return printf_str("%.1f", *ms);
  if (a >= 1) return printf_str("%.2f", *ms);
  return printf_str("%.3g", *ms);
}

std::string fmt_duration(std::optional<double> seconds) {
  if (!seconds || !std::isfinite(*seconds) || *seconds < 0) return kDash;
  const double s = *seconds;
  if (s < 60) return printf_str("%.1f s", s);
  const auto total = static_cast<std::int64_t>(std::llround(s));
  char buf[64];
  if (total < 3600)
    std::snprintf(buf, sizeof buf, "%lldm %02llds", static_cast<long long>(total / 60),
                  static_cast<long long>(total % 60));
  else
    std::snprintf(buf, sizeof buf, "%lldh %02lldm", static_cast<long long>(total / 3600),
                  static_cast<long long>((total % 3600) / 60));
  return buf;
}

// ---------------------------------------------------------------------------------------
// Markdown.

// Text for a table cell or heading: one line, pipes escaped, no raw HTML.
std::string md_text(std::string_view s) {
  std::string out;
  for (const char c : s) {
    switch (c) {
      case '|':
        out += "\\|";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '\n':
      case '\r':
        out += ' ';
        break;
      default:
        out += c;
    }
  }
  return out;
}

// A fenced code block whose fence is longer than any backtick run inside.
std::string md_code_block(std::string_view text, std::string_view language) {
  std::size_t longest = 0, run = 0;
  for (const char c : text) {
    run = c == '`' ? run + 1 : 0;
    longest = std::max(longest, run);
  }
  const std::string fence(std::max<std::size_t>(3, longest + 1), '`');
  std::string out = fence + std::string(language) + "\n" + std::string(text);
  if (!text.empty() && text.back() != '\n') out += '\n';
  return out + fence + "\n";
}

void md_table(std::string& out, const std::vector<std::string>& header,
              const std::vector<std::vector<std::string>>& rows, std::size_t left_aligned = 1) {
  out += '|';
  for (const auto& h : header) out += " " + h + " |";
  out += "\n|";
  for (std::size_t i = 0; i < header.size(); ++i) out += i < left_aligned ? "---|" : "---:|";
  out += '\n';
  for (const auto& row : rows) {
    out += '|';
    for (std::size_t i = 0; i < header.size(); ++i) out += " " + (i < row.size() ? row[i] : std::string(kDash)) + " |";
    out += '\n';
  }
}

std::optional<double> fraction_of_teacher_params(const pb::StageRow& row, const pb::StageRow* teacher) {
  if (row.has_non_embedding_fraction()) return row.non_embedding_fraction();
  if (teacher && row.has_non_embedding_params() && teacher->non_embedding_params() > 0)
    return static_cast<double>(row.non_embedding_params()) / static_cast<double>(teacher->non_embedding_params());
  return std::nullopt;
}

std::optional<double> one_user_ms(const pb::StageRow& row) {
  if (row.latency().has_one_user_ms()) return row.latency().one_user_ms();
  if (row.has_latency_ms()) return row.latency_ms();
  return std::nullopt;
}

std::optional<double> batch_ms_per_user(const pb::StageRow& row) {
  const pb::Latency& l = row.latency();
  if (l.has_batch_ms_per_user()) return l.batch_ms_per_user();
  if (l.has_batch_ms() && l.batch_size() > 0) return l.batch_ms() / l.batch_size();
  return std::nullopt;
}

std::optional<double> ratio(std::optional<double> a, std::optional<double> b) {
  if (!a || !b || *b == 0) return std::nullopt;
  return *a / *b;
}

std::optional<double> difference(std::optional<double> a, std::optional<double> b) {
  if (!a || !b) return std::nullopt;
  return *a - *b;
}

const std::vector<std::string> kLedgerHeader = {"stage",
                                                "non-emb. params",
                                                "% of teacher",
                                                "total params",
                                                "FLOPs / rec.",
                                                "latency 1 user (ms)",
                                                "batch latency (ms / user)",
                                                "valid NDCG@10",
                                                "NDCG@5",
                                                "NDCG@10",
                                                "NDCG@20",
                                                "HR@5",
                                                "HR@10",
                                                "HR@20",
                                                "% of teacher NDCG@10",
                                                "wall time"};

std::vector<std::string> ledger_cells(const pb::StageRow& row, const pb::StageRow* teacher) {
  const auto m = [&](const char* key) { return fmt_metric(lookup(row.metrics(), key)); };
  std::string name = row.has_name() ? md_text(row.name()) : std::string(kDash);
  std::optional<double> teacher_ndcg;
  if (teacher) teacher_ndcg = lookup(teacher->metrics(), "NDCG@10");
  return {name,
          row.has_non_embedding_params() ? fmt_count(row.non_embedding_params()) : kDash,
          fmt_percent(fraction_of_teacher_params(row, teacher)),
          row.has_total_params() ? fmt_count(row.total_params()) : kDash,
          row.has_flops_per_recommendation() ? fmt_si(row.flops_per_recommendation()) : kDash,
          fmt_ms(one_user_ms(row)),
          fmt_ms(batch_ms_per_user(row)),
          fmt_metric(lookup(row.valid_metrics(), "NDCG@10")),
          m("NDCG@5"),
          m("NDCG@10"),
          m("NDCG@20"),
          m("HR@5"),
          m("HR@10"),
          m("HR@20"),
          fmt_percent(ratio(lookup(row.metrics(), "NDCG@10"), teacher_ndcg)),
          fmt_duration(row.has_wall_seconds() ? std::optional<double>(row.wall_seconds()) : std::nullopt)};
}

// "4 / 8", or "4" when the size before is unknown.
std::string kept_of(std::int64_t kept, std::optional<std::int64_t> before) {
  return before ? fmt_count(kept) + " / " + fmt_count(*before) : fmt_count(kept);
}

// Per-layer table of a stage's plan. `before` is the previous stage's model (for the
// sizes the plan chooses from), `before_units` names its layers in teacher indices.
void md_plan(std::string& out, const pb::PrunePlan& plan, const std::vector<pb::LayerConfig>& before,
             const TeacherIndexedUnits* before_units) {
  const int L = std::max<int>(plan.layers_size(), static_cast<int>(before.size()));
  std::set<int> kept_layers;
  if (plan.keep_all_layers())
    for (int l = 0; l < L; ++l) kept_layers.insert(l);
  else
    kept_layers.insert(plan.kept_layers().begin(), plan.kept_layers().end());
  std::vector<std::vector<std::string>> rows;
  for (int l = 0; l < L; ++l) {
    const auto ul = static_cast<std::size_t>(l);
    std::vector<std::string> row = {std::to_string(l)};
    row.push_back(before_units && ul < before_units->layers.size() ? std::to_string(before_units->layers[ul]) : kDash);
    std::optional<std::int64_t> heads, kv, mlp;
    if (ul < before.size()) {
      if (before[ul].has_num_heads()) heads = before[ul].num_heads();
      if (before[ul].has_num_kv_heads()) kv = before[ul].num_kv_heads();
      if (before[ul].has_mlp_width()) mlp = before[ul].mlp_width();
    }
    if (before_units && ul < before_units->layers.size()) {  // traced sizes, when the plans compose
      heads = static_cast<std::int64_t>(before_units->heads[ul].size());
      mlp = static_cast<std::int64_t>(before_units->mlp[ul].size());
    }
    if (!kept_layers.count(l)) {
      row.insert(row.end(), {"removed", "removed", "removed"});
    } else {
      const pb::LayerPlan lp = l < plan.layers_size() ? plan.layers(l) : pb::LayerPlan();
      row.push_back(lp.keep_all_heads() ? (heads ? "all (" + fmt_count(*heads) + ")" : "all")
                                        : kept_of(lp.kept_heads_size(), heads));
      // KV heads follow the kept query heads; an unnormalised plan does not list them.
      if (lp.keep_all_heads() && lp.kept_kv_heads_size() == 0)
        row.push_back(kv ? "all (" + fmt_count(*kv) + ")" : "all");
      else if (lp.kept_kv_heads_size() == 0 && lp.kept_heads_size() > 0)
        row.push_back(kDash);
      else
        row.push_back(kept_of(lp.kept_kv_heads_size(), kv));
      row.push_back(lp.keep_all_mlp() ? (mlp ? "all (" + fmt_count(*mlp) + ")" : "all")
                                      : kept_of(lp.kept_mlp_size(), mlp));
    }
    rows.push_back(std::move(row));
  }
  if (rows.empty()) {
    out += "The plan lists no layers.\n\n";
  } else {
    md_table(out, {"layer", "teacher layer", "query heads", "KV heads", "MLP channels"}, rows);
    out += '\n';
  }
}

void md_model_summary(std::string& out, const pb::ModelConfig& config) {
  const std::vector<pb::LayerConfig> layers = expand_layers(config);
  out += "Model: " + std::to_string(layers.size()) + " layers";
  if (config.has_hidden()) out += ", hidden " + fmt_count(config.hidden());
  bool uniform = true;
  for (const auto& l : layers)
    if (l.num_heads() != layers[0].num_heads() || l.num_kv_heads() != layers[0].num_kv_heads() ||
        l.mlp_width() != layers[0].mlp_width())
      uniform = false;
  const auto describe = [](const pb::LayerConfig& l) {
    return fmt_count(l.num_heads()) + " heads / " + fmt_count(l.num_kv_heads()) + " KV, MLP " +
           fmt_count(l.mlp_width());
  };
  if (layers.empty()) {
    out += ".\n\n";
  } else if (uniform) {
    out += ", each " + describe(layers[0]) + ".\n\n";
  } else {
    out += "; per layer: ";
    for (std::size_t l = 0; l < layers.size(); ++l)
      out += (l ? "; " : "") + std::to_string(l) + ": " + describe(layers[l]);
    out += ".\n\n";
  }
}

void md_stage_details(std::string& out, const pb::Report& r, int k, const pb::StageRow& row,
                      const pb::StageRow* teacher, const std::vector<TeacherIndexedUnits>* trace, bool control) {
  std::string heading =
      control ? "### Control: " : (k == 0 ? "### Teacher: " : "### Stage " + std::to_string(k) + ": ");
  heading += row.has_name() ? md_text(row.name()) : std::string(kDash);
  if (row.has_kind()) heading += " (" + md_text(row.kind()) + ")";
  out += heading + "\n\n";
  if (row.has_note()) out += md_text(row.note()) + "\n\n";
  if (row.has_plan()) {
    out +=
        control
            ? "Plan (indices into the model it was applied to):\n\n"
            : "Plan (indices into the previous stage's model; teacher layer = what that layer was in the teacher):\n\n";
    std::vector<pb::LayerConfig> before;
    const TeacherIndexedUnits* before_units = nullptr;
    if (!control && k >= 1) {
      before = expand_layers(r.stages(k - 1).config());
      if (trace && static_cast<std::size_t>(k - 1) < trace->size())
        before_units = &(*trace)[static_cast<std::size_t>(k - 1)];
    }
    md_plan(out, row.plan(), before, before_units);
    const pb::PrunePlan& p = row.plan();
    if (!p.keep_all_hidden()) {
      std::optional<std::int64_t> hidden_before;
      if (!control && k >= 1 && r.stages(k - 1).config().has_hidden())
        hidden_before = r.stages(k - 1).config().hidden();
      out += "Hidden channels: " + kept_of(p.kept_hidden_size(), hidden_before) + ".\n\n";
    }
  } else if (k > 0 || control) {
    out += "Plan: " + std::string(kDash) + "\n\n";
  }
  if (row.has_config()) md_model_summary(out, row.config());
  if (row.has_stability() && !row.stability().spearman().empty()) {
    out += "Score stability (split-half Spearman):";
    const std::vector<std::string> keys = sorted_keys(row.stability().spearman());
    for (std::size_t i = 0; i < keys.size(); ++i) {
      const double rho = row.stability().spearman().at(keys[i]);  // NaN: undefined (random scores, nothing removed)
      out += (i ? ", " : " ") + md_text(keys[i]) + " " + (std::isnan(rho) ? std::string("n/a") : printf_str("%.3f", rho));
    }
    out += ".\n\n";
  }
  // Test metrics before and after recovery, with the teacher's for reference.
  std::vector<std::string> keys = sorted_keys(row.metrics());
  for (const auto& key : sorted_keys(row.metrics_before_recovery()))
    if (!row.metrics().count(key)) keys.push_back(key);
  std::sort(keys.begin(), keys.end(), [](const std::string& a, const std::string& b) { return natural_less(a, b); });
  if (!keys.empty()) {
    const bool has_before = !row.metrics_before_recovery().empty();
    std::vector<std::vector<std::string>> rows;
    for (const auto& key : keys) {
      const auto before = lookup(row.metrics_before_recovery(), key), after = lookup(row.metrics(), key);
      std::vector<std::string> cells = {md_text(key)};
      if (has_before) cells.push_back(fmt_metric(before));
      cells.push_back(fmt_metric(after));
      if (has_before) cells.push_back(fmt_signed_metric(difference(after, before)));
      if (teacher && teacher != &row) cells.push_back(fmt_metric(lookup(teacher->metrics(), key)));
      rows.push_back(std::move(cells));
    }
    std::vector<std::string> header = {"test metric"};
    if (has_before) header.push_back("after surgery");
    header.push_back(has_before ? "after recovery" : "value");
    if (has_before) header.push_back("recovery gain");
    if (teacher && teacher != &row) header.push_back("teacher");
    md_table(out, header, rows);
    out += '\n';
  } else {
    out += "Test metrics: " + std::string(kDash) + "\n\n";
  }
  std::vector<std::string> facts;
  if (row.has_recovery_epochs()) {
    std::string s =
        (k == 0 && !control ? "training epochs: " : "recovery epochs: ") + std::to_string(row.recovery_epochs());
    if (row.has_recovery_best_epoch()) s += " (best " + std::to_string(row.recovery_best_epoch()) + ")";
    facts.push_back(s);
  }
  if (row.has_scoring_seconds()) facts.push_back("scoring " + fmt_duration(row.scoring_seconds()));
  if (row.has_recovery_seconds()) facts.push_back("recovery " + fmt_duration(row.recovery_seconds()));
  if (row.has_wall_seconds()) facts.push_back("wall time " + fmt_duration(row.wall_seconds()));
  if (!facts.empty()) {
    std::string line;
    for (std::size_t i = 0; i < facts.size(); ++i) line += (i ? "; " : "") + facts[i];
    line[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(line[0])));
    out += line + ".\n\n";
  }
  if (row.has_checkpoint()) out += "Checkpoint: `" + row.checkpoint() + "`\n\n";
}

// ---------------------------------------------------------------------------------------
// SVG.

// Okabe-Ito colours (distinguishable with colour-vision deficiencies), then a few more.
const char* const kStageColours[] = {"#0072B2", "#E69F00", "#009E73", "#CC79A7", "#8C564B", "#56B4E9", "#BCBD22"};
const char* const kTeacherColour = "#4D4D4D";
const char* const kControlColours[] = {"#D55E00", "#7B3294", "#E7298A", "#8C6D1F"};
const char* const kRemovedColour = "#D9D9D9";
const char* const kAxisColour = "#333333";
const char* const kGridColour = "#E5E5E5";

std::string stage_colour(int k) {
  if (k <= 0) return kTeacherColour;
  return kStageColours[static_cast<std::size_t>(k - 1) % std::size(kStageColours)];
}

std::string xml_escape(std::string_view s) {
  std::string out;
  for (const char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        // Control characters are not allowed in XML 1.0.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t')
          out += ' ';
        else
          out += c;
    }
  }
  return out;
}

// Coordinates with one decimal; never "nan" (callers drop non-finite points first).
std::string num(double v) {
  if (!std::isfinite(v)) v = 0;
  std::string s = printf_str("%.1f", v);
  if (s.size() > 2 && s.compare(s.size() - 2, 2, ".0") == 0) s.resize(s.size() - 2);
  if (s == "-0") s = "0";
  return s;
}

std::size_t utf8_length(std::string_view s) {
  std::size_t n = 0;
  for (const char c : s)
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  return n;
}

// Shortens to at most `max_chars` characters, ending in an ellipsis.
std::string truncate(const std::string& s, std::size_t max_chars) {
  if (utf8_length(s) <= max_chars) return s;
  std::string out;
  std::size_t chars = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80 && ++chars > max_chars - 1) break;
    out += s[i];
  }
  return out + "\xE2\x80\xA6";
}

double text_width(std::string_view s, double font_size) {
  return 0.58 * font_size * static_cast<double>(utf8_length(s));
}

struct Box {
  double x0, y0, x1, y1;
  bool overlaps(const Box& o) const { return x0 < o.x1 && o.x0 < x1 && y0 < o.y1 && o.y0 < y1; }
  double overlap_area(const Box& o) const {
    const double w = std::min(x1, o.x1) - std::max(x0, o.x0), h = std::min(y1, o.y1) - std::max(y0, o.y0);
    return w > 0 && h > 0 ? w * h : 0;
  }
};

class Svg {
 public:
  Svg(double width, double height, const std::string& title) : width_(width), height_(height) {
    out_ = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(width) + "\" height=\"" + num(height) +
           "\" viewBox=\"0 0 " + num(width) + " " + num(height) +
           "\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"11\">\n";
    out_ += "<title>" + xml_escape(title) + "</title>\n";
    out_ += "<rect x=\"0\" y=\"0\" width=\"" + num(width) + "\" height=\"" + num(height) + "\" fill=\"#FFFFFF\"/>\n";
    text(width / 2, 24, title, 15, "middle", kAxisColour, true);
  }

  double width() const { return width_; }
  double height() const { return height_; }

  void raw(const std::string& s) { out_ += s; }

  void line(double x1, double y1, double x2, double y2, const std::string& stroke, double stroke_width = 1,
            const std::string& dash = "") {
    out_ += "<line x1=\"" + num(x1) + "\" y1=\"" + num(y1) + "\" x2=\"" + num(x2) + "\" y2=\"" + num(y2) +
            "\" stroke=\"" + stroke + "\" stroke-width=\"" + num(stroke_width) + "\"" +
            (dash.empty() ? "" : " stroke-dasharray=\"" + dash + "\"") + "/>\n";
  }

  void rect(double x, double y, double w, double h, const std::string& fill, const std::string& extra = "") {
    out_ += "<rect x=\"" + num(x) + "\" y=\"" + num(y) + "\" width=\"" + num(std::max(0.0, w)) + "\" height=\"" +
            num(std::max(0.0, h)) + "\" fill=\"" + fill + "\"" + (extra.empty() ? "" : " " + extra) + "/>\n";
  }

  void polyline(const std::vector<std::pair<double, double>>& points, const std::string& stroke, double stroke_width,
                const std::string& dash = "") {
    if (points.size() < 2) return;
    out_ += "<polyline fill=\"none\" stroke=\"" + stroke + "\" stroke-width=\"" + num(stroke_width) +
            "\" stroke-linejoin=\"round\"" + (dash.empty() ? "" : " stroke-dasharray=\"" + dash + "\"") + " points=\"";
    for (std::size_t i = 0; i < points.size(); ++i) {
      if (i) out_ += ' ';
      out_ += num(points[i].first) + "," + num(points[i].second);
    }
    out_ += "\"/>\n";
  }

  // Marker shapes: 0 circle, 1 square, 2 triangle, 3 diamond, 4 cross.
  void marker(int shape, double x, double y, double r, const std::string& fill, const std::string& stroke = "#FFFFFF") {
    const std::string style = " fill=\"" + fill + "\" stroke=\"" + stroke + "\" stroke-width=\"1\"";
    switch (shape % 5) {
      case 0:
        out_ += "<circle cx=\"" + num(x) + "\" cy=\"" + num(y) + "\" r=\"" + num(r) + "\"" + style + "/>\n";
        break;
      case 1:
        out_ += "<rect x=\"" + num(x - r) + "\" y=\"" + num(y - r) + "\" width=\"" + num(2 * r) + "\" height=\"" +
                num(2 * r) + "\"" + style + "/>\n";
        break;
      case 2:
        polygon({{x, y - 1.25 * r}, {x + 1.15 * r, y + 0.85 * r}, {x - 1.15 * r, y + 0.85 * r}}, style);
        break;
      case 3:
        polygon({{x, y - 1.3 * r}, {x + 1.3 * r, y}, {x, y + 1.3 * r}, {x - 1.3 * r, y}}, style);
        break;
      default: {
        const double a = 0.45 * r, b = 1.2 * r;
        polygon({{x - a, y - b},
                 {x + a, y - b},
                 {x + a, y - a},
                 {x + b, y - a},
                 {x + b, y + a},
                 {x + a, y + a},
                 {x + a, y + b},
                 {x - a, y + b},
                 {x - a, y + a},
                 {x - b, y + a},
                 {x - b, y - a},
                 {x - a, y - a}},
                style);
      }
    }
  }

  void text(double x, double y, const std::string& s, double size, const std::string& anchor = "start",
            const std::string& fill = kAxisColour, bool bold = false, double rotate = 0) {
    out_ += "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\" font-size=\"" + num(size) + "\" text-anchor=\"" + anchor +
            "\" fill=\"" + fill + "\"" + (bold ? " font-weight=\"bold\"" : "") +
            (rotate != 0 ? " transform=\"rotate(" + num(rotate) + " " + num(x) + " " + num(y) + ")\"" : "") + ">" +
            xml_escape(s) + "</text>\n";
  }

  // A message in the middle of a box, wrapped to lines of at most `chars` characters.
  void centred_message(double cx, double cy, const std::string& message, std::size_t chars = 90) {
    std::vector<std::string> lines;
    std::string current;
    std::size_t start = 0;
    while (start <= message.size()) {
      std::size_t end = message.find(' ', start);
      if (end == std::string::npos) end = message.size();
      const std::string word = message.substr(start, end - start);
      if (!current.empty() && utf8_length(current) + 1 + utf8_length(word) > chars) {
        lines.push_back(current);
        current.clear();
      }
      current += (current.empty() ? "" : " ") + word;
      start = end + 1;
    }
    if (!current.empty()) lines.push_back(current);
    const double y0 = cy - 8.0 * static_cast<double>(lines.size() - 1);
    for (std::size_t i = 0; i < lines.size(); ++i)
      text(cx, y0 + 16.0 * static_cast<double>(i), lines[i], 12, "middle", "#777777");
  }

  std::string finish() {
    out_ += "</svg>\n";
    return std::move(out_);
  }

 private:
  void polygon(const std::vector<std::pair<double, double>>& points, const std::string& style) {
    out_ += "<polygon points=\"";
    for (std::size_t i = 0; i < points.size(); ++i) {
      if (i) out_ += ' ';
      out_ += num(points[i].first) + "," + num(points[i].second);
    }
    out_ += "\"" + style + "/>\n";
  }

  double width_, height_;
  std::string out_;
};

// Linear axis with "nice" ticks covering [lo, hi].
struct LinearAxis {
  double lo = 0, hi = 1, step = 0.1;
  std::vector<double> ticks;

  static LinearAxis fit(double lo, double hi, int target_ticks, bool integers = false) {
    LinearAxis a;
    if (!(lo <= hi)) lo = hi = 0;
    if (hi - lo < 1e-12) {
      const double widen = std::max(std::fabs(lo) * 0.1, integers ? 1.0 : 1e-3);
      lo -= widen;
      hi += widen;
    }
    const double raw = (hi - lo) / std::max(1, target_ticks);
    const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
    const double norm = raw / magnitude;
    a.step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * magnitude;
    if (integers) a.step = std::max(1.0, std::round(a.step));
    a.lo = std::floor(lo / a.step + 1e-9) * a.step;
    a.hi = std::ceil(hi / a.step - 1e-9) * a.step;
    for (double t = a.lo; t <= a.hi + a.step * 1e-6; t += a.step)
      a.ticks.push_back(std::fabs(t) < a.step * 1e-9 ? 0 : t);
    return a;
  }

  std::string label(double v) const {
    const int decimals = std::max(0, -static_cast<int>(std::floor(std::log10(step) + 1e-9)));
    return printf_str(("%." + std::to_string(decimals) + "f").c_str(), v);
  }
};

// Log10 axis for counts: ticks at 1-2-5 multiples (or every digit on a narrow range).
struct LogAxis {
  double lo = 1, hi = 10;  // domain
  std::vector<double> ticks, minor;

  static LogAxis fit(double lo, double hi) {
    LogAxis a;
    if (!(lo > 0)) lo = 1;
    if (!(hi >= lo)) hi = lo;
    a.lo = lo / 1.35;
    a.hi = hi * 1.35;
    const int d0 = static_cast<int>(std::floor(std::log10(a.lo))), d1 = static_cast<int>(std::ceil(std::log10(a.hi)));
    const auto collect = [&](std::initializer_list<int> mantissas) {
      std::vector<double> t;
      for (int d = d0; d <= d1; ++d)
        for (const int m : mantissas) {
          const double v = m * std::pow(10.0, d);
          if (v >= a.lo && v <= a.hi) t.push_back(v);
        }
      return t;
    };
    const int decades = d1 - d0;
    a.ticks = decades > 3 ? collect({1}) : decades > 1 ? collect({1, 2, 5}) : collect({1, 2, 3, 4, 5, 6, 7, 8, 9});
    if (a.ticks.size() < 3) a.ticks = collect({1, 2, 3, 4, 5, 6, 7, 8, 9});
    if (a.ticks.size() > 9 && decades <= 1) a.ticks = collect({1, 2, 5});
    a.minor = collect({1, 2, 3, 4, 5, 6, 7, 8, 9});
    return a;
  }
};

struct Frame {  // a plot area in pixels
  double x0, y0, x1, y1;
};

// Draws a linear y axis with grid lines and tick labels; returns the pixel mapping.
void draw_y_axis(Svg& svg, const Frame& f, const LinearAxis& axis, const std::string& title) {
  for (const double t : axis.ticks) {
    const double y = f.y1 - (t - axis.lo) / (axis.hi - axis.lo) * (f.y1 - f.y0);
    svg.line(f.x0, y, f.x1, y, kGridColour);
    svg.text(f.x0 - 6, y + 4, axis.label(t), 10, "end");
  }
  svg.line(f.x0, f.y0, f.x0, f.y1, kAxisColour);
  svg.text(f.x0 - 44, (f.y0 + f.y1) / 2, title, 11, "middle", kAxisColour, false, -90);
}

// Places labels next to points, avoiding each other, the markers and the frame edges.
class LabelPlacer {
 public:
  explicit LabelPlacer(Frame frame) : frame_(frame) {}
  void add_obstacle(const Box& b) { taken_.push_back(b); }

  // Returns (x, y, anchor) for a label of the given text beside point (px, py).
  std::tuple<double, double, std::string> place(double px, double py, const std::string& label, double size) {
    const double w = text_width(label, size), h = size;
    struct Candidate {
      double x, y;  // text origin (baseline)
      const char* anchor;
    };
    const Candidate candidates[] = {
        {px + 8, py + h / 3, "start"}, {px - 8, py + h / 3, "end"}, {px, py - 9, "middle"},
        {px, py + 9 + h, "middle"},    {px + 6, py - 8, "start"},   {px - 6, py - 8, "end"},
        {px + 6, py + 8 + h, "start"}, {px - 6, py + 8 + h, "end"}, {px, py - 22, "middle"},
        {px, py + 22 + h, "middle"},
    };
    double best_cost = 1e300;
    Candidate best = candidates[0];
    Box best_box{};
    for (const Candidate& c : candidates) {
      const double x0 = std::string_view(c.anchor) == "start" ? c.x
                        : std::string_view(c.anchor) == "end" ? c.x - w
                                                              : c.x - w / 2;
      const Box box{x0, c.y - h, x0 + w, c.y + 2};
      double cost = 0;
      for (const Box& t : taken_) cost += t.overlap_area(box);
      const double outside = std::max(0.0, frame_.x0 - box.x0) + std::max(0.0, box.x1 - frame_.x1) +
                             std::max(0.0, frame_.y0 - box.y0) + std::max(0.0, box.y1 - frame_.y1);
      cost += outside * h * 4;
      if (cost < best_cost - 1e-9) {
        best_cost = cost;
        best = c;
        best_box = box;
      }
    }
    taken_.push_back(best_box);
    return {best.x, best.y, best.anchor};
  }

 private:
  Frame frame_;
  std::vector<Box> taken_;
};

// Legend entries laid out left to right, wrapping into rows.
struct LegendItem {
  enum class Kind { kLine, kMarker, kSwatch, kLineMarker, kDashedLine } kind;
  std::string colour;
  int shape = 0;
  std::string label;
};

// Returns the y below the legend.
double draw_legend(Svg& svg, double x0, double y, double max_x, const std::vector<LegendItem>& items) {
  double x = x0;
  const double row_height = 18;
  for (const LegendItem& item : items) {
    const std::string label = truncate(item.label, 48);
    const double w = 26 + text_width(label, 11) + 18;
    if (x > x0 && x + w > max_x) {
      x = x0;
      y += row_height;
    }
    switch (item.kind) {
      case LegendItem::Kind::kLine:
        svg.line(x, y - 4, x + 20, y - 4, item.colour, 2);
        break;
      case LegendItem::Kind::kDashedLine:
        svg.line(x, y - 4, x + 20, y - 4, item.colour, 1.5, "5,3");
        break;
      case LegendItem::Kind::kMarker:
        svg.marker(item.shape, x + 10, y - 4, 5, item.colour);
        break;
      case LegendItem::Kind::kSwatch:
        svg.rect(x + 3, y - 11, 14, 12, item.colour, "stroke=\"#999999\" stroke-width=\"0.5\"");
        break;
      case LegendItem::Kind::kLineMarker:
        svg.line(x, y - 4, x + 20, y - 4, item.colour, 2);
        svg.marker(item.shape, x + 10, y - 4, 4, item.colour);
        break;
    }
    svg.text(x + 26, y, label, 11);
    x += w;
  }
  return y + row_height;
}

std::string subtitle(const pb::Report& r) {
  std::string s;
  if (r.has_data()) s += "data: " + r.data();
  if (r.has_teacher()) s += (s.empty() ? "" : "  \xC2\xB7  ") + std::string("teacher: ") + r.teacher();
  return truncate(s, 110);
}

std::string report_title(const pb::Report& r, const std::string& what) {
  std::string t = what;
  if (r.has_teacher() && !r.teacher().empty()) t += ": " + r.teacher();
  if (r.has_data() && !r.data().empty()) t += " on " + r.data();
  return truncate(t, 90);
}

// The quality chart's points of one row, when both coordinates are usable.
std::optional<std::pair<double, double>> quality_point(const pb::StageRow& row, const std::string& metric) {
  const auto v = lookup(row.metrics(), metric);
  if (!row.has_non_embedding_params() || row.non_embedding_params() <= 0 || !v || !std::isfinite(*v))
    return std::nullopt;
  return std::pair<double, double>(static_cast<double>(row.non_embedding_params()), *v);
}

void quality_panel(Svg& svg, const pb::Report& r, const Frame& f, const std::string& metric, const LogAxis& x_axis) {
  svg.text((f.x0 + f.x1) / 2, f.y0 - 8, "test " + metric, 12, "middle", kAxisColour, true);
  std::vector<double> values;
  for (const auto* rows : {&r.stages(), &r.controls()})
    for (const auto& row : *rows)
      if (auto p = quality_point(row, metric)) values.push_back(p->second);
  if (values.empty()) {
    svg.rect(f.x0, f.y0, f.x1 - f.x0, f.y1 - f.y0, "none", "stroke=\"" + std::string(kGridColour) + "\"");
    svg.centred_message((f.x0 + f.x1) / 2, (f.y0 + f.y1) / 2, "no " + metric + " recorded yet", 40);
    return;
  }
  const auto [lo_it, hi_it] = std::minmax_element(values.begin(), values.end());
  const double pad = std::max(0.06 * (*hi_it - *lo_it), 0.002);
  const LinearAxis y_axis = LinearAxis::fit(std::max(0.0, *lo_it - pad), *hi_it + pad, 5);
  const auto px = [&](double v) {
    return f.x0 +
           (std::log10(v) - std::log10(x_axis.lo)) / (std::log10(x_axis.hi) - std::log10(x_axis.lo)) * (f.x1 - f.x0);
  };
  const auto py = [&](double v) { return f.y1 - (v - y_axis.lo) / (y_axis.hi - y_axis.lo) * (f.y1 - f.y0); };

  for (const double t : x_axis.minor) svg.line(px(t), f.y0, px(t), f.y1, "#F2F2F2");
  // Tick labels that would touch are dropped, powers of ten first to stay, then 5s, 2s.
  std::vector<double> by_priority = x_axis.ticks;
  const auto priority = [](double t) {
    const double mantissa = std::round(t / std::pow(10.0, std::floor(std::log10(t) + 1e-9)));
    return mantissa == 1 ? 0 : mantissa == 5 ? 1 : mantissa == 2 ? 2 : 3;
  };
  std::stable_sort(by_priority.begin(), by_priority.end(),
                   [&](double a, double b) { return priority(a) < priority(b); });
  std::vector<Box> tick_labels;
  for (const double t : by_priority) {
    svg.line(px(t), f.y0, px(t), f.y1, kGridColour);
    svg.line(px(t), f.y1, px(t), f.y1 + 4, kAxisColour);
    const std::string label = fmt_tick_count(t);
    const double w = text_width(label, 10);
    const Box box{px(t) - w / 2 - 3, f.y1, px(t) + w / 2 + 3, f.y1 + 18};
    if (std::any_of(tick_labels.begin(), tick_labels.end(), [&](const Box& b) { return b.overlaps(box); })) continue;
    tick_labels.push_back(box);
    svg.text(px(t), f.y1 + 16, label, 10, "middle");
  }
  draw_y_axis(svg, f, y_axis, "test " + metric);
  svg.line(f.x0, f.y1, f.x1, f.y1, kAxisColour);
  svg.text((f.x0 + f.x1) / 2, f.y1 + 32, "non-embedding parameters (log scale)", 11, "middle");

  // The teacher's level, for reference.
  if (r.stages_size() > 0)
    if (const auto t = quality_point(r.stages(0), metric))
      svg.line(f.x0, py(t->second), f.x1, py(t->second), "#AAAAAA", 1, "4,3");

  LabelPlacer labels(f);
  std::vector<std::pair<double, double>> path;
  std::vector<std::pair<int, std::pair<double, double>>> stage_points;
  for (int k = 0; k < r.stages_size(); ++k)
    if (const auto p = quality_point(r.stages(k), metric)) {
      path.emplace_back(px(p->first), py(p->second));
      stage_points.push_back({k, path.back()});
    }
  std::vector<std::pair<int, std::pair<double, double>>> control_points;
  for (int c = 0; c < r.controls_size(); ++c)
    if (const auto p = quality_point(r.controls(c), metric))
      control_points.push_back({c, {px(p->first), py(p->second)}});
  for (const auto& [k, p] : stage_points) labels.add_obstacle({p.first - 6, p.second - 6, p.first + 6, p.second + 6});
  for (const auto& [c, p] : control_points) labels.add_obstacle({p.first - 7, p.second - 7, p.first + 7, p.second + 7});

  svg.polyline(path, "#9A9A9A", 1.5);
  for (const auto& [c, p] : control_points)
    svg.marker(1 + c, p.first, p.second, 5.5, kControlColours[static_cast<std::size_t>(c) % std::size(kControlColours)],
               "#333333");
  for (const auto& [k, p] : stage_points) svg.marker(0, p.first, p.second, 5, stage_colour(k));
  for (const auto& [k, p] : stage_points) {
    const std::string label =
        truncate(r.stages(k).has_name() ? r.stages(k).name() : (k == 0 ? "teacher" : "stage " + std::to_string(k)), 22);
    const auto [lx, ly, anchor] = labels.place(p.first, p.second, label, 10);
    svg.text(lx, ly, label, 10, anchor, stage_colour(k));
  }
}

// Names of stage k, for legends.
std::string stage_name(const pb::Report& r, int k) {
  if (k < r.stages_size() && r.stages(k).has_name() && !r.stages(k).name().empty()) return r.stages(k).name();
  return k == 0 ? "teacher" : "stage " + std::to_string(k);
}

// Curves panel: one polyline per pruning stage.
void curves_panel(Svg& svg, const pb::Report& r, const Frame& f, bool loss, const std::string& title,
                  const std::string& x_title) {
  svg.text((f.x0 + f.x1) / 2, f.y0 - 8, title, 12, "middle", kAxisColour, true);
  std::vector<double> values;
  std::size_t longest = 0;
  const auto curve = [&](const pb::StageRow& row) -> const google::protobuf::RepeatedField<double>& {
    return loss ? row.loss_curve() : row.valid_curve();
  };
  for (int k = 1; k < r.stages_size(); ++k) {
    longest = std::max<std::size_t>(longest, static_cast<std::size_t>(curve(r.stages(k)).size()));
    for (const double v : curve(r.stages(k)))
      if (std::isfinite(v)) values.push_back(v);
  }
  std::optional<double> teacher_level;
  if (!loss && r.stages_size() > 0) {
    teacher_level = lookup(r.stages(0).valid_metrics(), "NDCG@10");
    if (teacher_level && !std::isfinite(*teacher_level)) teacher_level.reset();
  }
  if (values.empty()) {
    svg.rect(f.x0, f.y0, f.x1 - f.x0, f.y1 - f.y0, "none", "stroke=\"" + std::string(kGridColour) + "\"");
    svg.centred_message((f.x0 + f.x1) / 2, (f.y0 + f.y1) / 2, "no curves recorded yet", 40);
    return;
  }
  if (teacher_level) values.push_back(*teacher_level);
  const auto [lo_it, hi_it] = std::minmax_element(values.begin(), values.end());
  const double pad = std::max(0.05 * (*hi_it - *lo_it), 1e-4);
  const LinearAxis y_axis = LinearAxis::fit(*lo_it - pad, *hi_it + pad, 5);
  const double n = static_cast<double>(longest);
  const LinearAxis x_axis = LinearAxis::fit(1, std::max(2.0, n), 6, /*integers=*/true);
  const double x_lo = longest <= 1 ? 0.5 : 1, x_hi = longest <= 1 ? 1.5 : n;
  const auto px = [&](double v) { return f.x0 + 8 + (v - x_lo) / (x_hi - x_lo) * (f.x1 - f.x0 - 16); };
  const auto py = [&](double v) { return f.y1 - (v - y_axis.lo) / (y_axis.hi - y_axis.lo) * (f.y1 - f.y0); };
  for (const double t : x_axis.ticks) {
    if (t < x_lo - 1e-9 || t > x_hi + 1e-9) continue;
    svg.line(px(t), f.y1, px(t), f.y1 + 4, kAxisColour);
    svg.text(px(t), f.y1 + 16, printf_str("%.0f", t), 10, "middle");
  }
  draw_y_axis(svg, f, y_axis, loss ? "loss" : "valid NDCG@10");
  svg.line(f.x0, f.y1, f.x1, f.y1, kAxisColour);
  svg.text((f.x0 + f.x1) / 2, f.y1 + 32, x_title, 11, "middle");
  if (teacher_level) {
    svg.line(f.x0, py(*teacher_level), f.x1, py(*teacher_level), kTeacherColour, 1, "4,3");
    svg.text(f.x1 - 4, py(*teacher_level) - 4, "teacher", 10, "end", kTeacherColour);
  }
  for (int k = 1; k < r.stages_size(); ++k) {
    const auto& c = curve(r.stages(k));
    // A non-finite value breaks the line; each finite run is drawn on its own.
    std::vector<std::pair<double, double>> run;
    const auto flush = [&] {
      svg.polyline(run, stage_colour(k), 2);
      run.clear();
    };
    for (int i = 0; i < c.size(); ++i) {
      if (!std::isfinite(c.Get(i))) {
        flush();
        continue;
      }
      run.emplace_back(px(i + 1), py(c.Get(i)));
      if (c.size() <= 40) svg.marker(0, run.back().first, run.back().second, 2.8, stage_colour(k));
    }
    flush();
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------
// JSON.

std::string report_json(const pb::Report& r) { return JsonPrinter().print(r); }

pb::Report parse_report_json(const std::string& text, const std::string& source) {
  const std::optional<std::string> rewritten = NullAsNaN(text).run(pb::Report::descriptor());
  pb::Report r;
  const auto status = google::protobuf::util::JsonStringToMessage(rewritten ? *rewritten : text, &r);
  if (!status.ok()) throw IoError(source + ": not a report: " + std::string(status.message()));
  return r;
}

// ---------------------------------------------------------------------------------------
// Composition.

std::vector<TeacherIndexedUnits> trace_units_to_teacher(const pb::Report& r) {
  PR_CHECK_T(ConfigError, r.stages_size() > 0, "report: no stages, so no teacher to trace units to");
  PR_CHECK_T(ConfigError, r.stages(0).has_config(), "report: the teacher row '", r.stages(0).name(),
             "' has no model config, so units cannot be traced to it");
  std::vector<TeacherIndexedUnits> trace;
  TeacherIndexedUnits teacher;
  const std::vector<pb::LayerConfig> teacher_layers = expand_layers(r.stages(0).config());
  for (std::size_t l = 0; l < teacher_layers.size(); ++l) {
    teacher.layers.push_back(static_cast<int>(l));
    teacher.heads.emplace_back(static_cast<std::size_t>(std::max(0, teacher_layers[l].num_heads())));
    std::iota(teacher.heads.back().begin(), teacher.heads.back().end(), 0);
    teacher.mlp.emplace_back(static_cast<std::size_t>(std::max(0, teacher_layers[l].mlp_width())));
    std::iota(teacher.mlp.back().begin(), teacher.mlp.back().end(), 0);
  }
  trace.push_back(std::move(teacher));

  for (int k = 1; k < r.stages_size(); ++k) {
    const pb::StageRow& row = r.stages(k);
    if (!row.has_plan()) break;  // a stage still running: trace what is known
    const pb::PrunePlan& plan = row.plan();
    const TeacherIndexedUnits& prev = trace.back();
    const int L = static_cast<int>(prev.layers.size());
    const std::string where = stage_label(r, k);
    PR_CHECK_T(ConfigError, plan.layers_size() == 0 || plan.layers_size() == L, where, ": the plan has ",
               plan.layers_size(), " layer entries but the previous stage's model has ", L, " layers");
    std::vector<int> layer_positions(static_cast<std::size_t>(L));
    std::iota(layer_positions.begin(), layer_positions.end(), 0);
    const std::vector<int> kept_layers = plan.keep_all_layers()
                                             ? layer_positions
                                             : map_kept(plan.kept_layers(), layer_positions, where + ": kept_layers");

    // Every layer entry is checked, also those of removed layers.
    std::vector<std::vector<int>> heads(static_cast<std::size_t>(L)), mlp(static_cast<std::size_t>(L));
    for (int l = 0; l < L; ++l) {
      const auto ul = static_cast<std::size_t>(l);
      const pb::LayerPlan lp = plan.layers_size() > 0 ? plan.layers(l) : pb::LayerPlan();
      const std::string at = where + ": layer " + std::to_string(l);
      heads[ul] = lp.keep_all_heads() ? prev.heads[ul] : map_kept(lp.kept_heads(), prev.heads[ul], at + " query heads");
      mlp[ul] = lp.keep_all_mlp() ? prev.mlp[ul] : map_kept(lp.kept_mlp(), prev.mlp[ul], at + " MLP channels");
    }
    TeacherIndexedUnits next;
    for (const int l : kept_layers) {
      const auto ul = static_cast<std::size_t>(l);
      next.layers.push_back(prev.layers[ul]);
      next.heads.push_back(std::move(heads[ul]));
      next.mlp.push_back(std::move(mlp[ul]));
    }
    // The stage's own config must describe what its plan left.
    if (row.has_config()) {
      const std::vector<pb::LayerConfig> layers = expand_layers(row.config());
      PR_CHECK_T(ConfigError, layers.size() == next.layers.size(), where, ": the plan leaves ", next.layers.size(),
                 " layers but the stage's config has ", layers.size());
      for (std::size_t l = 0; l < layers.size(); ++l) {
        PR_CHECK_T(ConfigError,
                   !layers[l].has_num_heads() || layers[l].num_heads() == static_cast<int>(next.heads[l].size()), where,
                   ": the plan leaves layer ", l, " with ", next.heads[l].size(),
                   " query heads but the stage's config has ", layers[l].num_heads());
        PR_CHECK_T(ConfigError,
                   !layers[l].has_mlp_width() || layers[l].mlp_width() == static_cast<int>(next.mlp[l].size()), where,
                   ": the plan leaves layer ", l, " with ", next.mlp[l].size(),
                   " MLP channels but the stage's config has ", layers[l].mlp_width());
      }
    }
    trace.push_back(std::move(next));
  }
  return trace;
}

std::vector<KeptUnitsLayer> compose_kept_units(const pb::Report& r) {
  return kept_from_trace(trace_units_to_teacher(r));
}

// ---------------------------------------------------------------------------------------
// Markdown.

std::string ledger_markdown(const pb::Report& r) {
  std::string out = "# " + md_text(report_title(r, "Prune report")) + "\n\n";
  const auto fact = [&](const std::string& name, const std::string& value) {
    out += "- **" + name + ":** " + value + "\n";
  };
  fact("Data", r.has_data() ? md_text(r.data()) : kDash);
  fact("Teacher", r.has_teacher() ? md_text(r.teacher()) : kDash);
  fact("Protocol", r.has_protocol() ? md_text(r.protocol()) : kDash);
  fact("Seed", r.has_seed() ? std::to_string(r.seed()) : kDash);
  fact("Threads", r.has_threads() ? std::to_string(r.threads()) : kDash);
  fact("Calibration", r.has_calibration_sequences() ? fmt_count(r.calibration_sequences()) + " sequences" : kDash);
  fact("Total time", fmt_duration(r.has_total_seconds() ? std::optional<double>(r.total_seconds()) : std::nullopt));
  out += '\n';

  const pb::StageRow* teacher = r.stages_size() > 0 ? &r.stages(0) : nullptr;
  const pb::StageRow* final_row = r.stages_size() > 1 ? &r.stages(r.stages_size() - 1) : nullptr;

  out += "## Ledger\n\n";
  if (r.stages_size() == 0) {
    out += "No stages recorded yet.\n\n";
  } else {
    out += "Test metrics unless marked valid; the teacher first, then each stage in order.\n\n";
    std::vector<std::vector<std::string>> rows;
    for (const auto& row : r.stages()) rows.push_back(ledger_cells(row, teacher));
    md_table(out, kLedgerHeader, rows);
    out += '\n';
  }

  out += "## Controls\n\n";
  if (r.controls_size() == 0) {
    out += "No controls recorded.\n\n";
  } else {
    const std::string final_name = final_row ? " (" + md_text(final_row->name()) + ")" : "";
    std::vector<std::string> header = kLedgerHeader;
    header[0] = "control";
    header.push_back("NDCG@10 vs final" + final_name);
    header.push_back("HR@10 vs final" + final_name);
    std::vector<std::vector<std::string>> rows;
    for (const auto& row : r.controls()) {
      std::vector<std::string> cells = ledger_cells(row, teacher);
      for (const char* key : {"NDCG@10", "HR@10"})
        cells.push_back(
            final_row ? fmt_signed_metric(difference(lookup(row.metrics(), key), lookup(final_row->metrics(), key)))
                      : kDash);
      rows.push_back(std::move(cells));
    }
    md_table(out, header, rows);
    out += '\n';
  }
  return out;
}

std::string report_markdown(const pb::Report& r) {
  std::string out = ledger_markdown(r);
  const pb::StageRow* teacher = r.stages_size() > 0 ? &r.stages(0) : nullptr;
  out += "## Charts\n\n";
  out += "![Test NDCG@10 and HR@10 against non-embedding parameters](quality_vs_params.svg)\n\n";
  out += "![Teacher heads and MLP channels kept by each stage](kept_units.svg)\n\n";
  out += "![Recovery loss and validation NDCG@10 per stage](curves.svg)\n\n";

  // Teacher-index names of each stage's layers (for the plan tables); a report whose plans
  // do not compose still renders, with the reason.
  std::vector<TeacherIndexedUnits> trace;
  std::string trace_error;
  if (r.stages_size() > 0 && r.stages(0).has_config()) {
    try {
      trace = trace_units_to_teacher(r);
    } catch (const ConfigError& e) {
      trace_error = e.what();
    }
  }
  out += "## Stages\n\n";
  if (!trace_error.empty()) out += "The plans do not compose: " + md_text(trace_error) + "\n\n";
  if (r.stages_size() == 0) out += "No stages recorded yet.\n\n";
  for (int k = 0; k < r.stages_size(); ++k)
    md_stage_details(out, r, k, r.stages(k), teacher, trace.empty() ? nullptr : &trace, /*control=*/false);
  for (int c = 0; c < r.controls_size(); ++c)
    md_stage_details(out, r, c, r.controls(c), teacher, nullptr, /*control=*/true);

  out += "## Schedule\n\n";
  out += r.has_schedule() && !r.schedule().empty() ? md_code_block(r.schedule(), "text") : std::string(kDash) + "\n";
  out += "\n## Command\n\n";
  out += r.has_command() && !r.command().empty() ? md_code_block(r.command(), "sh") : std::string(kDash) + "\n";
  return out;
}

// ---------------------------------------------------------------------------------------
// Charts.

std::string quality_chart_svg(const pb::Report& r) {
  Svg svg(800, 500, report_title(r, "Quality against size"));
  svg.text(400, 42, subtitle(r), 11, "middle", "#666666");
  std::vector<double> params;
  for (const auto* rows : {&r.stages(), &r.controls()})
    for (const auto& row : *rows)
      for (const char* metric : {"NDCG@10", "HR@10"})
        if (const auto p = quality_point(row, metric)) params.push_back(p->first);
  if (params.empty()) {
    svg.centred_message(400, 250, "no stage has both non-embedding parameters and test metrics yet");
    return svg.finish();
  }
  const LogAxis x_axis =
      LogAxis::fit(*std::min_element(params.begin(), params.end()), *std::max_element(params.begin(), params.end()));
  quality_panel(svg, r, {78, 78, 380, 380}, "NDCG@10", x_axis);
  quality_panel(svg, r, {478, 78, 780, 380}, "HR@10", x_axis);

  std::vector<LegendItem> legend;
  legend.push_back({LegendItem::Kind::kLine, "#9A9A9A", 0, "pruning path, teacher to final"});
  for (int k = 0; k < r.stages_size(); ++k)
    legend.push_back({LegendItem::Kind::kMarker, stage_colour(k), 0, stage_name(r, k)});
  for (int c = 0; c < r.controls_size(); ++c)
    legend.push_back({LegendItem::Kind::kMarker,
                      kControlColours[static_cast<std::size_t>(c) % std::size(kControlColours)], 1 + c,
                      "control: " + (r.controls(c).has_name() ? r.controls(c).name() : std::to_string(c))});
  legend.push_back({LegendItem::Kind::kDashedLine, "#AAAAAA", 0, "teacher level"});
  draw_legend(svg, 40, 440, 780, legend);
  return svg.finish();
}

std::string kept_units_svg(const pb::Report& r) {
  std::vector<TeacherIndexedUnits> trace;
  std::string error;
  try {
    trace = trace_units_to_teacher(r);
  } catch (const ConfigError& e) {
    error = e.what();
  }
  if (!error.empty() || trace.front().layers.empty()) {
    Svg svg(800, 500, report_title(r, "Kept units"));
    svg.centred_message(400, 250, error.empty() ? "the teacher has no layers" : error);
    return svg.finish();
  }
  const std::vector<KeptUnitsLayer> kept = kept_from_trace(trace);
  const int stages = static_cast<int>(trace.size()) - 1;  // pruning stages composed
  const std::size_t L = kept.size();

  // Category colours: 0 = teacher only, k = still present after stage k.
  const auto colour = [&](int last_stage) {
    return last_stage == 0 ? std::string(kRemovedColour) : stage_colour(last_stage);
  };

  std::size_t max_heads = 0, max_mlp = 0;
  for (const auto& l : kept) {
    max_heads = std::max(max_heads, l.head_last_stage.size());
    max_mlp = std::max(max_mlp, l.mlp_last_stage.size());
  }
  const double grid_top = 92, label_right = 66, right_notes = 178;
  const double row_height = std::clamp(300.0 / static_cast<double>(L), 7.0, 40.0);
  const double grid_bottom = grid_top + row_height * static_cast<double>(L);
  const double heads_x0 = label_right + 8;
  const double heads_w = max_heads == 0 ? 60 : std::min(220.0, std::max(60.0, 22.0 * static_cast<double>(max_heads)));
  const double mlp_x0 = heads_x0 + heads_w + 26;
  const double mlp_w = 800 - right_notes - mlp_x0 - 10;
  constexpr std::size_t kMaxBins = 64;
  const std::size_t per_bin = max_mlp <= kMaxBins ? 1 : (max_mlp + kMaxBins - 1) / kMaxBins;

  // Legend first (to size the picture).
  std::vector<LegendItem> legend;
  legend.push_back(
      {LegendItem::Kind::kSwatch, kRemovedColour, 0, stages == 0 ? "teacher (no stage composed yet)" : "teacher only"});
  for (int k = 1; k <= stages; ++k)
    legend.push_back(
        {LegendItem::Kind::kSwatch, colour(k), 0, (k == stages ? "kept to the end: " : "through ") + stage_name(r, k)});
  legend.push_back({LegendItem::Kind::kSwatch, "url(#removed-layer)", 0, "layer removed"});
  const double legend_y = grid_bottom + 52;
  const double height = std::max(360.0, legend_y + 18.0 * 3);

  Svg svg(800, height, report_title(r, "Kept units"));
  svg.text(400, 42, "colour = the last stage whose model still has the unit; one row per teacher layer", 11, "middle",
           "#666666");
  svg.raw(
      "<defs><pattern id=\"removed-layer\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" "
      "patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#FFFFFF\" fill-opacity=\"0.35\"/>"
      "<line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#333333\" stroke-width=\"1.4\"/></pattern></defs>\n");
  svg.text(heads_x0 + heads_w / 2, grid_top - 10, "query heads (teacher index)", 11, "middle", kAxisColour, true);
  svg.text(mlp_x0 + mlp_w / 2, grid_top - 10,
           per_bin == 1 ? std::string("MLP channels (teacher index)")
                        : "MLP channels, " + std::to_string(per_bin) + " per bin (bar = share of the bin)",
           11, "middle", kAxisColour, true);
  svg.text(800 - right_notes + 4, grid_top - 10, "final model", 11, "start", kAxisColour, true);

  const std::size_t label_every = row_height >= 11 ? 1 : static_cast<std::size_t>(std::ceil(11.0 / row_height));
  const double font = std::min(11.0, row_height - 1);
  for (std::size_t l = 0; l < L; ++l) {
    const KeptUnitsLayer& layer = kept[l];
    const double y = grid_top + row_height * static_cast<double>(l);
    const double gap = row_height >= 8 ? 1 : 0;
    if (l % label_every == 0)
      svg.text(label_right, y + row_height / 2 + font / 3, "layer " + std::to_string(l), font, "end");

    // Heads: one cell per teacher query head.
    const double head_w = max_heads ? heads_w / static_cast<double>(max_heads) : 0;
    for (std::size_t h = 0; h < layer.head_last_stage.size(); ++h)
      svg.rect(heads_x0 + head_w * static_cast<double>(h), y, head_w - (head_w >= 6 ? 1 : 0), row_height - gap,
               colour(layer.head_last_stage[h]));

    // MLP channels: bins of per_bin channels, each a stack of categories (latest stage at the bottom).
    const std::size_t width = layer.mlp_last_stage.size();
    const std::size_t bins = (width + per_bin - 1) / per_bin;
    const double bin_w = max_mlp ? mlp_w * static_cast<double>(per_bin) / static_cast<double>(max_mlp) : 0;
    for (std::size_t b = 0; b < bins; ++b) {
      const std::size_t begin = b * per_bin, end = std::min(width, begin + per_bin);
      std::vector<int> counts(static_cast<std::size_t>(stages) + 1, 0);
      for (std::size_t j = begin; j < end; ++j) ++counts[static_cast<std::size_t>(layer.mlp_last_stage[j])];
      const double x = mlp_x0 + bin_w * static_cast<double>(b);
      const double w = bin_w * static_cast<double>(end - begin) / static_cast<double>(per_bin) - (bin_w >= 5 ? 0.5 : 0);
      double bottom = y + row_height - gap;
      for (int s = stages; s >= 0; --s) {
        if (counts[static_cast<std::size_t>(s)] == 0) continue;
        const double h = (row_height - gap) * counts[static_cast<std::size_t>(s)] / static_cast<double>(end - begin);
        svg.rect(x, bottom - h, w, h, colour(s));
        bottom -= h;
      }
    }

    // Removed layers: hatched across both panels, with the stage that removed them.
    std::string note;
    if (layer.layer_last_stage < stages) {
      svg.rect(heads_x0, y, heads_w, row_height - gap, "url(#removed-layer)");
      svg.rect(mlp_x0, y, mlp_w, row_height - gap, "url(#removed-layer)");
      note = "removed by " + truncate(stage_name(r, layer.layer_last_stage + 1), 18);
    } else {
      const auto count = [&](const std::vector<int>& v) { return std::count(v.begin(), v.end(), stages); };
      note = std::to_string(count(layer.head_last_stage)) + "/" + std::to_string(layer.head_last_stage.size()) +
             " heads, " + fmt_count(count(layer.mlp_last_stage)) + "/" + fmt_count(static_cast<std::int64_t>(width)) +
             " ch";
    }
    if (l % label_every == 0)
      svg.text(800 - right_notes + 4, y + row_height / 2 + font / 3, note, std::min(font, 10.0), "start");
  }

  // Column ticks.
  if (max_heads > 0) {
    const double head_w = heads_w / static_cast<double>(max_heads);
    const std::size_t every = head_w >= 14 ? 1 : static_cast<std::size_t>(std::ceil(14.0 / head_w));
    for (std::size_t h = 0; h < max_heads; h += every)
      svg.text(heads_x0 + head_w * (static_cast<double>(h) + 0.5), grid_bottom + 14, std::to_string(h), 9, "middle");
  }
  if (max_mlp > 0) {
    for (const double at : {0.0, 0.25, 0.5, 0.75}) {
      const std::size_t channel = static_cast<std::size_t>(at * static_cast<double>(max_mlp)) / per_bin * per_bin;
      const double x = mlp_x0 + mlp_w * static_cast<double>(channel) / static_cast<double>(max_mlp);
      svg.line(x, grid_bottom, x, grid_bottom + 4, kAxisColour);
      svg.text(x, grid_bottom + 14, std::to_string(channel), 9, "middle");
    }
    svg.text(mlp_x0 + mlp_w, grid_bottom + 14, std::to_string(max_mlp), 9, "end");
  }
  if (static_cast<int>(trace.size()) < r.stages_size())
    svg.text(400, grid_bottom + 32, "stages after " + stage_name(r, stages) + " have no plan yet and are not shown", 10,
             "middle", "#777777");
  draw_legend(svg, 40, legend_y, 780, legend);
  return svg.finish();
}

std::string curves_svg(const pb::Report& r) {
  Svg svg(800, 500, report_title(r, "Recovery curves"));
  svg.text(400, 42, subtitle(r), 11, "middle", "#666666");
  curves_panel(svg, r, {78, 78, 380, 380}, /*loss=*/true, "recovery loss per epoch", "epoch");
  curves_panel(svg, r, {478, 78, 780, 380}, /*loss=*/false, "validation NDCG@10", "validation");
  std::vector<LegendItem> legend;
  for (int k = 1; k < r.stages_size(); ++k)
    legend.push_back({LegendItem::Kind::kLineMarker, stage_colour(k), 0, stage_name(r, k)});
  if (r.stages_size() > 0)
    legend.push_back({LegendItem::Kind::kDashedLine, kTeacherColour, 0, "teacher (valid NDCG@10)"});
  draw_legend(svg, 40, 440, 780, legend);
  return svg.finish();
}

// ---------------------------------------------------------------------------------------
// Files.

void write_report(const std::string& dir, const pb::Report& r) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw IoError(dir + ": cannot create the report directory: " + ec.message());
  // Render everything first, so a rendering error leaves the old files alone.
  const std::vector<std::pair<std::string, std::string>> files = {{"report.json", report_json(r)},
                                                                  {"report.md", report_markdown(r)},
                                                                  {"quality_vs_params.svg", quality_chart_svg(r)},
                                                                  {"kept_units.svg", kept_units_svg(r)},
                                                                  {"curves.svg", curves_svg(r)}};
  for (const auto& [name, content] : files) write_file_atomic((std::filesystem::path(dir) / name).string(), content);
}

pb::Report read_report(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / "report.json").string();
  return parse_report_json(read_file(path, std::size_t{256} << 20), path);
}

}  // namespace prunerec::prune
