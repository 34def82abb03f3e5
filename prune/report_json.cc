// report.json: printing and parsing (Note [report JSON] in report.h).
#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.h"
#include "prune/report.h"
#include "prune/report_text.h"

namespace prunerec::prune {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;
using report_text::natural_less;

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

}  // namespace

std::string report_json(const pb::Report& r) { return JsonPrinter().print(r); }

pb::Report parse_report_json(const std::string& text, const std::string& source) {
  const std::optional<std::string> rewritten = NullAsNaN(text).run(pb::Report::descriptor());
  pb::Report r;
  const auto status = google::protobuf::util::JsonStringToMessage(rewritten ? *rewritten : text, &r);
  if (!status.ok()) throw IoError(source + ": not a report: " + std::string(status.message()));
  return r;
}

}  // namespace prunerec::prune
