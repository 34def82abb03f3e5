#include "text/sentencepiece.h"

#include <dlfcn.h>
#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>

#include "base/error.h"

// Note [SentencePiece isolation]
// Debian 12's libsentencepiece0 (0.1.97) bundles a protobuf-lite and exports its ~1,600
// symbols (google::protobuf::internal::..., the arena, the string helpers) with default
// visibility. This process also links the system libprotobuf (the checkpoint manifest).
// Linked normally, both sets enter the global symbol scope and each library's calls bind
// to the first definition, whichever library that is: the process crashes (reproduced: a
// program linked with -lsentencepiece -lprotobuf that makes one google.protobuf.Struct and
// calls SentencePieceProcessor::Load exits with SIGSEGV). dlopen(RTLD_LOCAL) alone is no
// better (SIGSEGV: its references still look in the global scope, where libprotobuf is).
// dlopen(RTLD_LOCAL | RTLD_DEEPBIND) fixes the protobuf clash but breaks libstdc++: the
// executable holds copy-relocated std::cerr/std::cout (any program that names them does),
// while a DEEPBIND library binds to libstdc++'s own, never-constructed copies, so the
// first SentencePiece log line (the trainer always writes one) crashes in
// ostream::sentry (reproduced: text_test crashed so, since gtest names std::cerr).
//
// So sentencepiece is reached only through text/spm_shim.cc, a small shared object of
// this project linked against libsentencepiece (and libsentencepiece_train) but never
// against libprotobuf, and loaded with dlmopen(LM_ID_NEWLM): a new link-map namespace
// with its own copies of the shim's dependencies (libsentencepiece, libstdc++, libc).
// Nothing in it can see libprotobuf or this process's symbols, and nothing here sees its
// bundled protobuf. Hence the boundary: only plain C types cross it (byte strings, int32
// arrays), no protobuf object, std::string or exception does, and every buffer the shim
// returns was malloc'ed by the namespace's own libc and is freed by prunerec_spm_free,
// never by this side's free. One namespace is opened per process, on first use (glibc
// allows 16).
//
// Found at, in order: $PRUNEREC_SPM_SHIM, the build tree's copy, the installed copy
// (<libdir>/prunerec/libprunerec_spm_shim.so). Under AddressSanitizer the shim's
// namespace is simply not instrumented (its libc's malloc is its own); the SentencePiece
// tests pass there too (tools/test_sanitize.sh).

namespace prunerec::text {

struct SpmLibrary {
  std::string error;  // empty when loaded
  void (*free_)(void*) = nullptr;
  void* (*load)(const char*, std::size_t, char**) = nullptr;
  void (*destroy)(void*) = nullptr;
  int (*info)(void*, std::int32_t*) = nullptr;
  char* (*piece)(void*, std::int32_t, int*) = nullptr;
  int (*encode)(void*, const char*, std::size_t, std::int32_t**, std::size_t*, char**) = nullptr;
  int (*decode)(void*, const std::int32_t*, std::size_t, char**, std::size_t*, char**) = nullptr;
  int (*train)(const char*, const char* const*, const std::size_t*, std::size_t, char**, std::size_t*,
               char**) = nullptr;
};

namespace {

template <typename F>
bool bind(void* h, const char* name, F& f, std::string& error) {
  f = reinterpret_cast<F>(dlsym(h, name));
  if (f == nullptr) error = detail::str_cat("symbol ", name, " missing");
  return f != nullptr;
}

SpmLibrary open_library() {
  SpmLibrary lib;
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("PRUNEREC_SPM_SHIM"); env != nullptr && *env != '\0') candidates.push_back(env);
  candidates.push_back(PRUNEREC_SPM_SHIM_BUILD_PATH);
  candidates.push_back(PRUNEREC_SPM_SHIM_INSTALL_PATH);
  std::string tried;
  void* h = nullptr;
  for (const std::string& path : candidates) {
    h = dlmopen(LM_ID_NEWLM, path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (h != nullptr) break;
    const char* e = dlerror();
    tried += detail::str_cat(tried.empty() ? "" : "; ", e != nullptr ? e : path.c_str());
  }
  if (h == nullptr) {
    lib.error = detail::str_cat("cannot load the SentencePiece shim (needs Debian's libsentencepiece0): ", tried);
    return lib;
  }
  int (*abi)() = nullptr;
  std::string& e = lib.error;
  if (!bind(h, "prunerec_spm_abi_version", abi, e) || !bind(h, "prunerec_spm_free", lib.free_, e) ||
      !bind(h, "prunerec_spm_load", lib.load, e) || !bind(h, "prunerec_spm_destroy", lib.destroy, e) ||
      !bind(h, "prunerec_spm_info", lib.info, e) || !bind(h, "prunerec_spm_piece", lib.piece, e) ||
      !bind(h, "prunerec_spm_encode", lib.encode, e) || !bind(h, "prunerec_spm_decode", lib.decode, e) ||
      !bind(h, "prunerec_spm_train", lib.train, e))
    return lib;
  if (abi() != 1) e = detail::str_cat("the SentencePiece shim has interface version ", abi(), ", expected 1");
  // The handle stays open for the life of the process (the library's static state).
  return lib;
}

const SpmLibrary& library() {
  static const SpmLibrary lib = open_library();
  if (!lib.error.empty()) throw IoError("SentencePiece: " + lib.error);
  return lib;
}

// Takes ownership of a malloc'ed error message from the shim.
std::string take_error(const SpmLibrary& lib, char* err) {
  std::string s = err != nullptr ? err : "unknown error";
  lib.free_(err);
  return s;
}

void check_utf8(const std::string& name, std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    utf8proc_int32_t cp = 0;
    const auto n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(text.data() + i),
                                    static_cast<utf8proc_ssize_t>(text.size() - i), &cp);
    if (n <= 0) throw ConfigError(detail::str_cat(name, ": the text is not valid UTF-8 at byte ", i));
    i += static_cast<std::size_t>(n);
  }
}

}  // namespace

