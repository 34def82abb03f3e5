// A trie over the items' tokenised titles (TitleTable), the constraint of title-mode
// generation: from a node, only its children's tokens may come next, and a path from the
// root that ends with EOS spells a catalogue title.
//
//   TitleTrie trie(table);                      // table.tokens[item] ends with EOS
//   for (const TitleTrie::Edge& e : trie.children(trie.root())) ... e.token, e.node ...
//   trie.items(node)                            // items whose title ends at node (after EOS)
//
// Items with the same token sequence end at the same node, which lists all of them (Note
// [title collisions] in recsys/title/title_data.h). Nodes and edges are flat arrays; the
// edges of a node are sorted by token.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "recsys/title/title_data.h"

namespace prunerec::recsys {

class TitleTrie {
 public:
  struct Edge {
    std::int32_t token = 0;
    std::int32_t node = 0;
  };

  // ConfigError when the table is empty or a sequence does not end with table.eos.
  explicit TitleTrie(const TitleTable& table);

  std::int32_t root() const { return 0; }
  std::span<const Edge> children(std::int32_t node) const;
  // Items whose token sequence ends at `node` (non-empty only after an EOS edge).
  std::span<const std::int32_t> items(std::int32_t node) const;
  bool terminal(std::int32_t node) const { return !items(node).empty(); }
  // Edges on the longest path from `node` down to a terminal node (0 at a terminal).
  std::int32_t height(std::int32_t node) const { return nodes_[static_cast<std::size_t>(node)].height; }
  std::int32_t num_nodes() const { return static_cast<std::int32_t>(nodes_.size()); }
  std::int32_t num_titles() const { return num_titles_; }   // distinct token sequences
  std::int32_t eos() const { return eos_; }

 private:
  struct Node {
    std::int32_t first_edge = 0, num_edges = 0;
    std::int32_t first_item = 0, num_items = 0;
    std::int32_t height = 0;
  };
  std::vector<Node> nodes_;
  std::vector<Edge> edges_;
  std::vector<std::int32_t> items_;
  std::int32_t num_titles_ = 0;
  std::int32_t eos_ = -1;
};

}  // namespace prunerec::recsys
