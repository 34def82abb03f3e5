// The prune report: JSON round trip, Markdown tables, SVG charts and the composition of
// stage plans into teacher indices (prune/report.h).
#include "prune/report.h"

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "nn/text_proto.h"
#include "prune/ledger.h"
#include "base/error.h"
#include "base/format.h"

namespace prunerec::prune {
namespace {

using google::protobuf::util::MessageDifferencer;

std::vector<int> range(int n) {
  std::vector<int> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

// A normalised layer entry (every index explicit).
pb::LayerPlan layer_plan(const std::vector<int>& heads, const std::vector<int>& kv, const std::vector<int>& mlp) {
  pb::LayerPlan lp;
  lp.set_keep_all_heads(false);
  for (int h : heads) lp.add_kept_heads(h);
  for (int g : kv) lp.add_kept_kv_heads(g);
  lp.set_keep_all_mlp(false);
  for (int j : mlp) lp.add_kept_mlp(j);
  return lp;
}

pb::PrunePlan plan(const std::vector<pb::LayerPlan>& layers, const std::vector<int>& kept_layers, int hidden = 64) {
  pb::PrunePlan p;
  for (const auto& lp : layers) *p.add_layers() = lp;
  p.set_keep_all_hidden(false);
  for (int c : range(hidden)) p.add_kept_hidden(c);
  p.set_keep_all_layers(false);
  for (int l : kept_layers) p.add_kept_layers(l);
  return p;
}

// {heads, kv heads, mlp width} per layer.
pb::ModelConfig config(const std::vector<std::array<int, 3>>& layers, int hidden = 64) {
  pb::ModelConfig c;
  c.set_hidden(hidden);
  c.set_head_dim(8);
  c.set_vocab_size(1000);
  for (const auto& [heads, kv, mlp] : layers) {
    pb::LayerConfig* l = c.add_layers();
    l->set_num_heads(heads);
    l->set_num_kv_heads(kv);
    l->set_mlp_width(mlp);
  }
  return c;
}

void set_metrics(google::protobuf::Map<std::string, double>* m, double ndcg10, double hr10) {
  (*m)["NDCG@5"] = ndcg10 * 0.8;
  (*m)["NDCG@10"] = ndcg10;
  (*m)["NDCG@20"] = ndcg10 * 1.1;
  (*m)["HR@1"] = hr10 * 0.3;
  (*m)["HR@5"] = hr10 * 0.7;
  (*m)["HR@10"] = hr10;
  (*m)["HR@20"] = hr10 * 1.3;
  (*m)["MRR@10"] = ndcg10 * 0.9;
}

pb::StageRow* add_row(google::protobuf::RepeatedPtrField<pb::StageRow>* rows, const std::string& name,
                      const std::string& kind, std::int64_t non_embedding, double ndcg10, double hr10) {
  pb::StageRow* row = rows->Add();
  row->set_name(name);
  row->set_kind(kind);
  row->set_embedding_params(64000);
  row->set_non_embedding_params(non_embedding);
  row->set_total_params(64000 + non_embedding);
  row->set_flops_per_recommendation(2.0 * static_cast<double>(non_embedding) * 50 + 3.2e6);
  row->mutable_latency()->set_one_user_ms(1.25);
  row->mutable_latency()->set_batch_ms(40);
  row->mutable_latency()->set_batch_size(256);
  row->mutable_latency()->set_batch_ms_per_user(40.0 / 256);
  row->mutable_latency()->set_repetitions(20);
  row->set_latency_ms(1.25);
  row->set_wall_seconds(125.5);
  set_metrics(row->mutable_metrics(), ndcg10, hr10);
  set_metrics(row->mutable_valid_metrics(), ndcg10 * 1.05, hr10 * 1.05);
  return row;
}

// The hand-made three-stage report of the composition test (4 layers x 8 heads, MLP 16):
//   stage 1 keeps heads {1,3,5,7} in every layer,
//   stage 2 keeps, in layer 2, heads {0,3} of those (teacher {1,7}) and in layer l the MLP
//           channels {l, l+4, 8, 15},
//   stage 3 keeps layers {0,2}.
pb::Report three_stage_report() {
  pb::Report r;
  r.set_data("ml-1m (5-core)");
  r.set_teacher("qwen-rec-4L");
  r.set_protocol("test split (leave-one-out), full ranking over all items");
  r.set_calibration_sequences(1024);
  r.set_seed(42);
  r.set_threads(2);
  r.set_total_seconds(4000);
  r.set_schedule("stages {\n  name: \"attn\"\n  kind: WIDTH_ATTENTION\n}\n");
  r.set_command("prunerec prune --schedule three_stage.pbtxt --teacher run/teacher.prc");

  pb::StageRow* teacher = add_row(r.mutable_stages(), "teacher", "teacher", 1234567, 0.2, 0.35);
  *teacher->mutable_config() = config({{8, 4, 16}, {8, 4, 16}, {8, 4, 16}, {8, 4, 16}});
  teacher->set_recovery_epochs(30);
  teacher->set_recovery_best_epoch(27);
  for (double v : {6.0, 5.0, 4.5, 4.2}) teacher->add_loss_curve(v);

  pb::StageRow* s1 = add_row(r.mutable_stages(), "attn-width", "width-attention", 900000, 0.19, 0.34);
  *s1->mutable_plan() =
      plan({layer_plan({1, 3, 5, 7}, {0, 1, 2, 3}, range(16)), layer_plan({1, 3, 5, 7}, {0, 1, 2, 3}, range(16)),
            layer_plan({1, 3, 5, 7}, {0, 1, 2, 3}, range(16)), layer_plan({1, 3, 5, 7}, {0, 1, 2, 3}, range(16))},
           {0, 1, 2, 3});
  *s1->mutable_config() = config({{4, 4, 16}, {4, 4, 16}, {4, 4, 16}, {4, 4, 16}});
  set_metrics(s1->mutable_metrics_before_recovery(), 0.12, 0.25);
  (*s1->mutable_stability()->mutable_spearman())["heads"] = 0.91;
  (*s1->mutable_stability()->mutable_spearman())["hidden"] = 0.84;
  s1->set_recovery_epochs(5);
  s1->set_recovery_best_epoch(4);
  s1->set_scoring_seconds(12.5);
  s1->set_recovery_seconds(100);
  s1->set_checkpoint("run/stage1.prc");
  for (double v : {3.1, 2.8, 2.7, 2.65, 2.6}) s1->add_loss_curve(v);
  for (double v : {0.17, 0.18, 0.185, 0.19, 0.189}) s1->add_valid_curve(v);

  pb::StageRow* s2 = add_row(r.mutable_stages(), "mlp-width", "width-mlp", 500000, 0.18, 0.33);
  *s2->mutable_plan() = plan(
      {layer_plan({0, 1, 2, 3}, {0, 1, 2, 3}, {0, 4, 8, 15}), layer_plan({0, 1, 2, 3}, {0, 1, 2, 3}, {1, 5, 8, 15}),
       layer_plan({0, 3}, {0, 3}, {2, 6, 8, 15}), layer_plan({0, 1, 2, 3}, {0, 1, 2, 3}, {3, 7, 8, 15})},
      {0, 1, 2, 3});
  *s2->mutable_config() = config({{4, 4, 4}, {4, 4, 4}, {2, 2, 4}, {4, 4, 4}});
  set_metrics(s2->mutable_metrics_before_recovery(), 0.10, 0.22);
  for (double v : {3.0, 2.9, 2.85}) s2->add_loss_curve(v);
  for (double v : {0.16, 0.175, 0.18}) s2->add_valid_curve(v);

  pb::StageRow* s3 = add_row(r.mutable_stages(), "depth", "depth", 250000, 0.17, 0.31);
  *s3->mutable_plan() =
      plan({layer_plan({0, 1, 2, 3}, {0, 1, 2, 3}, range(4)), layer_plan({0, 1, 2, 3}, {0, 1, 2, 3}, range(4)),
            layer_plan({0, 1}, {0, 1}, range(4)), layer_plan({0, 1, 2, 3}, {0, 1, 2, 3}, range(4))},
           {0, 2});
  *s3->mutable_config() = config({{4, 4, 4}, {2, 2, 4}});
  s3->set_note("sub_blocks: false");
  for (double v : {3.3, 3.0, 2.95, 2.9}) s3->add_loss_curve(v);
  for (double v : {0.15, 0.165, 0.17, 0.171}) s3->add_valid_curve(v);

  add_row(r.mutable_controls(), "from-scratch", "control", 250000, 0.15, 0.29)
      ->set_note("same shape, trained from scratch");
  add_row(r.mutable_controls(), "random-scores", "control", 250000, 0.10, 0.21);
  add_row(r.mutable_controls(), "no-recovery", "control", 250000, 0.05, 0.12);
  return r;
}

// Checks that every start tag has its end tag, properly nested, and that text holds no
// raw '<' or stray '&' (the SVG parses as XML). Returns "" or what is wrong.
std::string xml_problem(const std::string& s) {
  std::vector<std::string> open;
  std::size_t i = 0;
  while (i < s.size()) {
    if (s[i] == '&') {
      const std::size_t semi = s.find(';', i);
      if (semi == std::string::npos || semi - i > 6) return "stray & at " + std::to_string(i);
      const std::string entity = s.substr(i, semi - i + 1);
      if (entity != "&amp;" && entity != "&lt;" && entity != "&gt;" && entity != "&quot;" && entity != "&#39;")
        return "unknown entity " + entity;
      i = semi + 1;
      continue;
    }
    if (s[i] != '<') {
      if (s[i] == '>') return "stray > at " + std::to_string(i);
      ++i;
      continue;
    }
    const std::size_t close = s.find('>', i);
    if (close == std::string::npos) return "unterminated tag at " + std::to_string(i);
    std::string tag = s.substr(i + 1, close - i - 1);
    if (tag.find('<') != std::string::npos) return "'<' inside a tag at " + std::to_string(i);
    i = close + 1;
    if (tag.empty()) return "empty tag";
    if (tag[0] == '?' || tag[0] == '!') continue;
    if (tag[0] == '/') {
      const std::string name = tag.substr(1);
      if (open.empty() || open.back() != name) return "unbalanced </" + name + ">";
      open.pop_back();
      continue;
    }
    if (tag.back() == '/') continue;  // self-closing
    open.push_back(tag.substr(0, tag.find_first_of(" \n\t")));
  }
  if (!open.empty()) return "unclosed <" + open.back() + ">";
  return "";
}

void expect_well_formed_svg(const std::string& svg) {
  ASSERT_FALSE(svg.empty());
  EXPECT_EQ(svg.rfind("<svg", 0), 0u) << svg.substr(0, 80);
  EXPECT_EQ(svg.substr(svg.size() - 7), "</svg>\n");
  EXPECT_EQ(xml_problem(svg), "");
  std::string lower = svg;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  EXPECT_EQ(lower.find("nan"), std::string::npos) << "a NaN leaked into the SVG";
  EXPECT_EQ(lower.find("inf"), std::string::npos) << "an infinity leaked into the SVG";
  EXPECT_EQ(svg.find("http://", svg.find("xmlns") + 40), std::string::npos) << "external reference";
  EXPECT_EQ(svg.find("<script"), std::string::npos);
}

std::size_t count_of(const std::string& s, const std::string& needle) {
  std::size_t n = 0;
  for (std::size_t at = s.find(needle); at != std::string::npos; at = s.find(needle, at + needle.size())) ++n;
  return n;
}

std::string line_starting(const std::string& text, const std::string& prefix) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(prefix, 0) == 0) return line;
  return "";
}

std::string temp_dir(const std::string& name) {
  const std::filesystem::path p =
      std::filesystem::path(testing::TempDir()) / ("prunerec_report_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  return p.string();
}

// ---------------------------------------------------------------------------------------

TEST(ReportJson, RoundTripGivesAnEqualMessage) {
  pb::Report r = three_stage_report();
  r.set_seed(std::numeric_limits<std::uint64_t>::max());
  r.mutable_stages(0)->set_total_params((std::int64_t{1} << 53) + 1);  // not representable as a double
  r.mutable_stages(1)->set_wall_seconds(0.1 + 0.2);                    // needs all 17 digits
  r.mutable_stages(1)->set_flops_per_recommendation(1e-300);
  const std::string json = report_json(r);
  const pb::Report back = parse_report_json(json, "mem");
  std::string diff;
  MessageDifferencer differencer;
  differencer.ReportDifferencesToString(&diff);
  EXPECT_TRUE(differencer.Compare(r, back)) << diff;
  EXPECT_NE(json.find("\"seed\": 18446744073709551615"), std::string::npos);
  EXPECT_NE(json.find("\"total_params\": 9007199254740993"), std::string::npos);
  // Printing again is byte-identical (maps in a fixed order).
  EXPECT_EQ(report_json(back), json);
}

TEST(ReportJson, Int64AndDoubleAreNumbersAndFieldNamesAreProtoNames) {
  pb::Report r;
  pb::StageRow* row = r.add_stages();
  row->set_non_embedding_params(123456);
  row->set_wall_seconds(2.5);
  row->set_recovery_best_epoch(3);
  const std::string json = report_json(r);
  EXPECT_NE(json.find("\"non_embedding_params\": 123456"), std::string::npos) << json;
  EXPECT_EQ(json.find("\"123456\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"wall_seconds\": 2.5"), std::string::npos) << json;
  EXPECT_NE(json.find("\"recovery_best_epoch\": 3"), std::string::npos) << json;
  EXPECT_EQ(json.find("nonEmbeddingParams"), std::string::npos);
  // Unset fields are left out.
  EXPECT_EQ(json.find("total_params"), std::string::npos);
  EXPECT_EQ(json.find("controls"), std::string::npos);
}

// Protobuf's JSON mapping spells non-finite doubles as strings; its parser reads them back
// in place (a null would be dropped from an array and read as 0 in a map).
TEST(ReportJson, NonFiniteNumbersAreProtobufStringsAndReadBackInPlace) {
  pb::Report r;
  pb::StageRow* row = r.add_stages();
  row->set_name("diverged");
  row->set_wall_seconds(std::nan(""));
  row->set_flops_per_recommendation(std::numeric_limits<double>::infinity());
  (*row->mutable_metrics())["NDCG@10"] = std::nan("");
  (*row->mutable_metrics())["HR@10"] = 0.25;
  for (double v : {1.0, std::nan(""), 2.0}) row->add_loss_curve(v);
  row->add_valid_curve(-std::numeric_limits<double>::infinity());
  const std::string json = report_json(r);
  EXPECT_NE(json.find("\"wall_seconds\": \"NaN\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"flops_per_recommendation\": \"Infinity\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"NDCG@10\": \"NaN\""), std::string::npos) << json;
  EXPECT_NE(json.find("[1, \"NaN\", 2]"), std::string::npos) << json;
  EXPECT_NE(json.find("[\"-Infinity\"]"), std::string::npos) << json;
  EXPECT_EQ(json.find("null"), std::string::npos);
  EXPECT_EQ(json.find("nan"), std::string::npos);
  EXPECT_EQ(json.find("inf"), std::string::npos);

  const pb::Report back = parse_report_json(json, "mem");
  const pb::StageRow& b = back.stages(0);
  ASSERT_EQ(b.loss_curve_size(), 3);
  EXPECT_EQ(b.loss_curve(0), 1.0);
  EXPECT_TRUE(std::isnan(b.loss_curve(1)));
  EXPECT_EQ(b.loss_curve(2), 2.0);
  ASSERT_EQ(b.metrics().count("NDCG@10"), 1u);
  EXPECT_TRUE(std::isnan(b.metrics().at("NDCG@10")));
  EXPECT_EQ(b.metrics().at("HR@10"), 0.25);
  ASSERT_TRUE(b.has_wall_seconds());
  EXPECT_TRUE(std::isnan(b.wall_seconds()));
  EXPECT_EQ(b.flops_per_recommendation(), std::numeric_limits<double>::infinity());
  ASSERT_EQ(b.valid_curve_size(), 1);
  EXPECT_EQ(b.valid_curve(0), -std::numeric_limits<double>::infinity());
  EXPECT_EQ(b.name(), "diverged");
}

TEST(ReportJson, MapsAreObjectsInNaturalKeyOrder) {
  const std::string json = report_json(three_stage_report());
  EXPECT_NE(json.find("\"metrics\": {"), std::string::npos);
  const std::size_t first_metrics = json.find("\"metrics\": {");
  const std::size_t hr5 = json.find("\"HR@5\"", first_metrics), hr10 = json.find("\"HR@10\"", first_metrics),
                    hr20 = json.find("\"HR@20\"", first_metrics);
  ASSERT_NE(hr5, std::string::npos);
  EXPECT_LT(hr5, hr10);
  EXPECT_LT(hr10, hr20);
  EXPECT_NE(json.find("\"spearman\": {"), std::string::npos);
}

TEST(ReportJson, IsPrettyAndLongArraysWrap) {
  pb::Report r;
  pb::StageRow* row = r.add_stages();
  pb::LayerPlan* lp = row->mutable_plan()->add_layers();
  for (int j = 0; j < 1024; ++j) lp->add_kept_mlp(j);
  const std::string json = report_json(r);
  EXPECT_EQ(json.rfind("{\n  \"stages\": [\n    {\n", 0), 0u) << json.substr(0, 60);
  std::istringstream in(json);
  std::size_t longest = 0, lines = 0;
  for (std::string line; std::getline(in, line); ++lines) longest = std::max(longest, line.size());
  EXPECT_LE(longest, 100u);
  EXPECT_GT(lines, 40u);
  const pb::Report back = parse_report_json(json, "mem");
  EXPECT_EQ(back.stages(0).plan().layers(0).kept_mlp_size(), 1024);
  EXPECT_EQ(back.stages(0).plan().layers(0).kept_mlp(1023), 1023);
}

TEST(ReportJson, ParseErrorsNameTheSource) {
  for (const std::string bad : {"{not json", "{\"no_such_field\": 1}", "{\"seed\": \"forty-two\"}", "[1, 2]"}) {
    try {
      parse_report_json(bad, "run/report.json");
      ADD_FAILURE() << "accepted " << bad;
    } catch (const IoError& e) {
      EXPECT_EQ(std::string(e.what()).rfind("run/report.json: ", 0), 0u) << e.what();
    }
  }
  // The camelCase names protobuf's own printer uses are accepted too.
  EXPECT_EQ(parse_report_json("{\"calibrationSequences\": 7}", "mem").calibration_sequences(), 7);
}

// ---------------------------------------------------------------------------------------

// The FLOP count by hand for a two-layer model (d 8, head_dim 2, history 5, 10 items):
// layer 0 (4 heads, 2 KV, MLP 6) at all 5 positions, layer 1 (2 heads, 1 KV, MLP 3) with
// keys/values at all 5 and everything else at the last position only.
TEST(Ledger, FlopsPerRecommendationCountsWhatInferenceComputes) {
  pb::ModelConfig c;
  nn::parse_text_proto(R"(vocab_size: 10 hidden: 8 head_dim: 2 max_len: 5
      layers { num_heads: 4 num_kv_heads: 2 mlp_width: 6 kv_map: [0, 0, 1, 1] }
      layers { num_heads: 2 num_kv_heads: 1 mlp_width: 3 kv_map: [0, 0] })",
                       "test", &c);
  const double layer0 = 2 * 5 * (8 * 8 + 2 * 8 * 4 + 8 * 8 + 3 * 8 * 6)  // q, k+v, o, gate+up+down
                        + 4 * 2 * 2 * 2 * (1 + 2 + 3 + 4 + 5);           // QK^T and PV, causal
  const double layer1 = 2 * 5 * (2 * 8 * 2)                            // k+v at every position
                        + 2 * 1 * (8 * 4 + 4 * 8 + 3 * 8 * 3)          // q, o, MLP at the last
                        + 2 * 2 * 2 * 2 * 5;                           // one query over 5 keys
  EXPECT_EQ(flops_per_recommendation(c, 5), layer0 + layer1 + 2 * 8 * 10);
}

TEST(ReportMarkdown, HasTheLedgerHeaderEveryStageAndFormattedNumbers) {
  const pb::Report r = three_stage_report();
  const std::string md = report_markdown(r);
  EXPECT_NE(md.find("| stage | non-emb. params | % of teacher | total params | FLOPs / rec. |"), std::string::npos);
  EXPECT_NE(md.find("| control | non-emb. params |"), std::string::npos);
  for (const auto& row : r.stages()) EXPECT_NE(md.find("| " + row.name() + " |"), std::string::npos) << row.name();
  for (const auto& row : r.controls()) EXPECT_NE(md.find("| " + row.name() + " |"), std::string::npos) << row.name();
  EXPECT_NE(md.find("ml-1m (5-core)"), std::string::npos);
  EXPECT_NE(md.find("leave-one-out"), std::string::npos);
  EXPECT_NE(md.find("**Seed:** 42"), std::string::npos);
  EXPECT_NE(md.find("**Threads:** 2"), std::string::npos);
  EXPECT_NE(md.find("1,024 sequences"), std::string::npos);

  // The teacher row: thousands separators, 100% of itself, 4-decimal metrics, m:ss.
  const std::string teacher = line_starting(md, "| teacher |");
  EXPECT_NE(teacher.find("| 1,234,567 | 100.0% | 1,298,567 |"), std::string::npos) << teacher;
  EXPECT_NE(teacher.find("| 0.2000 |"), std::string::npos) << teacher;
  EXPECT_NE(teacher.find("| 2:06 |"), std::string::npos) << teacher;
  // Stage 3: 250,000 of 1,234,567 = 20.3%; NDCG@10 0.17 / 0.2 = 85.0% of the teacher.
  const std::string depth = line_starting(md, "| depth |");
  EXPECT_NE(depth.find("| 250,000 | 20.3% |"), std::string::npos) << depth;
  EXPECT_NE(depth.find("| 85.0% |"), std::string::npos) << depth;
}

TEST(ReportText, TerminalLedgerFitsHundredColumnsWithRoundedNumbersAndUnits) {
  pb::Report r = three_stage_report();
  r.mutable_stages(1)->set_name("a-stage-with-an-unusually-long-and-descriptive-name-stage-one");
  r.set_threads(1);
  const std::string text = ledger_text(r);
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) EXPECT_LE(utf8_length(line), 100u) << line;
  EXPECT_NE(text.find("1 thread,"), std::string::npos) << text;  // not "1 threads"
  EXPECT_NE(text.find("1,024 calibration sequences"), std::string::npos) << text;
  const std::string teacher = line_starting(text, "teacher ");
  EXPECT_NE(teacher.find("1.23M"), std::string::npos) << teacher;   // 1,234,567 non-embedding parameters
  EXPECT_NE(teacher.find("0.2000"), std::string::npos) << teacher;  // NDCG@10, 4 decimals
  EXPECT_NE(teacher.find("100.0%"), std::string::npos) << teacher;
  EXPECT_NE(teacher.find("2:06"), std::string::npos) << teacher;    // wall time, m:ss
  EXPECT_NE(line_starting(text, "depth ").find("85.0%"), std::string::npos) << text;  // 0.17 / 0.2
  EXPECT_NE(text.find("control "), std::string::npos);
  EXPECT_EQ(text.find("|"), std::string::npos);  // plain text, not Markdown
}

