// Whitespace-separated integer formats of the SASRec family:
//   pairs     "user item"            one interaction a line (SASRec, BERT4Rec)
//   user-seq  "user item item ..."   one user a line (S3-Rec, TransRec)
//   item-seq  "item item ..."        one user a line, user = line number (gSASRec)
// Ids are kept as written (digits only). Blank lines are skipped; in item-seq they still
// count as a (dropped, empty) user so that user ids stay equal to line numbers.
#include <cstdio>

#include "recsys/data/read_internal.h"

namespace prunerec::recsys::detail {

namespace {

// Checks the bytes and splits a data line; "" when fine, else what is wrong.
std::string scan_id_line(std::string_view line, std::vector<std::string_view>& fields) {
  int control = find_control_byte(line);
  if (control >= 0) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "0x%02X", control);
    return str_cat("unexpected control byte ", hex, " (not a text file?)");
  }
  split_whitespace(line, fields);
  for (std::string_view field : fields)
    if (!is_digits(field)) return "expected integer ids, got " + quote_text(field);
  return "";
}

std::string fields_word(std::size_t n) { return str_cat(n, n == 1 ? " field" : " fields"); }

}  // namespace

ParsedData read_pairs(const std::string& path, std::string_view text, ReaderContext ctx) {
  BadLines bad(path, ctx.opts.skip_bad_lines, ctx.report);
  EventLog log(path, /*has_time=*/false);
  LineCursor cursor(text);
  std::string_view line;
  std::vector<std::string_view> fields;
  while (cursor.next(line)) {
    if (is_blank(line)) continue;
    ++ctx.report.lines;
    std::string problem = scan_id_line(line, fields);
    if (problem.empty() && fields.size() != 2)
      problem = "expected \"user item\", got " + fields_word(fields.size());
    if (!problem.empty()) {
      bad.bad(cursor.line_number(), problem);
      continue;
    }
    log.add(fields[0], fields[1], 0);
  }
  return {log.finish(ctx.opts.duplicates, ctx.report), {}, {}};
}

ParsedData read_user_seq(const std::string& path, std::string_view text, ReaderContext ctx) {
  BadLines bad(path, ctx.opts.skip_bad_lines, ctx.report);
  DatasetBuilder builder(path);
  std::vector<std::int64_t> user_line;  // line of each user, for the repeated-user message
  LineCursor cursor(text);
  std::string_view line;
  std::vector<std::string_view> fields;
  while (cursor.next(line)) {
    if (is_blank(line)) continue;
    ++ctx.report.lines;
    std::string problem = scan_id_line(line, fields);
    if (problem.empty() && fields.size() < 2)
      problem = "expected \"user item item ...\", got " + fields_word(fields.size());
    if (problem.empty()) {
      std::int32_t seen = builder.find_user(fields[0]);
      if (seen >= 0)
        problem = str_cat("user ", quote_text(fields[0]), " already has line ",
                          user_line[static_cast<std::size_t>(seen)]);
    }
    if (!problem.empty()) {
      bad.bad(cursor.line_number(), problem);
      continue;
    }
    std::int32_t user = builder.add_user(fields[0]);
    user_line.push_back(cursor.line_number());
    auto& seq = builder.data().sequences[static_cast<std::size_t>(user)];
    for (std::size_t k = 1; k < fields.size(); ++k) seq.push_back(builder.add_item(fields[k]));
  }
  return {builder.finish(), {}, {}};
}

ParsedData read_item_seq(const std::string& path, std::string_view text, ReaderContext ctx) {
  BadLines bad(path, ctx.opts.skip_bad_lines, ctx.report);
  DatasetBuilder builder(path);
  LineCursor cursor(text);
  std::string_view line;
  std::vector<std::string_view> fields;
  while (cursor.next(line)) {
    if (is_blank(line)) continue;
    ++ctx.report.lines;
    std::string problem = scan_id_line(line, fields);
    if (!problem.empty()) {
      bad.bad(cursor.line_number(), problem);
      continue;
    }
    std::int32_t user = builder.add_user(std::to_string(cursor.line_number()));
    auto& seq = builder.data().sequences[static_cast<std::size_t>(user)];
    for (std::string_view field : fields) seq.push_back(builder.add_item(field));
  }
  return {builder.finish(), {}, {}};
}

}  // namespace prunerec::recsys::detail
