// prunerec forward: a model's logits for one token sequence, as JSON, for checking the
// engine against other implementations (tools/make_hf_fixtures.py writes such checks).
#include <charconv>
#include <iostream>

#include "apps/cli.h"
#include "apps/commands.h"
#include "autograd/var.h"
#include "base/json.h"
#include "nn/checkpoint.h"

namespace prunerec::apps {
namespace {

// "1 2 3" or "1,2,3": token ids, each in [0, vocab).
std::vector<std::int32_t> parse_ids(const std::string& text, std::int64_t vocab, const char* flag) {
  std::vector<std::int32_t> ids;
  std::size_t i = 0;
  while (i < text.size()) {
    if (text[i] == ' ' || text[i] == ',' || text[i] == '\t' || text[i] == '\n') {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < text.size() && text[j] != ' ' && text[j] != ',' && text[j] != '\t' && text[j] != '\n') ++j;
    std::int64_t v = -1;
    const auto [end, ec] = std::from_chars(text.data() + i, text.data() + j, v);
    if (ec != std::errc() || end != text.data() + j || v < 0 || v >= vocab)
      throw cli::UsageError(detail::str_cat("--", flag, ": '", text.substr(i, j - i), "' is not a token id in [0, ",
                                            vocab, ")"));
    ids.push_back(static_cast<std::int32_t>(v));
    i = j;
  }
  if (ids.empty()) throw cli::UsageError(detail::str_cat("--", flag, ": no token ids given"));
  return ids;
}

}  // namespace

int cmd_forward(const Args& args) {
  cli::Flags flags("forward",
                   "Print a model's logits for one token sequence as JSON {\"vocab_size\", \"positions\", "
                   "\"logits\": [[...], ...]}: the last position's row, or every position's with --all-positions. "
                   "No padding, positions count from 0.",
                   "prunerec forward --model runs/qwen2.prc --token-ids \"9707 11 1879\" --json");
  std::string model_path, ids_text;
  bool all_positions = false, json = false;
  flags.add("model", &model_path, "model file", cli::Flags::kRequired);
  flags.add("token-ids", &ids_text, "token ids, separated by spaces or commas", cli::Flags::kRequired);
  flags.add_switch("all-positions", &all_positions, "print the logits of every position, not only the last");
  flags.add_switch("json", &json, "print JSON (the only output format; accepted for symmetry)");
  flags.parse(args);

  const nn::LoadedModel m = nn::load_model(model_path, {.mmap = true, .with_optimizer = false});
  const nn::Transformer& net = *m.model;
  const std::vector<std::int32_t> ids = parse_ids(ids_text, net.vocab_size(), "token-ids");
  const auto T = static_cast<std::int64_t>(ids.size());
  const Tensor batch = Tensor::from_vector(ids, {1, T});
  const Tensor pads = Tensor::zeros({1}, DType::i32);

  ag::NoGradGuard no_grad;
  Tensor logits;  // [rows, V]
  if (all_positions) {
    logits = net.logits(net.hidden(batch, pads)).value().reshape({T, net.vocab_size()});
  } else {
    logits = net.logits(ag::Var(net.last_hidden(batch, pads))).value();
  }
  const Tensor l = logits.to(DType::f32).contiguous();
  const std::int64_t rows = l.size(0), V = l.size(1);
  const float* p = l.data<float>();
  Json j;
  j.begin_object().key("vocab_size").value(V).key("positions").begin_array();
  for (std::int64_t r = 0; r < rows; ++r) j.value(all_positions ? r : T - 1);
  j.end_array().key("logits").begin_array();
  for (std::int64_t r = 0; r < rows; ++r) {
    j.begin_array();
    for (std::int64_t v = 0; v < V; ++v) j.value(static_cast<double>(p[r * V + v]));
    j.end_array();
  }
  j.end_array().end_object();
  std::cout << j.str() << "\n";
  return 0;
}

}  // namespace prunerec::apps
