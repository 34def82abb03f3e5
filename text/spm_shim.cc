// The C boundary to Debian's libsentencepiece (Note [SentencePiece isolation] in
// text/sentencepiece.cc). Built into its own shared object, linked against
// libsentencepiece and libsentencepiece_train but never against libprotobuf, and loaded
// by text/sentencepiece.cc with dlmopen(LM_ID_NEWLM) into a namespace with its own libc.
// Only plain C types cross this boundary; no exception leaves it (errors are returned as
// malloc'ed strings); everything returned is freed with prunerec_spm_free.
#include <cstdint>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

// Exported by libsentencepiece (src/common.h, not an installed header): the level below
// which its LOG() lines are dropped. The --minloglevel flag sets it too, but only once the
// flags are parsed, after Train has logged "Running command: ..." at INFO.
namespace sentencepiece::logging {
int GetMinLogLevel();
void SetMinLogLevel(int v);
}  // namespace sentencepiece::logging

namespace {

char* dup_string(std::string_view s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (p == nullptr) return nullptr;
  std::memcpy(p, s.data(), s.size());
  p[s.size()] = '\0';
  return p;
}

// Stores an error message in *err (if err is given); returns -1.
int fail(char** err, std::string_view message) {
  if (err != nullptr) *err = dup_string(message);
  return -1;
}

class Sentences : public sentencepiece::SentenceIterator {
 public:
  Sentences(const char* const* s, const std::size_t* lengths, std::size_t n) : s_(s), lengths_(lengths), n_(n) {
    load();
  }
  bool done() const override { return i_ >= n_; }
  void Next() override {
    ++i_;
    load();
  }
  const std::string& value() const override { return value_; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  void load() {
    if (i_ < n_) value_.assign(s_[i_], lengths_[i_]);
  }
  const char* const* s_;
  const std::size_t* lengths_;
  std::size_t n_, i_ = 0;
  std::string value_;
};

}  // namespace

extern "C" {

__attribute__((visibility("default"))) int prunerec_spm_abi_version() { return 1; }

__attribute__((visibility("default"))) void prunerec_spm_free(void* p) { std::free(p); }

// A processor from a serialized ModelProto; nullptr and *err on failure.
__attribute__((visibility("default"))) void* prunerec_spm_load(const char* bytes, std::size_t size, char** err) {
  try {
    auto* sp = new sentencepiece::SentencePieceProcessor();
    const auto status = sp->LoadFromSerializedProto(std::string_view(bytes, size));
    if (!status.ok()) {
      fail(err, status.ToString());
      delete sp;
      return nullptr;
    }
    return sp;
  } catch (const std::exception& e) {
    fail(err, e.what());
    return nullptr;
  }
}

__attribute__((visibility("default"))) void prunerec_spm_destroy(void* sp) {
  delete static_cast<sentencepiece::SentencePieceProcessor*>(sp);
}

// Piece count, and the unk/bos/eos/pad ids (-1 when the model has none) in ids[0..3].
__attribute__((visibility("default"))) int prunerec_spm_info(void* handle, std::int32_t* ids) {
  const auto* sp = static_cast<const sentencepiece::SentencePieceProcessor*>(handle);
  ids[0] = sp->unk_id();
  ids[1] = sp->bos_id();
  ids[2] = sp->eos_id();
  ids[3] = sp->pad_id();
  return sp->GetPieceSize();
}

// The piece of an id (malloc'ed, NUL-terminated) and its kind: 0 normal, 1 unknown,
// 2 control, 4 byte, 5 unused (0.1.97 has no IsUserDefined: user-defined pieces are 0).
__attribute__((visibility("default"))) char* prunerec_spm_piece(void* handle, std::int32_t id, int* kind) {
  const auto* sp = static_cast<const sentencepiece::SentencePieceProcessor*>(handle);
  *kind = sp->IsUnknown(id) ? 1 : sp->IsControl(id) ? 2 : sp->IsByte(id) ? 4 : sp->IsUnused(id) ? 5 : 0;
  return dup_string(sp->IdToPiece(id));
}

// Ids of text: *out (malloc'ed) with *n ids; 0, or -1 and *err.
__attribute__((visibility("default"))) int prunerec_spm_encode(void* handle, const char* text, std::size_t size,
                                                               std::int32_t** out, std::size_t* n, char** err) {
  try {
    const auto* sp = static_cast<const sentencepiece::SentencePieceProcessor*>(handle);
    std::vector<int> ids;
    const auto status = sp->Encode(std::string_view(text, size), &ids);
    if (!status.ok()) return fail(err, status.ToString());
    *n = ids.size();
    *out = static_cast<std::int32_t*>(std::malloc(std::max<std::size_t>(ids.size(), 1) * sizeof(std::int32_t)));
    if (*out == nullptr) return fail(err, "out of memory");
    for (std::size_t i = 0; i < ids.size(); ++i) (*out)[i] = ids[i];
    return 0;
  } catch (const std::exception& e) {
    return fail(err, e.what());
  }
}

// Text of ids: *out (malloc'ed) of *size bytes; 0, or -1 and *err.
__attribute__((visibility("default"))) int prunerec_spm_decode(void* handle, const std::int32_t* ids, std::size_t n,
                                                               char** out, std::size_t* size, char** err) {
  try {
    const auto* sp = static_cast<const sentencepiece::SentencePieceProcessor*>(handle);
    std::string text;
    const auto status = sp->Decode(std::vector<int>(ids, ids + n), &text);
    if (!status.ok()) return fail(err, status.ToString());
    *out = dup_string(text);
    if (*out == nullptr) return fail(err, "out of memory");
    *size = text.size();
    return 0;
  } catch (const std::exception& e) {
    return fail(err, e.what());
  }
}

// Trains a model on n strings with a SentencePieceTrainer flag string (e.g.
// "--vocab_size=100 --model_type=unigram"); the serialized model in *out (malloc'ed,
// *size bytes). 0, or -1 and *err.
__attribute__((visibility("default"))) int prunerec_spm_train(const char* args, const char* const* sentences,
                                                              const std::size_t* lengths, std::size_t n, char** out,
                                                              std::size_t* size, char** err) {
  try {
    Sentences it(sentences, lengths, n);
    std::string model;
    // INFO (0) off for the call, as --minloglevel=1 asks, then the library's level back.
    // The library lives in this module's own link namespace (dlmopen), so nothing of the
    // host's changes.
    const int level = sentencepiece::logging::GetMinLogLevel();
    sentencepiece::logging::SetMinLogLevel(std::max(level, 1));
    const auto status = sentencepiece::SentencePieceTrainer::Train(std::string_view(args), &it, &model);
    sentencepiece::logging::SetMinLogLevel(level);
    if (!status.ok()) return fail(err, status.ToString());
    *out = static_cast<char*>(std::malloc(std::max<std::size_t>(model.size(), 1)));
    if (*out == nullptr) return fail(err, "out of memory");
    std::memcpy(*out, model.data(), model.size());
    *size = model.size();
    return 0;
  } catch (const std::exception& e) {
    return fail(err, e.what());
  }
}

}  // extern "C"
