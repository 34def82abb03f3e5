#include "prune/title_distill.h"

#include <numeric>

#include "autograd/ops.h"
#include "base/error.h"

namespace prunerec::prune {
namespace {

// h [B,T,d] -> the target rows' states [N, d] (every row when kept.all).
ag::Var rows_of(const ag::Var& h, const nn::TargetRows& kept, std::int64_t d) {
  const ag::Var flat = ag::reshape(h, {h.value().numel() / d, d});
  return kept.all ? flat : ag::embedding(flat, kept.rows);
}

}  // namespace

recsys::TitleLossFn title_distillation_loss(const nn::Transformer& teacher, double alpha, double temperature) {
  PR_CHECK_T(ConfigError, alpha >= 0 && alpha <= 1 && temperature > 0, "title distillation: alpha ", alpha,
             " must be in [0, 1] and temperature ", temperature, " positive");
  return [&teacher, alpha, temperature](const nn::Transformer& student, const recsys::TitleBatch& b,
                                        const nn::ForwardOptions& fo) {
    PR_CHECK_T(ConfigError, student.vocab_size() == teacher.vocab_size(), "title distillation: the student has ",
               student.vocab_size(), " tokens, the teacher ", teacher.vocab_size());
    const nn::TargetRows kept = nn::target_rows(b.targets);
    Tensor teacher_h;
    {
      ag::NoGradGuard no_grad;  // Note [title teacher per batch]
      teacher_h = rows_of(teacher.hidden(b.ids, b.pads), kept, teacher.hidden_size()).value().contiguous();
    }
    const ag::Var h = rows_of(student.hidden(b.ids, b.pads, fo), kept, student.hidden_size());
    return ag::linear_distill_loss(h, student.output_weight(), teacher_h, teacher.output_weight().value(), kept.targets,
                                   alpha, temperature);
  };
}

double mean_title_distillation_loss(const nn::Transformer& student, const nn::Transformer& teacher,
                                    const std::vector<recsys::TitleSequence>& sequences, double alpha,
                                    double temperature, std::int64_t batch_size) {
  PR_CHECK_T(ConfigError, !sequences.empty() && batch_size > 0, "title distillation loss: no sequences or batch size ",
             batch_size);
  const recsys::TitleLossFn loss = title_distillation_loss(teacher, alpha, temperature);
  ag::NoGradGuard no_grad;
  double sum = 0;
  std::int64_t positions = 0;
  const auto n = static_cast<std::int64_t>(sequences.size());
  for (std::int64_t lo = 0; lo < n; lo += batch_size) {
    std::vector<std::int32_t> rows(static_cast<std::size_t>(std::min(batch_size, n - lo)));
    std::iota(rows.begin(), rows.end(), static_cast<std::int32_t>(lo));
    const recsys::TitleBatch b = recsys::make_title_batch(sequences, rows);
    sum += loss(student, b, {}).value().item() * static_cast<double>(b.positions);
    positions += b.positions;
  }
  return positions > 0 ? sum / static_cast<double>(positions) : 0.0;
}

}  // namespace prunerec::prune