bool looks_like_sentencepiece(std::string_view bytes) {
  return !bytes.empty() && bytes[0] == '\x0a';  // field 1 (repeated pieces), wire type 2
}

SentencePiece::SentencePiece(const std::string& name, std::string_view bytes) : name_(name), lib_(&library()) {
  char* err = nullptr;
  handle_ = lib_->load(bytes.data(), bytes.size(), &err);
  if (handle_ == nullptr)
    throw IoError(detail::str_cat(name_, ": not a SentencePiece model: ", take_error(*lib_, err)));
  std::int32_t ids[4];
  vocab_size_ = lib_->info(handle_, ids);
  unk_id_ = ids[0], bos_id_ = ids[1], eos_id_ = ids[2], pad_id_ = ids[3];
  is_control_.assign(static_cast<std::size_t>(vocab_size_), false);
  for (std::int32_t id = 0; id < vocab_size_; ++id) {
    int kind = 0;
    char* p = lib_->piece(handle_, id, &kind);
    std::string piece = p != nullptr ? p : "";
    lib_->free_(p);
    if (kind != 1 && kind != 2) continue;
    specials_.push_back({piece, id});
    if (kind == 2) {
      is_control_[static_cast<std::size_t>(id)] = true;
      if (!piece.empty()) controls_.push_back({std::move(piece), id});
    }
  }
  std::stable_sort(controls_.begin(), controls_.end(),
                   [](const SpecialToken& a, const SpecialToken& b) { return a.content.size() > b.content.size(); });
}

SentencePiece::~SentencePiece() {
  if (handle_ != nullptr) lib_->destroy(handle_);
}

std::vector<SpecialToken> SentencePiece::special_tokens() const { return specials_; }

// Note [SentencePiece special tokens]: sentencepiece's own Encode treats "<s>" in the text
// as three characters. To keep text/tokenizer.h's contract (special tokens written in the
// text are recognised), the text is split at occurrences of the control pieces (<s>, </s>,
// ...; longest first) and each part between them is encoded on its own, as transformers'
// legacy LlamaTokenizer does (so each part gets SentencePiece's "▁" dummy prefix). decode
// writes a control id as its piece and decodes the ids between them with sentencepiece, so
// decode(encode(s)) == s still holds for text sentencepiece itself round-trips.
std::vector<std::int32_t> SentencePiece::encode(std::string_view text) const {
  check_utf8(name_, text);
  std::vector<std::int32_t> out;
  auto encode_part = [&](std::string_view part) {
    if (part.empty()) return;
    std::int32_t* ids = nullptr;
    std::size_t n = 0;
    char* err = nullptr;
    if (lib_->encode(handle_, part.data(), part.size(), &ids, &n, &err) != 0)
      throw ConfigError(detail::str_cat(name_, ": SentencePiece could not encode the text: ", take_error(*lib_, err)));
    out.insert(out.end(), ids, ids + n);
    lib_->free_(ids);
  };
  std::size_t start = 0;
  for (std::size_t i = 0; i < text.size();) {
    const SpecialToken* hit = nullptr;
    for (const SpecialToken& t : controls_)
      if (text.substr(i, t.content.size()) == t.content) {
        hit = &t;
        break;
      }
    if (hit == nullptr) {
      ++i;
      continue;
    }
    encode_part(text.substr(start, i - start));
    out.push_back(hit->id);
    i += hit->content.size();
    start = i;
  }
  encode_part(text.substr(start));
  return out;
}

