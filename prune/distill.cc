#include "prune/distill.h"

namespace prunerec::prune {

recsys::LossFn distillation_loss(const nn::Transformer& teacher, double alpha, double temperature) {
  PR_CHECK_T(ConfigError, alpha >= 0 && alpha <= 1 && temperature > 0, "distillation: alpha ", alpha,
             " must be in [0, 1] and temperature ", temperature, " positive");
  return [&teacher, alpha, temperature](const nn::Transformer& student, const recsys::Batch& b,
                                        const nn::ForwardOptions& fo) {
    PR_CHECK(student.vocab_size() == teacher.vocab_size(), "distillation: student scores ", student.vocab_size(),
             " items, teacher ", teacher.vocab_size());
    const std::int64_t N = b.ids.numel();
    Tensor teacher_h;
    {
      ag::NoGradGuard no_grad;
      teacher_h = teacher.hidden(b.ids, b.pads).value().reshape({N, teacher.hidden_size()});
    }
    const ag::Var h = student.hidden(b.ids, b.pads, fo);
    return ag::linear_distill_loss(ag::reshape(h, {N, student.hidden_size()}), student.output_weight(), teacher_h,
                                   teacher.output_weight().value(), b.targets.reshape({N}), alpha, temperature);
  };
}

}  // namespace prunerec::prune
