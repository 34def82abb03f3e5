// Protobuf text format in and out, for configs, schedules and plans ("a run is data that
// can be diffed and replayed").
//
//   pb::Recipe recipe;
//   parse_text_proto(read_file(path, kMaxConfigBytes), path, &recipe);   // ConfigError "path:3:7: ..."
#pragma once

#include <string>

#include <google/protobuf/message.h>

namespace prunerec::nn {

constexpr std::size_t kMaxConfigBytes = std::size_t{16} << 20;

// Parses `text` into `msg`; on failure throws ConfigError "<source>:<line>:<col>: <what>"
// listing every error protobuf reports (unknown fields, bad values, syntax).
void parse_text_proto(const std::string& text, const std::string& source, google::protobuf::Message* msg);
// Reads and parses a file (bounded size).
void read_text_proto(const std::string& path, google::protobuf::Message* msg);
// Text format, one field per line.
std::string to_text_proto(const google::protobuf::Message& msg);
// Text format on one line (for logs and metadata).
std::string to_short_text_proto(const google::protobuf::Message& msg);
// JSON (proto3 JSON mapping, field names as in the .proto), pretty or compact.
std::string to_json(const google::protobuf::Message& msg, bool pretty = true);

}  // namespace prunerec::nn
