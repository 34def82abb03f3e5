// Note [catalogue bench]: `prunerec bench --preset catalogue --items N[,N...] --loss
// full|sampled|gbce [--json]` measures, per catalogue size N, on a fixed small model
// (width 64, 2 layers, 2 heads, max_len 50, tied output) and SyntheticCatalogue data:
//   train_positions_per_s   median over --steps steps after --warmup, with the chosen loss
//                           (sampled/gbce: --negatives uniform negatives, lazy AdamW rows);
//   eval_users_per_s        full ranking of --eval-users users (blocked target ranks,
//                           recsys/eval/blocked_ranking.h), median of --eval-reps;
//   eval_table_gbps         the f32 item table's bytes / the time of one evaluation batch
//                           (it is read once per batch);
//   top10_ms_f32/bf16       top-10 for one user (its last hidden state + a blocked pass
//                           over the table), median; top10_table_gbps = table bytes / time;
//   peak_rss_mb             VmHWM of this process, reset before each N (/proc/self/clear_refs);
//   train_peak_rss_mb       the same right after training, before the serving tables;
//   state_mb                parameters + optimizer state (two moments, lazy row steps);
//   bytes_per_item          peak RSS / N, and state bytes per item;
//   read_bandwidth_gbps     a STREAM-like read (sum of a 512 MiB array, all threads, best
//                           of 3), measured once per run before the first N.
// The machine is shared: the numbers come with the load average at the start.
#include "apps/bench_catalogue.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <sstream>

#include "apps/cli.h"
#include "base/json.h"
#include "nn/optim.h"
#include "nn/transformer.h"
#include "recsys/catalogue_loss.h"
#include "recsys/data/synthetic.h"
#include "recsys/eval/blocked_ranking.h"
#include "tensor/kernels/math.h"
#include "recsys/measure.h"
#include "tensor/parallel.h"

namespace prunerec::apps {
namespace {

using recsys::Clock;
using recsys::median;
using recsys::peak_rss_mb;
using recsys::reset_peak_rss;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

// STREAM-like read bandwidth: sum a 512 MiB float array split over the threads.
double read_bandwidth_gbps() {
  const std::int64_t n = std::int64_t{128} << 20;
  std::vector<float> a(static_cast<std::size_t>(n), 1.0f);
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = Clock::now();
    const std::int64_t parts = 64;
    std::vector<float> partial(parts);
    parallel_for(0, parts, 1, [&](std::int64_t lo, std::int64_t hi) {
      for (std::int64_t p = lo; p < hi; ++p) partial[p] = kernels::lane_sum(a.data() + p * (n / parts), n / parts);
    });
    const double s = seconds_since(t0);
    volatile float sink = partial[0];
    (void)sink;
    best = std::max(best, static_cast<double>(n) * sizeof(float) / s / 1e9);
  }
  return best;
}

pb::ModelConfig bench_model(std::int64_t items) {
  pb::ModelConfig m;
  m.set_name("bench-catalogue");
  m.set_vocab_size(static_cast<std::int32_t>(items));
  m.set_hidden(64);
  m.set_head_dim(32);
  m.set_rope_theta(10000.0);
  m.set_norm_eps(1e-6);
  m.set_tie_embeddings(true);
  m.set_max_len(50);
  m.set_init_std(0.02);
  m.set_num_layers(2);
  pb::LayerConfig* layer = m.mutable_layer_defaults();
  layer->set_num_heads(2);
  layer->set_num_kv_heads(2);
  layer->set_mlp_width(256);
  return m;
}

// A training batch from users [u0, u0 + B): each row the last max_len + 1 items of a
// user's sequence, inputs left-padded, targets the next items.
recsys::Batch make_batch(const recsys::SyntheticCatalogue& cat, std::int32_t u0, std::int64_t B, std::int64_t T) {
  recsys::Batch b;
  b.ids = Tensor::full({B, T}, -1.0, DType::i32);
  b.targets = Tensor::full({B, T}, -1.0, DType::i32);
  b.pads = Tensor::zeros({B}, DType::i32);
  for (std::int64_t r = 0; r < B; ++r) {
    auto seq = cat.sequence(static_cast<std::int32_t>((u0 + r) % cat.users()));
    if (static_cast<std::int64_t>(seq.size()) > T + 1) seq.erase(seq.begin(), seq.end() - (T + 1));
    const std::int64_t n = static_cast<std::int64_t>(seq.size()) - 1, pad = T - n;
    b.pads.data<std::int32_t>()[r] = static_cast<std::int32_t>(pad);
    for (std::int64_t t = 0; t < n; ++t) {
      b.ids.data<std::int32_t>()[r * T + pad + t] = seq[t];
      b.targets.data<std::int32_t>()[r * T + pad + t] = seq[t + 1];
    }
    b.positions += n;
  }
  return b;
}

struct Row {
  std::int64_t items = 0;
  double train_positions_per_s = 0, train_step_ms = 0, eval_users_per_s = 0, eval_table_gbps = 0;
  double top10_ms_f32 = 0, top10_ms_bf16 = 0, top10_gbps_f32 = 0, top10_gbps_bf16 = 0;
  double peak_rss_mb = 0, train_peak_rss_mb = 0, state_mb = 0;
  bool top10_bf16_same = false;
};

}  // namespace

