#include "recsys/title/trie.h"

#include <algorithm>
#include <map>

#include "base/error.h"

namespace prunerec::recsys {

TitleTrie::TitleTrie(const TitleTable& table) : eos_(table.eos) {
  PR_CHECK_T(ConfigError, !table.tokens.empty(), "title trie: no titles (the catalogue is empty)");
  // Build with ordered maps, then flatten (children sorted by token).
  struct BuildNode {
    std::map<std::int32_t, std::int32_t> children;
    std::vector<std::int32_t> items;
  };
  std::vector<BuildNode> build(1);
  for (std::size_t item = 0; item < table.tokens.size(); ++item) {
    const auto& seq = table.tokens[item];
    PR_CHECK_T(ConfigError, !seq.empty() && seq.back() == table.eos, "title trie: the tokens of item ", item,
               " do not end with the end-of-sequence token ", table.eos);
    std::int32_t node = 0;
    for (std::int32_t token : seq) {
      auto it = build[static_cast<std::size_t>(node)].children.find(token);
      if (it == build[static_cast<std::size_t>(node)].children.end()) {
        const auto next = static_cast<std::int32_t>(build.size());
        build[static_cast<std::size_t>(node)].children.emplace(token, next);
        build.emplace_back();
        node = next;
      } else {
        node = it->second;
      }
    }
    build[static_cast<std::size_t>(node)].items.push_back(static_cast<std::int32_t>(item));
  }
  nodes_.resize(build.size());
  for (std::size_t n = 0; n < build.size(); ++n) {
    Node& node = nodes_[n];
    node.first_edge = static_cast<std::int32_t>(edges_.size());
    node.num_edges = static_cast<std::int32_t>(build[n].children.size());
    for (const auto& [token, child] : build[n].children) edges_.push_back({token, child});
    node.first_item = static_cast<std::int32_t>(items_.size());
    node.num_items = static_cast<std::int32_t>(build[n].items.size());
    items_.insert(items_.end(), build[n].items.begin(), build[n].items.end());
    if (node.num_items > 0) ++num_titles_;
  }
  // Children have larger indices than their parent (created after it): heights bottom-up.
  for (std::size_t n = nodes_.size(); n-- > 0;)
    for (const Edge& e : children(static_cast<std::int32_t>(n)))
      nodes_[n].height = std::max(nodes_[n].height, nodes_[static_cast<std::size_t>(e.node)].height + 1);
}

std::span<const TitleTrie::Edge> TitleTrie::children(std::int32_t node) const {
  const Node& n = nodes_[static_cast<std::size_t>(node)];
  return {edges_.data() + n.first_edge, static_cast<std::size_t>(n.num_edges)};
}

std::span<const std::int32_t> TitleTrie::items(std::int32_t node) const {
  const Node& n = nodes_[static_cast<std::size_t>(node)];
  return {items_.data() + n.first_item, static_cast<std::size_t>(n.num_items)};
}

}  // namespace prunerec::recsys
