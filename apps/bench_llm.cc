#include "apps/bench_llm.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <vector>

#include "autograd/var.h"
#include "base/json.h"
#include "nn/kv_cache.h"
#include "tensor/parallel.h"
#include "tensor/rng.h"

namespace prunerec::apps {
namespace {

constexpr int kPromptLen = 256, kNewTokens = 32, kPromptReps = 3;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];  // odd counts here (3 prompt passes, 31 or 32 steps: upper middle)
}

std::int32_t argmax_row(const Tensor& logits) {
  const float* p = logits.data<float>();
  return static_cast<std::int32_t>(std::max_element(p, p + logits.size(1)) - p);
}

// The yardstick's one JSON line, or "" when it is not configured or fails.
std::string run_torch(int threads) {
  const char* script = std::getenv("PRUNEREC_TORCH_LLM");
  if (!script || !*script) return "";
  const std::string cmd = "/usr/bin/python3 '" + std::string(script) + "' --threads " + std::to_string(threads) +
                          " --prompt-len " + std::to_string(kPromptLen) + " --new-tokens " + std::to_string(kNewTokens) +
                          " --reps " + std::to_string(kPromptReps) + " 2>/dev/null";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(cmd.c_str(), "r"), ::pclose);
  if (!pipe) return "";
  std::string out;
  std::array<char, 4096> buf{};
  while (std::fgets(buf.data(), buf.size(), pipe.get())) out += buf.data();
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out.rfind('{', 0) == 0 ? out : "";
}

}  // namespace

int bench_llm_preset(int threads, std::uint64_t seed, bool json) {
  if (threads > 0) set_num_threads(threads);
  pb::ModelConfig c;
  c.set_name("qwen2-0.5b-shape");
  c.set_vocab_size(151936);
  c.set_hidden(896);
  c.set_head_dim(64);
  c.set_rope_theta(1e6);
  c.set_norm_eps(1e-6);
  c.set_max_len(32768);
  c.set_num_layers(24);
  c.mutable_layer_defaults()->set_num_heads(14);
  c.mutable_layer_defaults()->set_num_kv_heads(2);
  c.mutable_layer_defaults()->set_mlp_width(4864);
  const nn::Transformer net(c, DType::f32, seed);

  Rng rng(seed, /*stream=*/1);  // token ids only; the timing does not depend on them
  std::vector<std::int32_t> prompt(kPromptLen);
  for (auto& t : prompt) t = static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(net.vocab_size())));
  const Tensor ids = Tensor::from_vector(prompt, {1, kPromptLen});
  using Clock = std::chrono::steady_clock;
  auto seconds = [](Clock::time_point a) { return std::chrono::duration<double>(Clock::now() - a).count(); };

  ag::NoGradGuard no_grad;
  { nn::KVCache warm; warm.prefill(net, ids.narrow(1, 0, 8).contiguous()); }
  std::vector<double> prompt_s;
  nn::KVCache cache;
  Tensor logits;
  for (int r = 0; r < kPromptReps; ++r) {
    cache = nn::KVCache();
    const auto t0 = Clock::now();
    logits = net.logits(ag::Var(cache.prefill(net, ids))).value();
    prompt_s.push_back(seconds(t0));
  }
  std::vector<double> step_s;
  std::int32_t next = argmax_row(logits);
  for (int i = 0; i < kNewTokens; ++i) {
    const auto t0 = Clock::now();
    logits = net.logits(ag::Var(cache.step(net, Tensor::from_vector(std::vector<std::int32_t>{next})))).value();
    next = argmax_row(logits);
    step_s.push_back(seconds(t0));
  }
  const double p = median(prompt_s), s = median(step_s);
  const std::string torch = run_torch(num_threads());

  if (json) {
    Json j;
    j.begin_object().key("preset").value("qwen2-0.5b").key("threads").value(num_threads());
    j.key("params").value(net.num_parameters()).key("batch").value(1).key("prompt_len").value(kPromptLen);
    j.key("new_tokens").value(kNewTokens).key("prompt_ms").value(p * 1e3).key("prompt_tokens_per_s").value(kPromptLen / p);
    j.key("decode_ms_per_step").value(s * 1e3).key("decode_tokens_per_s").value(1.0 / s);
    if (!torch.empty()) j.key("torch").raw(torch);
    j.end_object();
    std::cout << j.str() << "\n";
    return 0;
  }
  std::cout << "qwen2-0.5b shape (" << net.num_parameters() << " parameters, random weights), " << num_threads()
            << " threads, batch 1\n"
            << "  prunerec: prompt " << kPromptLen << " tokens " << p * 1e3 << " ms (" << kPromptLen / p
            << " tokens/s); decode " << s * 1e3 << " ms per token (KV cache, median of " << kNewTokens << ")\n";
  if (torch.empty())
    std::cout << "  torch: not run (set PRUNEREC_TORCH_LLM to /work/shared/reference/torch_llm_forward.py)\n";
  else
    std::cout << "  torch: " << torch << "\n";
  return 0;
}

}  // namespace prunerec::apps