bool is_catalogue_preset(const std::vector<std::string>& args) {
  for (std::size_t i = 0; i < args.size(); ++i)
    if ((args[i] == "--preset" && i + 1 < args.size() && args[i + 1] == "catalogue") || args[i] == "--preset=catalogue")
      return true;
  return false;
}

int cmd_bench_catalogue(const std::vector<std::string>& args) {
  cli::Flags flags("bench",
                   "Cost against the catalogue size (Note [catalogue bench] in apps/bench_catalogue.cc): training "
                   "positions/s, evaluation users/s, top-10 latency for one user, peak RSS and bytes per item, with "
                   "the machine's read bandwidth.",
                   "prunerec bench --preset catalogue --items 10000,100000,1000000 --loss sampled --json");
  std::string preset, items_list = "10000,100000,1000000", loss = "sampled";
  int steps = 5, warmup = 2, eval_reps = 3, latency_reps = 9, batch = 64, negatives = 1024, threads = 0;
  std::int64_t eval_users = 256;
  std::uint64_t seed = 1;
  bool json = false;
  flags.add("preset", &preset, "catalogue");
  flags.add("items", &items_list, "catalogue sizes, comma-separated");
  flags.add("loss", &loss, "full, sampled or gbce");
  flags.add("negatives", &negatives, "negatives per step (sampled, gbce)");
  flags.add("batch", &batch, "sequences per training step (max_len 50)");
  flags.add("steps", &steps, "timed training steps (median)");
  flags.add("warmup", &warmup, "untimed training steps first");
  flags.add("eval-users", &eval_users, "users per evaluation batch");
  flags.add("eval-reps", &eval_reps, "timed evaluation batches (median)");
  flags.add("latency-reps", &latency_reps, "timed one-user top-10 queries (median)");
  flags.add("threads", &threads, "worker threads (default: all cores, or $PRUNEREC_THREADS)");
  flags.add("seed", &seed, "seed of the model, the data and the negatives");
  flags.add_switch("json", &json, "print one JSON object instead of the table");
  flags.parse(args);
  std::vector<std::int64_t> sizes;
  {
    std::stringstream ss(items_list);
    std::string part;
    while (std::getline(ss, part, ',')) {
      char* end = nullptr;
      const long long v = std::strtoll(part.c_str(), &end, 10);
      if (part.empty() || *end != '\0' || v < 100 || v > 100000000)
        throw cli::UsageError("bench: --items takes sizes from 100 to 100000000 separated by commas, got '" + items_list + "'");
      sizes.push_back(v);
    }
  }
  pb::LossConfig loss_config;
  if (loss == "full") loss_config.set_kind(pb::LossConfig::FULL);
  else if (loss == "sampled") loss_config.set_kind(pb::LossConfig::SAMPLED);
  else if (loss == "gbce") loss_config.set_kind(pb::LossConfig::GBCE);
  else throw cli::UsageError("bench: --loss must be full, sampled or gbce, got '" + loss + "'");
  if (steps < 1 || warmup < 0 || eval_reps < 1 || latency_reps < 1 || batch < 1 || negatives < 1 || eval_users < 1)
    throw cli::UsageError("bench: --steps, --eval-reps, --latency-reps, --batch, --negatives and --eval-users must be >= 1");
  loss_config.set_negatives(negatives);
  if (threads > 0) set_num_threads(threads);

  const std::string load = load_average();
  const double bandwidth = read_bandwidth_gbps();
  std::vector<Row> rows;
  constexpr std::int64_t T = 50;
  for (std::int64_t N : sizes) {
    reset_peak_rss();
    Row row;
    row.items = N;
    const recsys::SyntheticCatalogue cat({.users = 100000, .items = static_cast<std::int32_t>(N),
                                          .clusters = static_cast<std::int32_t>(std::max<std::int64_t>(10, N / 1000)),
                                          .mean_length = 30, .seed = seed});
    nn::Transformer net(bench_model(N), DType::f32, seed);
    const recsys::LossFn loss_fn = recsys::catalogue_loss(loss_config, N, {}, seed);
    nn::AdamWOptions adamw;
    adamw.weight_decay = 0.01;
    adamw.lazy_rows = recsys::loss_samples(loss_config, N);
    nn::AdamW opt(net, adamw);
    std::vector<double> step_s;
    std::int64_t positions = 0;
    for (int s = 0; s < warmup + steps; ++s) {
      const recsys::Batch b = make_batch(cat, s * batch, batch, T);
      const auto t0 = Clock::now();
      net.zero_grad();
      nn::ForwardOptions fo;
      fo.seed = seed;
      fo.step = static_cast<std::uint64_t>(s);
      ag::Var l = loss_fn(net, b, fo);
      l.backward();
      opt.clip_and_step(1e-3, 1.0);
      net.zero_grad();
      if (s >= warmup) {
        step_s.push_back(seconds_since(t0));
        positions += b.positions;
      }
    }
    row.train_peak_rss_mb = peak_rss_mb();  // before the serving tables
    row.train_step_ms = median(step_s) * 1e3;
    row.train_positions_per_s = static_cast<double>(positions) / steps / median(step_s);
    // Evaluation: blocked target ranks of eval_users users, history excluded.
    const recsys::ServingTable f32(net.output_weight().value(), recsys::TableFormat::kF32);
    std::vector<double> eval_s;
    for (int rep = 0; rep < eval_reps; ++rep) {
      const recsys::Batch b = make_batch(cat, 50000 + rep * static_cast<std::int32_t>(eval_users), eval_users, T);
      std::vector<std::int32_t> targets;
      std::vector<std::vector<std::int32_t>> histories(static_cast<std::size_t>(eval_users));
      for (std::int64_t r = 0; r < eval_users; ++r) {
        const std::int32_t* tr = b.targets.data<std::int32_t>() + r * T;
        targets.push_back(tr[T - 1]);
        const std::int32_t* ir = b.ids.data<std::int32_t>() + r * T;
        for (std::int64_t t = 0; t < T; ++t)
          if (ir[t] >= 0) histories[r].push_back(ir[t]);
      }
      const auto t0 = Clock::now();
      Tensor h;
      {
        ag::NoGradGuard ng;
        h = net.last_hidden(b.ids, b.pads);
      }
      const auto ranks = recsys::blocked_target_ranks(h, f32, targets, histories);
      eval_s.push_back(seconds_since(t0));
    }
    row.eval_users_per_s = static_cast<double>(eval_users) / median(eval_s);
    row.eval_table_gbps = static_cast<double>(f32.bytes()) / median(eval_s) / 1e9;
    // One user's top-10, f32 and bf16 tables.
    const recsys::ServingTable bf16(net.output_weight().value(), recsys::TableFormat::kBf16);
    std::vector<double> lat_f32, lat_bf16;
    int same = 0;
    for (int rep = 0; rep < latency_reps; ++rep) {
      const recsys::Batch b = make_batch(cat, 90000 + rep, 1, T);
      std::vector<std::vector<std::int32_t>> history(1);
      for (std::int64_t t = 0; t < T; ++t)
        if (b.ids.data<std::int32_t>()[t] >= 0) history[0].push_back(b.ids.data<std::int32_t>()[t]);
      std::vector<recsys::TopK> tops;
      for (const recsys::ServingTable* table : {&f32, &bf16}) {
        const auto t0 = Clock::now();
        Tensor h;
        {
          ag::NoGradGuard ng;
          h = net.last_hidden(b.ids, b.pads);
        }
        tops.push_back(recsys::blocked_top_k(h, *table, 10, history)[0]);
        (table == &f32 ? lat_f32 : lat_bf16).push_back(seconds_since(t0));
      }
      same += tops[0].items == tops[1].items;
    }
    row.top10_ms_f32 = median(lat_f32) * 1e3;
    row.top10_ms_bf16 = median(lat_bf16) * 1e3;
    row.top10_gbps_f32 = static_cast<double>(f32.bytes()) / median(lat_f32) / 1e9;
    row.top10_gbps_bf16 = static_cast<double>(bf16.bytes()) / median(lat_bf16) / 1e9;
    row.top10_bf16_same = same == latency_reps;
    row.peak_rss_mb = peak_rss_mb();
    double state = static_cast<double>(net.num_parameters()) * 4 * 3;  // weights + two moments
    for (const auto& [name, st] : opt.state())
      if (st.row_step.defined()) state += static_cast<double>(st.row_step.numel()) * 8;
    row.state_mb = state / (1024.0 * 1024.0);
    rows.push_back(row);
    if (!json)
      std::cerr << "catalogue " << N << ": " << row.train_positions_per_s << " positions/s, " << row.eval_users_per_s
                << " users/s, top-10 " << row.top10_ms_f32 << " ms, peak RSS " << row.peak_rss_mb << " MB\n";
  }

  if (json) {
    Json j;
    j.begin_object().key("command").value("bench").key("preset").value("catalogue").key("loss").value(loss);
    j.key("negatives").value(negatives).key("batch").value(batch).key("max_len").value(static_cast<int>(T));
    j.key("threads").value(static_cast<std::int64_t>(num_threads())).key("load_average").value(load);
    j.key("read_bandwidth_gbps").value(bandwidth).key("rows").begin_array();
    for (const Row& r : rows) {
      j.begin_object()
          .key("items").value(r.items)
          .key("train_positions_per_s").value(r.train_positions_per_s)
          .key("train_step_ms").value(r.train_step_ms)
          .key("eval_users_per_s").value(r.eval_users_per_s)
          .key("eval_table_gbps").value(r.eval_table_gbps)
          .key("eval_bandwidth_fraction").value(r.eval_table_gbps / bandwidth)
          .key("top10_ms_f32").value(r.top10_ms_f32)
          .key("top10_ms_bf16").value(r.top10_ms_bf16)
          .key("top10_table_gbps_f32").value(r.top10_gbps_f32)
          .key("top10_table_gbps_bf16").value(r.top10_gbps_bf16)
          .key("top10_bf16_equals_f32").value(r.top10_bf16_same)
          .key("peak_rss_mb").value(r.peak_rss_mb)
          .key("train_peak_rss_mb").value(r.train_peak_rss_mb)
          .key("state_mb").value(r.state_mb)
          .key("train_rss_over_state").value(r.train_peak_rss_mb / r.state_mb)
          .key("bytes_per_item").value(r.peak_rss_mb * 1024 * 1024 / static_cast<double>(r.items))
          .key("state_bytes_per_item").value(r.state_mb * 1024 * 1024 / static_cast<double>(r.items))
          .end_object();
    }
    j.end_array().end_object();
    std::cout << j.str() << "\n";
  } else {
    std::cout << "catalogue bench, loss " << loss << ", read bandwidth " << bandwidth << " GB/s, load " << load << "\n";
    std::cout << "items  pos/s  users/s  eval GB/s  top10 ms f32/bf16  peak RSS MB  state MB\n";
    for (const Row& r : rows)
      std::cout << r.items << "  " << r.train_positions_per_s << "  " << r.eval_users_per_s << "  " << r.eval_table_gbps
                << "  " << r.top10_ms_f32 << "/" << r.top10_ms_bf16 << "  " << r.peak_rss_mb << "  " << r.state_mb << "\n";
  }
  return 0;
}

}  // namespace prunerec::apps