TEST(ReportMarkdown, ControlsAreComparedWithTheFinalStage) {
  const std::string md = report_markdown(three_stage_report());
  EXPECT_NE(md.find("NDCG@10 vs final (depth)"), std::string::npos);
  // from-scratch: NDCG@10 0.15 - 0.17, HR@10 0.29 - 0.31.
  const std::string row = line_starting(md, "| from-scratch |");
  EXPECT_NE(row.find("| -0.0200 | -0.0200 |"), std::string::npos) << row;
  const std::string random = line_starting(md, "| random-scores |");
  EXPECT_NE(random.find("| -0.0700 | -0.1000 |"), std::string::npos) << random;
}

TEST(ReportMarkdown, DetailsPlansChartsScheduleAndCommand) {
  const std::string md = report_markdown(three_stage_report());
  EXPECT_NE(md.find("### Stage 1: attn-width (width-attention)"), std::string::npos);
  // Stage 1, layer 0: 4 of 8 heads, all 4 KV heads (heads 1,3,5,7 read all of them), MLP kept.
  EXPECT_NE(md.find("| 0 | 0 | 4 / 8 | 4 / 4 | 16 / 16 |"), std::string::npos);
  // Stage 2, layer 2: 2 of 4 heads and MLP 4 of 16.
  EXPECT_NE(md.find("| 2 | 2 | 2 / 4 | 2 / 4 | 4 / 16 |"), std::string::npos);
  // Stage 3 removes layers 1 and 3.
  EXPECT_NE(md.find("| 1 | 1 | removed | removed | removed |"), std::string::npos);
  EXPECT_NE(md.find("| 3 | 3 | removed | removed | removed |"), std::string::npos);
  EXPECT_NE(md.find("Score stability (split-half Spearman): heads 0.910, hidden 0.840."), std::string::npos);
  EXPECT_NE(md.find("| test metric | after surgery | after recovery | recovery gain | teacher |"), std::string::npos);
  EXPECT_NE(md.find("| NDCG@10 | 0.1200 | 0.1900 | +0.0700 | 0.2000 |"), std::string::npos);
  EXPECT_NE(md.find("Recovery epochs: 5 (best 4); time (m:ss): scoring 0:13, recovery 1:40"), std::string::npos);
  EXPECT_NE(md.find("![Test NDCG@10 and HR@10 against non-embedding parameters](quality_vs_params.svg)"),
            std::string::npos);
  EXPECT_NE(md.find("(kept_units.svg)"), std::string::npos);
  EXPECT_NE(md.find("(curves.svg)"), std::string::npos);
  EXPECT_NE(md.find("```text\nstages {\n  name: \"attn\""), std::string::npos);
  EXPECT_NE(md.find("```sh\nprunerec prune --schedule three_stage.pbtxt"), std::string::npos);
}

