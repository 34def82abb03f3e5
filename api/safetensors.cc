#include "api/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <set>

#include "base/atomic_file.h"
#include "base/json.h"

namespace prunerec::hf {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; add byte swapping before building on a big-endian host");

SafetensorsLayout plan_safetensors(const std::vector<std::pair<std::string, Shape>>& tensors,
                                   const std::map<std::string, std::string>& metadata) {
  SafetensorsLayout layout;
  layout.tensors = tensors;
  std::sort(layout.tensors.begin(), layout.tensors.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (std::size_t i = 0; i < layout.tensors.size(); ++i) {
    const std::string& name = layout.tensors[i].first;
    PR_CHECK_T(ConfigError, !name.empty(), "safetensors: a tensor has an empty name");
    PR_CHECK_T(ConfigError, name != "__metadata__", "safetensors: '__metadata__' is reserved, not a tensor name");
    PR_CHECK_T(ConfigError, i == 0 || layout.tensors[i - 1].first != name, "safetensors: tensor '", name,
               "' is listed twice");
  }

  // Compact JSON, keys in byte order (std::map and the sorted list above).
  std::string json = "{";
  bool first = true;
  if (!metadata.empty()) {
    json += "\"__metadata__\":{";
    for (auto it = metadata.begin(); it != metadata.end(); ++it)
      json.append(it == metadata.begin() ? "" : ",").append(Json::quote(it->first)).append(":").append(Json::quote(it->second));
    json += "}";
    first = false;
  }
  std::uint64_t offset = 0;
  for (const auto& [name, shape] : layout.tensors) {
    const std::uint64_t bytes = static_cast<std::uint64_t>(shape_numel(shape)) * sizeof(float);
    json.append(first ? "" : ",").append(Json::quote(name)).append(":{\"dtype\":\"F32\",\"shape\":[");
    first = false;
    for (std::size_t d = 0; d < shape.size(); ++d) {
      PR_CHECK_T(ConfigError, shape[d] >= 0, "safetensors: tensor '", name, "' has negative shape ", shape_str(shape));
      json.append(d ? "," : "").append(std::to_string(shape[d]));
    }
    json += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + bytes) + "]}";
    layout.offsets.emplace_back(offset, offset + bytes);
    offset += bytes;
  }
  json += "}";
  // Pad with spaces so 8 + header is a multiple of 8: the data starts aligned.
  json.append((8 - json.size() % 8) % 8, ' ');
  layout.header = std::move(json);
  layout.data_bytes = offset;
  return layout;
}

std::uint64_t write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                                const std::map<std::string, std::string>& metadata) {
  std::vector<std::pair<std::string, Shape>> shapes;
  std::map<std::string, const Tensor*> by_name;
  for (const auto& [name, value] : tensors) {
    PR_CHECK_T(ConfigError, value.defined(), "safetensors: tensor '", name, "' is undefined");
    PR_CHECK_T(ConfigError, is_floating(value.dtype()), "safetensors: tensor '", name, "' is ", value.shape_str(),
               ", not floating point");
    shapes.emplace_back(name, value.shape());
    by_name[name] = &value;
  }
  const SafetensorsLayout layout = plan_safetensors(shapes, metadata);

  AtomicFile out(path);
  const std::uint64_t n = layout.header.size();
  unsigned char length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>(n >> (8 * i));
  out.write(length, sizeof length);
  out.write(layout.header);
  for (const auto& [name, shape] : layout.tensors) {
    const Tensor values = by_name.at(name)->to(DType::f32).contiguous();
    if (values.numel() > 0) out.write(values.data<float>(), values.nbytes());
  }
  PR_ASSERT(out.bytes_written() == 8 + n + layout.data_bytes);
  const std::uint64_t total = out.bytes_written();
  out.commit();
  return total;
}

}  // namespace prunerec::hf
