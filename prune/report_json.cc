// report.json: the Report written by reflection through the project's JSON writer and read
// back by Protobuf's parser (Note [report JSON] in report.h).
#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"
#include "base/json.h"
#include "prune/report.h"
#include "prune/report_text.h"

namespace prunerec::prune {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// NaN and infinities as Protobuf's JSON mapping spells them, so its parser reads them back.
void write_float(Json& j, double v) {
  if (std::isnan(v))
    j.value("NaN");
  else if (std::isinf(v))
    j.value(v > 0 ? "Infinity" : "-Infinity");
  else
    j.value(v);
}

void write_message(Json& j, const Message& m);

// One value of field f: element `index` of a repeated field, or the singular value (-1).
void write_value(Json& j, const Message& m, const FieldDescriptor* f, int index) {
  const Reflection* r = m.GetReflection();
  const bool rep = index >= 0;
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      j.value(rep ? r->GetRepeatedInt32(m, f, index) : r->GetInt32(m, f));
      return;
    case FieldDescriptor::CPPTYPE_INT64:
      j.value(static_cast<std::int64_t>(rep ? r->GetRepeatedInt64(m, f, index) : r->GetInt64(m, f)));
      return;
    case FieldDescriptor::CPPTYPE_UINT32:
      j.value(static_cast<std::int64_t>(rep ? r->GetRepeatedUInt32(m, f, index) : r->GetUInt32(m, f)));
      return;
    case FieldDescriptor::CPPTYPE_UINT64:
      j.value(static_cast<std::uint64_t>(rep ? r->GetRepeatedUInt64(m, f, index) : r->GetUInt64(m, f)));
      return;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      write_float(j, rep ? r->GetRepeatedDouble(m, f, index) : r->GetDouble(m, f));
      return;
    case FieldDescriptor::CPPTYPE_FLOAT:
      write_float(j, rep ? r->GetRepeatedFloat(m, f, index) : r->GetFloat(m, f));
      return;
    case FieldDescriptor::CPPTYPE_BOOL:
      j.value(rep ? r->GetRepeatedBool(m, f, index) : r->GetBool(m, f));
      return;
    case FieldDescriptor::CPPTYPE_ENUM:
      j.value((rep ? r->GetRepeatedEnum(m, f, index) : r->GetEnum(m, f))->name());
      return;
    case FieldDescriptor::CPPTYPE_STRING:
      // Protobuf's JSON mapping writes bytes as base64; no report field is bytes.
      PR_CHECK_T(InternalError, f->type() != FieldDescriptor::TYPE_BYTES, "report_json: bytes field ",
                 f->full_name(), " is not supported");
      j.value(rep ? r->GetRepeatedString(m, f, index) : r->GetString(m, f));
      return;
    case FieldDescriptor::CPPTYPE_MESSAGE:
      write_message(j, rep ? r->GetRepeatedMessage(m, f, index) : r->GetMessage(m, f));
      return;
  }
}

// A map field as an object, keys in natural order (HR@5 before HR@10).
void write_map(Json& j, const Message& m, const FieldDescriptor* f) {
  const Reflection* r = m.GetReflection();
  const FieldDescriptor* key_field = f->message_type()->map_key();
  const FieldDescriptor* value_field = f->message_type()->map_value();
  std::vector<std::pair<std::string, const Message*>> entries;
  for (int i = 0; i < r->FieldSize(m, f); ++i) {
    const Message& entry = r->GetRepeatedMessage(m, f, i);
    const Reflection* er = entry.GetReflection();
    std::string key;
    switch (key_field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING: key = er->GetString(entry, key_field); break;
      case FieldDescriptor::CPPTYPE_INT32: key = std::to_string(er->GetInt32(entry, key_field)); break;
      case FieldDescriptor::CPPTYPE_INT64: key = std::to_string(er->GetInt64(entry, key_field)); break;
      case FieldDescriptor::CPPTYPE_UINT32: key = std::to_string(er->GetUInt32(entry, key_field)); break;
      case FieldDescriptor::CPPTYPE_UINT64: key = std::to_string(er->GetUInt64(entry, key_field)); break;
      case FieldDescriptor::CPPTYPE_BOOL: key = er->GetBool(entry, key_field) ? "true" : "false"; break;
      default: throw InternalError("report_json: map key type of " + f->full_name());
    }
    entries.emplace_back(std::move(key), &entry);
  }
  std::sort(entries.begin(), entries.end(),
            [](const auto& a, const auto& b) { return report_text::natural_less(a.first, b.first); });
  j.begin_object();
  for (const auto& [key, entry] : entries) {
    j.key(key);
    write_value(j, *entry, value_field, -1);
  }
  j.end_object();
}

// The set fields of m in field-number order, by their .proto names.
void write_message(Json& j, const Message& m) {
  std::vector<const FieldDescriptor*> fields;
  m.GetReflection()->ListFields(m, &fields);
  j.begin_object();
  for (const FieldDescriptor* f : fields) {
    j.key(f->is_extension() ? "[" + f->full_name() + "]" : f->name());
    if (f->is_map()) {
      write_map(j, m, f);
    } else if (f->is_repeated()) {
      j.begin_array();
      for (int i = 0; i < m.GetReflection()->FieldSize(m, f); ++i) write_value(j, m, f, i);
      j.end_array();
    } else {
      write_value(j, m, f, -1);
    }
  }
  j.end_object();
}

}  // namespace

std::string report_json(const pb::Report& r) {
  Json j(Json::kPretty);
  write_message(j, r);
  return j.str() + "\n";
}

pb::Report parse_report_json(const std::string& text, const std::string& source) {
  pb::Report r;
  const auto status = google::protobuf::util::JsonStringToMessage(text, &r);
  if (!status.ok()) throw IoError(source + ": not a report: " + std::string(status.message()));
  return r;
}

}  // namespace prunerec::prune