TEST(ReportMarkdown, EmptyReportRendersWithDashes) {
  const std::string md = report_markdown(pb::Report());
  EXPECT_NE(md.find("# Prune report"), std::string::npos);
  EXPECT_NE(md.find("**Data:** \xE2\x80\x94"), std::string::npos);
  EXPECT_NE(md.find("No stages recorded yet."), std::string::npos);
  EXPECT_NE(md.find("No controls recorded."), std::string::npos);
  EXPECT_NE(md.find("## Schedule"), std::string::npos);
}

TEST(ReportMarkdown, RunningStageAndMissingFieldsRenderAsDashes) {
  pb::Report r = three_stage_report();
  r.mutable_stages()->RemoveLast();
  r.add_stages()->set_name("still-running");
  r.mutable_stages(0)->clear_config();  // plans cannot be traced: must not crash either
  const std::string md = report_markdown(r);
  const std::string row = line_starting(md, "| still-running |");
  ASSERT_FALSE(row.empty());
  EXPECT_EQ(count_of(row, "| \xE2\x80\x94 "), 15u) << row;  // every column but the name
  // Controls compare with the final row, which has no metrics yet.
  EXPECT_NE(line_starting(md, "| from-scratch |").find("| \xE2\x80\x94 | \xE2\x80\x94 |"), std::string::npos);
}

