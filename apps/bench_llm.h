// `prunerec bench --preset qwen2-0.5b`: forward-only LLM speed at Qwen2-0.5B's shape
// (paper-spec 2.1; random weights): a 256-token prompt pass and per-token decoding with
// nn::KVCache, next to the plain-PyTorch yardstick run in the same invocation when
// $PRUNEREC_TORCH_LLM points at /work/shared/reference/torch_llm_forward.py (run with
// Debian's /usr/bin/python3 and the same thread count).
#pragma once

#include <cstdint>

namespace prunerec::apps {

// Prints a table, or one JSON object with `json`; returns the exit code.
int bench_llm_preset(int threads, std::uint64_t seed, bool json);

}  // namespace prunerec::apps
