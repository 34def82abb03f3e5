#include "nn/text_proto.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/json_util.h>

#include "base/error.h"
#include "base/atomic_file.h"

namespace prunerec::nn {
namespace {

class Collector : public google::protobuf::io::ErrorCollector {
 public:
  explicit Collector(std::string source) : source_(std::move(source)) {}
  void AddError(int line, google::protobuf::io::ColumnNumber column, const std::string& message) override {
    if (!text_.empty()) text_ += "\n";
    text_ += detail::str_cat(source_, ":", line + 1, ":", column + 1, ": ", message);
  }
  void AddWarning(int line, google::protobuf::io::ColumnNumber column, const std::string& message) override {
    AddError(line, column, message);
  }
  const std::string& text() const { return text_; }

 private:
  std::string source_, text_;
};

}  // namespace

void parse_text_proto(const std::string& text, const std::string& source, google::protobuf::Message* msg) {
  Collector errors(source);
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, msg))
    throw ConfigError(errors.text().empty() ? source + ": could not parse " + msg->GetTypeName() : errors.text());
}

void read_text_proto(const std::string& path, google::protobuf::Message* msg) {
  parse_text_proto(read_file(path, kMaxConfigBytes), path, msg);
}

std::string to_text_proto(const google::protobuf::Message& msg) {
  std::string out;
  google::protobuf::TextFormat::PrintToString(msg, &out);
  return out;
}

std::string to_short_text_proto(const google::protobuf::Message& msg) {
  std::string out;
  google::protobuf::TextFormat::Printer printer;
  printer.SetSingleLineMode(true);
  printer.PrintToString(msg, &out);
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

std::string to_json(const google::protobuf::Message& msg, bool pretty) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = pretty;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  const auto status = google::protobuf::util::MessageToJsonString(msg, &out, options);
  PR_CHECK_T(InternalError, status.ok(), "to_json: ", status.ToString());
  return out;
}

}  // namespace prunerec::nn