TEST(ReportMarkdown, EscapesTableBreakingText) {
  pb::Report r = three_stage_report();
  r.mutable_stages(1)->set_name("a|b<c>");
  r.set_schedule("x ``` y");
  const std::string md = report_markdown(r);
  EXPECT_NE(md.find("| a\\|b&lt;c&gt; |"), std::string::npos);
  EXPECT_EQ(md.find("a|b"), std::string::npos);
  EXPECT_NE(md.find("````text\nx ``` y\n````"), std::string::npos);
}

// ---------------------------------------------------------------------------------------

TEST(ReportSvg, ChartsAreWellFormedForFullEmptyAndPartialReports) {
  pb::Report running = three_stage_report();
  running.mutable_stages(3)->clear_plan();
  running.mutable_stages(3)->clear_metrics();
  running.mutable_stages(3)->clear_loss_curve();
  pb::Report broken = three_stage_report();
  (*broken.mutable_stages(2)->mutable_metrics())["NDCG@10"] = std::nan("");
  broken.mutable_stages(2)->set_loss_curve(1, std::nan(""));
  broken.mutable_stages(1)->set_non_embedding_params(0);
  for (const pb::Report& r : {three_stage_report(), pb::Report(), running, broken}) {
    SCOPED_TRACE(r.ShortDebugString().substr(0, 60));
    expect_well_formed_svg(quality_chart_svg(r));
    expect_well_formed_svg(kept_units_svg(r));
    expect_well_formed_svg(curves_svg(r));
  }
}