std::string SentencePiece::decode(const std::vector<std::int32_t>& ids) const {
  std::string out;
  std::vector<std::int32_t> run;
  auto flush = [&] {
    if (run.empty()) return;
    char* text = nullptr;
    std::size_t size = 0;
    char* err = nullptr;
    if (lib_->decode(handle_, run.data(), run.size(), &text, &size, &err) != 0)
      throw ConfigError(detail::str_cat(name_, ": SentencePiece could not decode: ", take_error(*lib_, err)));
    out.append(text, size);
    lib_->free_(text);
    run.clear();
  };
  for (std::int32_t id : ids) {
    if (id < 0 || id >= vocab_size_)
      throw ConfigError(detail::str_cat(name_, ": token id ", id, " is outside the vocabulary [0, ", vocab_size_, ")"));
    if (is_control_[static_cast<std::size_t>(id)]) {
      flush();
      int kind = 0;
      char* p = lib_->piece(handle_, id, &kind);
      out += p != nullptr ? p : "";
      lib_->free_(p);
    } else {
      run.push_back(id);
    }
  }
  flush();
  return out;
}

std::string train_sentencepiece(const std::vector<std::string>& sentences, const SentencePieceTrainOptions& options) {
  const SpmLibrary& lib = library();
  if (sentences.empty()) throw ConfigError("train_sentencepiece: no sentences");
  if (options.vocab_size < 4) throw ConfigError(detail::str_cat("train_sentencepiece: vocab_size ", options.vocab_size, " is below 4"));
  static constexpr std::string_view kTypes[] = {"unigram", "bpe", "char", "word"};
  if (std::find(std::begin(kTypes), std::end(kTypes), options.model_type) == std::end(kTypes))
    throw ConfigError(detail::str_cat("train_sentencepiece: model_type '", options.model_type,
                                      "', expected unigram, bpe, char or word"));
  if (!(options.character_coverage > 0 && options.character_coverage <= 1))
    throw ConfigError(detail::str_cat("train_sentencepiece: character_coverage ", options.character_coverage,
                                      " is not in (0, 1]"));
  std::vector<const char*> ptrs;
  std::vector<std::size_t> lengths;
  for (std::size_t i = 0; i < sentences.size(); ++i) {
    check_utf8(detail::str_cat("train_sentencepiece: sentence ", i), sentences[i]);
    ptrs.push_back(sentences[i].data());
    lengths.push_back(sentences[i].size());
  }
  // One thread and every sentence (input_sentence_size=0): the same strings give the same
  // model bytes. minloglevel=1 keeps the library's progress log (INFO) off stderr.
  const std::string args = detail::str_cat(
      "--vocab_size=", options.vocab_size, " --model_type=", options.model_type,
      " --character_coverage=", options.character_coverage, " --byte_fallback=", options.byte_fallback ? "true" : "false",
      " --hard_vocab_limit=", options.hard_vocab_limit ? "true" : "false",
      " --num_threads=1 --input_sentence_size=0 --shuffle_input_sentence=false --minloglevel=1",
      " --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1");
  char* out = nullptr;
  std::size_t size = 0;
  char* err = nullptr;
  if (lib.train(args.c_str(), ptrs.data(), lengths.data(), ptrs.size(), &out, &size, &err) != 0)
    throw ConfigError(detail::str_cat("train_sentencepiece: ", take_error(lib, err)));
  std::string model(out, size);
  lib.free_(out);
  return model;
}

}  // namespace prunerec::text