// One <text> element of an SVG the chart kit wrote: its estimated box in user units.
struct SvgText {
  std::string content;
  double x0, y0, x1, y1;
};

double attribute(const std::string& element, const std::string& name, double fallback) {
  const std::size_t at = element.find(" " + name + "=\"");
  if (at == std::string::npos) return fallback;
  return std::stod(element.substr(at + name.size() + 3));
}

std::vector<SvgText> svg_texts(const std::string& svg) {
  std::vector<SvgText> out;
  for (std::size_t at = svg.find("<text "); at != std::string::npos; at = svg.find("<text ", at + 1)) {
    const std::size_t open_end = svg.find('>', at), close = svg.find("</text>", at);
    const std::string element = svg.substr(at, open_end - at);
    std::string content = svg.substr(open_end + 1, close - open_end - 1);
    // Entities are one character each on screen.
    std::size_t chars = 0;
    for (std::size_t i = 0; i < content.size(); ++i) {
      if (content[i] == '&') i = content.find(';', i);
      if ((static_cast<unsigned char>(content[i]) & 0xC0) != 0x80) ++chars;
    }
    const double x = attribute(element, "x", 0), y = attribute(element, "y", 0), size = attribute(element, "font-size", 11);
    const bool bold = element.find("font-weight=\"bold\"") != std::string::npos;
    // The same estimate the kit lays out with (chart::text_width); a glyph rises ~0.8 em above the baseline.
    const double w = (bold ? 0.66 : 0.6) * size * static_cast<double>(chars);
    const std::string anchor = element.find("text-anchor=\"middle\"") != std::string::npos ? "middle"
                               : element.find("text-anchor=\"end\"") != std::string::npos  ? "end"
                                                                                             : "start";
    double along0 = anchor == "start" ? 0 : anchor == "end" ? -w : -w / 2;
    SvgText t{content, x + along0, y - 0.8 * size, x + along0 + w, y + 0.25 * size};
    if (element.find("rotate(-90") != std::string::npos)  // vertical: the text runs up from (x, y)
      t = {content, x - 0.8 * size, y - along0 - w, x + 0.25 * size, y - along0};
    out.push_back(t);
  }
  return out;
}

// Layout checked mechanically on the rendered geometry: every text inside the picture by
// the width estimate (nothing clipped at an edge), no folder of the machine in a title.
TEST(ReportSvg, EveryTextFitsInsideThePictureAndTitlesHaveNoFolders) {
  pb::Report long_names = three_stage_report();
  long_names.set_teacher("/very/long/absolute/folder/of/the/machine/that/trained/it/teacher-with-a-long-name.prc");
  long_names.set_data("/data/sets/amazon-beauty-5-core-with-a-very-long-description-of-its-filters.csv");
  long_names.mutable_stages(1)->set_name("a-stage-with-an-unusually-long-and-descriptive-name-stage-one");
  long_names.mutable_controls(0)->set_name("a-control-with-a-name-long-enough-to-fill-the-legend-row-alone-x");
  pb::Report two_layers;  // the kept-units chart of a shallow model used to be half blank
  *two_layers.add_stages()->mutable_config() = config({{2, 2, 8}, {2, 2, 8}});
  pb::StageRow* s1 = two_layers.add_stages();
  s1->set_name("heads");
  pb::LayerPlan* lp = s1->mutable_plan()->add_layers();
  lp->set_keep_all_heads(false);
  lp->add_kept_heads(1);
  s1->mutable_plan()->add_layers();
  for (const pb::Report& r : {three_stage_report(), long_names, two_layers, pb::Report()}) {
    for (const std::string& svg : {quality_chart_svg(r), kept_units_svg(r), curves_svg(r)}) {
      const double width = attribute(svg.substr(0, svg.find('>')), "width", 0);
      const double height = attribute(svg.substr(0, svg.find('>')), "height", 0);
      ASSERT_GT(width, 0);
      for (const SvgText& t : svg_texts(svg)) {
        EXPECT_GE(t.x0, 0.0) << t.content << " in " << svg.substr(0, 300);
        EXPECT_LE(t.x1, width) << t.content;
        EXPECT_GE(t.y0, 0.0) << t.content;
        EXPECT_LE(t.y1, height) << t.content;
      }
      EXPECT_EQ(svg.find("/very/long"), std::string::npos);
      EXPECT_EQ(svg.find("/data/sets"), std::string::npos);
    }
  }
  const std::string title = svg_texts(kept_units_svg(long_names)).front().content;
  EXPECT_EQ(title.rfind("Kept units: teacher-with-a-long-name on amazon-beauty", 0), 0u) << title;
  EXPECT_EQ(title.substr(title.size() - 3), "\xE2\x80\xA6") << title;  // shortened to fit, visibly
  // Content decides the height: two layers need far less than the old fixed 360.
  const std::string shallow = kept_units_svg(two_layers);
  EXPECT_LT(attribute(shallow.substr(0, shallow.find('>')), "height", 0), 260.0);
}

TEST(ReportSvg, TitlesAreEscaped) {
  pb::Report r = three_stage_report();
  r.set_teacher("A&B <teacher>");
  r.mutable_stages(1)->set_name("x<y & z>");
  for (const std::string& svg : {quality_chart_svg(r), kept_units_svg(r), curves_svg(r)}) {
    EXPECT_NE(svg.find("A&amp;B &lt;teacher&gt;"), std::string::npos);
    EXPECT_EQ(svg.find("A&B"), std::string::npos);
    EXPECT_EQ(svg.find("<teacher>"), std::string::npos);
    EXPECT_EQ(xml_problem(svg), "");
  }
  EXPECT_NE(quality_chart_svg(r).find("x&lt;y &amp; z&gt;"), std::string::npos);
}

TEST(ReportSvg, QualityChartLabelsStagesAndControls) {
  const pb::Report r = three_stage_report();
  const std::string svg = quality_chart_svg(r);
  EXPECT_NE(svg.find("width=\"800\""), std::string::npos);
  for (const auto& row : r.stages()) EXPECT_NE(svg.find(">" + row.name() + "</text>"), std::string::npos) << row.name();
  for (const auto& row : r.controls()) EXPECT_NE(svg.find(">control: " + row.name() + "</text>"), std::string::npos);
  EXPECT_NE(svg.find("test NDCG@10"), std::string::npos);
  EXPECT_NE(svg.find("test HR@10"), std::string::npos);
  EXPECT_NE(svg.find("non-embedding parameters (log scale)"), std::string::npos);
  EXPECT_EQ(count_of(svg, "<polyline"), 2u);  // the pruning path, once per panel
  // Log ticks at 1-2-5 multiples over 250k..1.23M.
  EXPECT_NE(svg.find(">200k</text>"), std::string::npos);
  EXPECT_NE(svg.find(">500k</text>"), std::string::npos);
  EXPECT_NE(svg.find(">1M</text>"), std::string::npos);
}

TEST(ReportSvg, CurvesChartHasOneLinePerStageAndLegend) {
  const pb::Report r = three_stage_report();
  const std::string svg = curves_svg(r);
  EXPECT_EQ(count_of(svg, "<polyline"), 6u);  // 3 stages x (loss, valid)
  for (int k = 1; k < r.stages_size(); ++k)
    EXPECT_NE(svg.find(">" + r.stages(k).name() + "</text>"), std::string::npos);
  EXPECT_NE(svg.find(">recovery loss</text>"), std::string::npos);
  EXPECT_NE(svg.find(">valid NDCG@10</text>"), std::string::npos);
}

TEST(ReportSvg, KeptUnitsComposeThePlansBackToTeacherIndices) {
  const pb::Report r = three_stage_report();
  const std::vector<TeacherIndexedUnits> trace = trace_units_to_teacher(r);
  ASSERT_EQ(trace.size(), 4u);
  // After stage 1: 4 layers, heads {1,3,5,7} each.
  EXPECT_EQ(trace[1].layers, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(trace[1].heads[2], (std::vector<int>{1, 3, 5, 7}));
  // After stage 2: layer 2 keeps heads 0 and 3 of {1,3,5,7} = teacher heads 1 and 7.
  EXPECT_EQ(trace[2].heads[2], (std::vector<int>{1, 7}));
  EXPECT_EQ(trace[2].mlp[3], (std::vector<int>{3, 7, 8, 15}));
  // Final: layers 0 and 2 of the teacher; by hand.
  const TeacherIndexedUnits& final_units = trace[3];
  EXPECT_EQ(final_units.layers, (std::vector<int>{0, 2}));
  EXPECT_EQ(final_units.heads, (std::vector<std::vector<int>>{{1, 3, 5, 7}, {1, 7}}));
  EXPECT_EQ(final_units.mlp, (std::vector<std::vector<int>>{{0, 4, 8, 15}, {2, 6, 8, 15}}));

  const std::vector<KeptUnitsLayer> kept = compose_kept_units(r);
  ASSERT_EQ(kept.size(), 4u);
  EXPECT_EQ(kept[0].layer_last_stage, 3);
  EXPECT_EQ(kept[1].layer_last_stage, 2);
  EXPECT_EQ(kept[2].layer_last_stage, 3);
  EXPECT_EQ(kept[3].layer_last_stage, 2);
  EXPECT_EQ(kept[0].head_last_stage, (std::vector<int>{0, 3, 0, 3, 0, 3, 0, 3}));
  EXPECT_EQ(kept[1].head_last_stage, (std::vector<int>{0, 2, 0, 2, 0, 2, 0, 2}));
  EXPECT_EQ(kept[2].head_last_stage, (std::vector<int>{0, 3, 0, 1, 0, 1, 0, 3}));
  EXPECT_EQ(kept[3].head_last_stage, (std::vector<int>{0, 2, 0, 2, 0, 2, 0, 2}));
  EXPECT_EQ(kept[0].mlp_last_stage, (std::vector<int>{3, 1, 1, 1, 3, 1, 1, 1, 3, 1, 1, 1, 1, 1, 1, 3}));
  EXPECT_EQ(kept[1].mlp_last_stage, (std::vector<int>{1, 2, 1, 1, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 2}));
  EXPECT_EQ(kept[2].mlp_last_stage, (std::vector<int>{1, 1, 3, 1, 1, 1, 3, 1, 3, 1, 1, 1, 1, 1, 1, 3}));
}

TEST(ReportSvg, KeptUnitsFollowLayerRenumbering) {
  // Stage 1 removes teacher layer 0 (keeps {1,2,3}); stage 2 keeps layers {0,2} of that
  // model (teacher 1 and 3) and, in its layer 2 (teacher 3), heads {0,5}.
  pb::Report r;
  *r.add_stages()->mutable_config() = config({{8, 8, 4}, {8, 8, 4}, {8, 8, 4}, {8, 8, 4}});
  pb::StageRow* s1 = r.add_stages();
  s1->set_name("depth");
  pb::PrunePlan* p1 = s1->mutable_plan();
  for (int l = 0; l < 4; ++l) p1->add_layers();  // keep_all_* defaults: an unnormalised plan
  p1->set_keep_all_layers(false);
  for (int l : {1, 2, 3}) p1->add_kept_layers(l);
  pb::StageRow* s2 = r.add_stages();
  s2->set_name("heads");
  pb::PrunePlan* p2 = s2->mutable_plan();
  for (int l = 0; l < 3; ++l) p2->add_layers();
  p2->mutable_layers(2)->set_keep_all_heads(false);
  for (int h : {0, 5}) p2->mutable_layers(2)->add_kept_heads(h);
  p2->set_keep_all_layers(false);
  for (int l : {0, 2}) p2->add_kept_layers(l);
  *s2->mutable_config() = config({{8, 8, 4}, {2, 2, 4}});

  const std::vector<TeacherIndexedUnits> trace = trace_units_to_teacher(r);
  ASSERT_EQ(trace.size(), 3u);
  EXPECT_EQ(trace[1].layers, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(trace[2].layers, (std::vector<int>{1, 3}));
  EXPECT_EQ(trace[2].heads, (std::vector<std::vector<int>>{range(8), {0, 5}}));
  const std::vector<KeptUnitsLayer> kept = compose_kept_units(r);
  ASSERT_EQ(kept.size(), 4u);
  EXPECT_EQ(kept[0].layer_last_stage, 0);
  EXPECT_EQ(kept[0].head_last_stage, std::vector<int>(8, 0));
  EXPECT_EQ(kept[1].layer_last_stage, 2);
  EXPECT_EQ(kept[2].layer_last_stage, 1);
  EXPECT_EQ(kept[2].mlp_last_stage, std::vector<int>(4, 1));
  EXPECT_EQ(kept[3].head_last_stage, (std::vector<int>{2, 1, 1, 1, 1, 2, 1, 1}));
}

TEST(ReportSvg, KeptUnitsStopAtAStageWithoutPlan) {
  pb::Report r = three_stage_report();
  r.mutable_stages(3)->clear_plan();
  const std::vector<KeptUnitsLayer> kept = compose_kept_units(r);
  EXPECT_EQ(trace_units_to_teacher(r).size(), 3u);
  EXPECT_EQ(kept[1].layer_last_stage, 2);  // no longer removed
  EXPECT_EQ(kept[2].head_last_stage, (std::vector<int>{0, 2, 0, 1, 0, 1, 0, 2}));
  EXPECT_NE(kept_units_svg(r).find("have no plan yet"), std::string::npos);
}

TEST(ReportSvg, KeptUnitsRejectPlansThatDoNotFit) {
  const auto expect_config_error = [](const pb::Report& r, const std::string& fragment) {
    try {
      compose_kept_units(r);
      ADD_FAILURE() << "no error for " << fragment;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
    // The chart shows the reason instead of failing.
    const std::string svg = kept_units_svg(r);
    EXPECT_EQ(xml_problem(svg), "");
    EXPECT_NE(svg.find("report: "), std::string::npos);
  };
  pb::Report out_of_range = three_stage_report();
  out_of_range.mutable_stages(2)->mutable_plan()->mutable_layers(1)->set_kept_heads(0, 4);  // stage 1 left 4 heads
  expect_config_error(out_of_range, "stage 2 'mlp-width': layer 1 query heads: index 4 out of range");
  pb::Report unsorted = three_stage_report();
  unsorted.mutable_stages(3)->mutable_plan()->set_kept_layers(1, 0);
  expect_config_error(unsorted, "ascending");
  pb::Report wrong_layers = three_stage_report();
  wrong_layers.mutable_stages(3)->mutable_plan()->mutable_layers()->RemoveLast();
  expect_config_error(wrong_layers, "has 3 layer entries but the previous stage's model has 4 layers");
  pb::Report wrong_config = three_stage_report();
  wrong_config.mutable_stages(2)->mutable_config()->mutable_layers(2)->set_num_heads(3);
  expect_config_error(wrong_config, "leaves layer 2 with 2 query heads but the stage's config has 3");
  pb::Report no_teacher_config = three_stage_report();
  no_teacher_config.mutable_stages(0)->clear_config();
  expect_config_error(no_teacher_config, "has no model config");
}

TEST(ReportSvg, KeptUnitsChartShowsRemovedLayersBinsAndLegend) {
  const pb::Report r = three_stage_report();
  const std::string svg = kept_units_svg(r);
  // Two removed layers, hatched over both panels, plus the legend swatch.
  EXPECT_EQ(count_of(svg, "fill=\"url(#removed-layer)\""), 5u);
  EXPECT_EQ(count_of(svg, "removed by depth"), 2u);
  EXPECT_NE(svg.find(">heads 4/8, MLP 4/16</text>"), std::string::npos);
  EXPECT_NE(svg.find(">heads 2/8, MLP 4/16</text>"), std::string::npos);
  EXPECT_NE(svg.find(">teacher only</text>"), std::string::npos);
  EXPECT_NE(svg.find(">through attn-width</text>"), std::string::npos);
  EXPECT_NE(svg.find(">kept to the end: depth</text>"), std::string::npos);
  EXPECT_EQ(svg.find("per bin"), std::string::npos);  // 16 channels: one column each

  // A wide teacher: 1024 channels are shown in 64 bins of 16.
  pb::Report wide;
  *wide.add_stages()->mutable_config() = config({{8, 8, 1024}, {8, 8, 1024}});
  pb::StageRow* s1 = wide.add_stages();
  s1->set_name("mlp");
  pb::PrunePlan* p = s1->mutable_plan();
  for (int l = 0; l < 2; ++l) {
    pb::LayerPlan* lp = p->add_layers();
    lp->set_keep_all_mlp(false);
    for (int j = 0; j < 1024; j += 4) lp->add_kept_mlp(j);
  }
  const std::string wide_svg = kept_units_svg(wide);
  expect_well_formed_svg(wide_svg);
  EXPECT_NE(wide_svg.find("16 per bin"), std::string::npos);
  EXPECT_NE(wide_svg.find(">heads 8/8, MLP 256/1,024</text>"), std::string::npos);
}

// ---------------------------------------------------------------------------------------

TEST(ReportJson, WriteReportThenReadReportRoundTrips) {
  const std::string dir = temp_dir("roundtrip") + "/nested";
  const pb::Report r = three_stage_report();
  write_report(dir, r);
  for (const char* name : {"report.json", "report.md", "quality_vs_params.svg", "kept_units.svg", "curves.svg"}) {
    const std::filesystem::path p = std::filesystem::path(dir) / name;
    ASSERT_TRUE(std::filesystem::exists(p)) << p;
    EXPECT_GT(std::filesystem::file_size(p), 100u) << p;
  }
  std::size_t leftovers = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp.") != std::string::npos) ++leftovers;
  EXPECT_EQ(leftovers, 0u);
  const pb::Report back = read_report(dir);
  EXPECT_TRUE(MessageDifferencer::Equals(r, back));
  // Writing again replaces the files.
  pb::Report changed = r;
  changed.set_seed(7);
  write_report(dir, changed);
  EXPECT_EQ(read_report(dir).seed(), 7u);
  std::filesystem::remove_all(std::filesystem::path(dir).parent_path());
}

TEST(ReportJson, ReadReportErrorsNameTheFile) {
  const std::string dir = temp_dir("missing");
  try {
    read_report(dir);
    ADD_FAILURE() << "read a missing report";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find(dir + "/report.json"), std::string::npos) << e.what();
  }
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/report.json") << "{\"stages\": [";
  try {
    read_report(dir);
    ADD_FAILURE() << "read a truncated report";
  } catch (const IoError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(dir + "/report.json: ", 0), 0u) << e.what();
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace prunerec::prune
