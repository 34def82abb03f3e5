#include "tensor/tensor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <ostream>
#include <sstream>

#include "tensor/allocator.h"

namespace prunerec {

// ---- shapes ---------------------------------------------------------------------------

std::string shape_str(const Shape& shape) {
  std::ostringstream os;
  os << '[';
  for (std::size_t i = 0; i < shape.size(); ++i) os << (i ? "," : "") << shape[i];
  os << ']';
  return os.str();
}

std::int64_t shape_numel(const Shape& shape) {
  std::int64_t n = 1;
  for (std::int64_t s : shape) n *= s;
  return n;
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  std::int64_t s = 1;
  for (int i = static_cast<int>(shape.size()) - 1; i >= 0; --i) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

// ---- storage --------------------------------------------------------------------------

Storage::Storage(std::size_t nbytes) : data_(allocate_bytes(nbytes)), nbytes_(nbytes) {}

Storage::Storage(void* data, std::size_t nbytes, std::shared_ptr<void> owner)
    : data_(data), nbytes_(nbytes), owner_(std::move(owner)) {}

Storage::~Storage() {
  if (owner_ == nullptr) free_bytes(data_, nbytes_);
}

// ---- construction ---------------------------------------------------------------------

Tensor::Tensor(std::shared_ptr<Storage> storage, Shape shape, Shape strides, std::int64_t offset,
               DType dtype)
    : storage_(std::move(storage)),
      shape_(std::move(shape)),
      strides_(std::move(strides)),
      offset_(offset),
      numel_(shape_numel(shape_)),
      dtype_(dtype) {}

Tensor Tensor::empty(const Shape& shape, DType dtype) {
  for (std::int64_t s : shape)
    PR_CHECK(s >= 0, "Tensor::empty: negative size in shape ", prunerec::shape_str(shape));
  const std::int64_t n = shape_numel(shape);
  auto storage = std::make_shared<Storage>(static_cast<std::size_t>(n) * dtype_size(dtype));
  return Tensor(std::move(storage), shape, contiguous_strides(shape), 0, dtype);
}

Tensor Tensor::zeros(const Shape& shape, DType dtype) {
  Tensor t = empty(shape, dtype);
  std::memset(t.raw_data(), 0, t.nbytes());
  return t;
}

Tensor Tensor::ones(const Shape& shape, DType dtype) { return full(shape, 1.0, dtype); }

Tensor Tensor::full(const Shape& shape, double value, DType dtype) {
  Tensor t = empty(shape, dtype);
  t.fill(value);
  return t;
}

Tensor Tensor::scalar(double value, DType dtype) { return full({}, value, dtype); }

template <class T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape) {
  PR_CHECK(shape_numel(shape) == static_cast<std::int64_t>(values.size()),
           "Tensor::from_vector: ", values.size(), " values do not fill shape ",
           prunerec::shape_str(shape));
  Tensor t = empty(shape, dtype_of<T>);
  if (!values.empty()) std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(T));
  return t;
}
template Tensor Tensor::from_vector(const std::vector<float>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<double>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<std::int32_t>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<std::int64_t>&, const Shape&);

Tensor Tensor::arange(std::int64_t n, DType dtype) {
  Tensor t = empty({n}, dtype);
  for (std::int64_t i = 0; i < n; ++i) t.set({i}, static_cast<double>(i));
  return t;
}

Tensor Tensor::from_storage(std::shared_ptr<Storage> storage, const Shape& shape, DType dtype) {
  PR_CHECK(storage != nullptr, "Tensor::from_storage: null storage");
  for (std::int64_t s : shape)
    PR_CHECK(s >= 0, "Tensor::from_storage: negative size in shape ", prunerec::shape_str(shape));
  const std::int64_t n = shape_numel(shape);
  PR_CHECK(static_cast<std::size_t>(n) * dtype_size(dtype) <= storage->nbytes(), "Tensor::from_storage: ",
           dtype_name(dtype), prunerec::shape_str(shape), " needs ", static_cast<std::size_t>(n) * dtype_size(dtype),
           " bytes, storage has ", storage->nbytes());
  return Tensor(std::move(storage), shape, contiguous_strides(shape), 0, dtype);
}

// ---- properties -----------------------------------------------------------------------

int Tensor::wrap_dim(int d, const char* op) const {
  const int n = dim();
  const int w = d < 0 ? d + n : d;
  PR_CHECK(w >= 0 && w < n, op, ": dim ", d, " out of range for ", shape_str());
  return w;
}

std::int64_t Tensor::size(int d) const { return shape_[wrap_dim(d, "size")]; }
std::int64_t Tensor::stride(int d) const { return strides_[wrap_dim(d, "stride")]; }

bool Tensor::is_contiguous() const {
  std::int64_t expect = 1;
  for (int i = dim() - 1; i >= 0; --i) {
    if (shape_[i] == 1) continue;
    if (strides_[i] != expect) return false;
    expect *= shape_[i];
  }
  return true;
}

std::string Tensor::shape_str() const {
  if (!defined()) return "undefined";
  return std::string(dtype_name(dtype_)) + prunerec::shape_str(shape_);
}

void Tensor::check_dtype(DType want, const char* op) const {
  PR_CHECK(defined(), op, ": tensor is undefined");
  PR_CHECK(dtype_ == want, op, ": tensor ", shape_str(), " is ", dtype_name(dtype_),
           ", expected ", dtype_name(want));
}

void* Tensor::raw_data() const {
  PR_CHECK(defined(), "data: tensor is undefined");
  return static_cast<char*>(storage_->data()) + offset_ * static_cast<std::int64_t>(dtype_size(dtype_));
}

// ---- strided element iteration --------------------------------------------------------

namespace {

// Calls f(element_offset) for every element of (shape, strides) in row-major order.
template <class F>
void for_each_offset(const Shape& shape, const Shape& strides, std::int64_t base, F&& f) {
  const int n = static_cast<int>(shape.size());
  const std::int64_t total = shape_numel(shape);
  if (total == 0) return;
  if (n == 0) {
    f(base);
    return;
  }
  std::vector<std::int64_t> idx(n, 0);
  std::int64_t off = base;
  const std::int64_t inner = shape[n - 1], inner_stride = strides[n - 1];
  for (std::int64_t done = 0; done < total; done += inner) {
    for (std::int64_t i = 0; i < inner; ++i) f(off + i * inner_stride);
    for (int d = n - 2; d >= 0; --d) {  // carry into the outer dims
      off += strides[d];
      if (++idx[d] < shape[d]) break;
      off -= strides[d] * shape[d];
      idx[d] = 0;
    }
  }
}

double load_as_double(const void* base, DType t, std::int64_t i) {
  switch (t) {
    case DType::f32: return static_cast<const float*>(base)[i];
    case DType::f64: return static_cast<const double*>(base)[i];
    case DType::i32: return static_cast<const std::int32_t*>(base)[i];
    case DType::i64: return static_cast<double>(static_cast<const std::int64_t*>(base)[i]);
  }
  return 0;
}

void store_from_double(void* base, DType t, std::int64_t i, double v) {
  switch (t) {
    case DType::f32: static_cast<float*>(base)[i] = static_cast<float>(v); break;
    case DType::f64: static_cast<double*>(base)[i] = v; break;
    case DType::i32: static_cast<std::int32_t*>(base)[i] = static_cast<std::int32_t>(v); break;
    case DType::i64: static_cast<std::int64_t*>(base)[i] = static_cast<std::int64_t>(v); break;
  }
}

// Copies same-dtype elements from any layout into a contiguous destination.
template <class T>
void gather_strided(const Tensor& src, T* dst) {
  const T* base = static_cast<const T*>(src.storage()->data());
  std::int64_t k = 0;
  for_each_offset(src.shape(), src.strides(), src.offset(), [&](std::int64_t o) { dst[k++] = base[o]; });
}

}  // namespace

double Tensor::item() const {
  PR_CHECK(numel_ == 1, "item: tensor ", shape_str(), " does not have exactly one element");
  return load_as_double(storage_->data(), dtype_, offset_);
}

double Tensor::at(std::initializer_list<std::int64_t> index) const {
  PR_CHECK(static_cast<int>(index.size()) == dim(), "at: ", index.size(), " indices for ", shape_str());
  std::int64_t off = offset_;
  int d = 0;
  for (std::int64_t i : index) {
    PR_CHECK(i >= 0 && i < shape_[d], "at: index ", i, " out of range in dim ", d, " of ", shape_str());
    off += i * strides_[d++];
  }
  return load_as_double(storage_->data(), dtype_, off);
}

void Tensor::set(std::initializer_list<std::int64_t> index, double value) {
  PR_CHECK(static_cast<int>(index.size()) == dim(), "set: ", index.size(), " indices for ", shape_str());
  std::int64_t off = offset_;
  int d = 0;
  for (std::int64_t i : index) {
    PR_CHECK(i >= 0 && i < shape_[d], "set: index ", i, " out of range in dim ", d, " of ", shape_str());
    off += i * strides_[d++];
  }
  store_from_double(storage_->data(), dtype_, off, value);
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  std::vector<T> out(static_cast<std::size_t>(numel_));
  if (numel_ == 0) return out;
  if (dtype_ == dtype_of<T>) {
    if (is_contiguous())
      std::memcpy(out.data(), raw_data(), nbytes());
    else
      gather_strided<T>(*this, out.data());
    return out;
  }
  std::int64_t k = 0;
  for_each_offset(shape_, strides_, offset_, [&](std::int64_t o) {
    out[k++] = static_cast<T>(load_as_double(storage_->data(), dtype_, o));
  });
  return out;
}
template std::vector<float> Tensor::to_vector() const;
template std::vector<double> Tensor::to_vector() const;
template std::vector<std::int32_t> Tensor::to_vector() const;
template std::vector<std::int64_t> Tensor::to_vector() const;

// ---- views ----------------------------------------------------------------------------

Tensor Tensor::view(const Shape& shape_in) const {
  PR_CHECK(defined(), "view: tensor is undefined");
  Shape shape = shape_in;
  int infer = -1;
  std::int64_t known = 1;
  for (int i = 0; i < static_cast<int>(shape.size()); ++i) {
    if (shape[i] == -1) {
      PR_CHECK(infer < 0, "view: more than one -1 in ", prunerec::shape_str(shape_in));
      infer = i;
    } else {
      PR_CHECK(shape[i] >= 0, "view: bad size in ", prunerec::shape_str(shape_in));
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    PR_CHECK(known != 0 && numel_ % known == 0, "view: cannot infer -1 in ",
             prunerec::shape_str(shape_in), " for ", shape_str());
    shape[infer] = numel_ / known;
  }
  PR_CHECK(shape_numel(shape) == numel_, "view: ", shape_str(), " has ", numel_,
           " elements, cannot view as ", prunerec::shape_str(shape));
  PR_CHECK(is_contiguous(), "view: ", shape_str(), " is not contiguous; use reshape()");
  return Tensor(storage_, shape, contiguous_strides(shape), offset_, dtype_);
}

Tensor Tensor::reshape(const Shape& shape) const {
  if (is_contiguous()) return view(shape);
  return contiguous().view(shape);
}

Tensor Tensor::permute(const std::vector<int>& dims) const {
  PR_CHECK(static_cast<int>(dims.size()) == dim(), "permute: ", dims.size(), " dims for ", shape_str());
  Shape shape(dims.size()), strides(dims.size());
  std::vector<bool> seen(dims.size(), false);
  for (std::size_t i = 0; i < dims.size(); ++i) {
    const int d = wrap_dim(dims[i], "permute");
    PR_CHECK(!seen[d], "permute: dim ", d, " repeated");
    seen[d] = true;
    shape[i] = shape_[d];
    strides[i] = strides_[d];
  }
  return Tensor(storage_, shape, strides, offset_, dtype_);
}

Tensor Tensor::transpose(int d0, int d1) const {
  std::vector<int> dims(dim());
  for (int i = 0; i < dim(); ++i) dims[i] = i;
  std::swap(dims[wrap_dim(d0, "transpose")], dims[wrap_dim(d1, "transpose")]);
  return permute(dims);
}

Tensor Tensor::slice(int d, std::int64_t start, std::int64_t end, std::int64_t step) const {
  d = wrap_dim(d, "slice");
  PR_CHECK(step > 0, "slice: step must be positive, got ", step);
  const std::int64_t n = shape_[d];
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<std::int64_t>(start, 0, n);
  end = std::clamp<std::int64_t>(end, start, n);
  Shape shape = shape_, strides = strides_;
  shape[d] = (end - start + step - 1) / step;
  strides[d] = strides_[d] * step;
  return Tensor(storage_, shape, strides, offset_ + start * strides_[d], dtype_);
}

Tensor Tensor::narrow(int d, std::int64_t start, std::int64_t length) const {
  d = wrap_dim(d, "narrow");
  PR_CHECK(start >= 0 && length >= 0 && start + length <= shape_[d], "narrow: [", start, ", ",
           start + length, ") out of range for dim ", d, " of ", shape_str());
  return slice(d, start, start + length);
}

Tensor Tensor::select(int d, std::int64_t index) const {
  d = wrap_dim(d, "select");
  PR_CHECK(index >= 0 && index < shape_[d], "select: index ", index, " out of range for dim ", d,
           " of ", shape_str());
  Shape shape = shape_, strides = strides_;
  shape.erase(shape.begin() + d);
  strides.erase(strides.begin() + d);
  return Tensor(storage_, shape, strides, offset_ + index * strides_[d], dtype_);
}

Tensor Tensor::unsqueeze(int d) const {
  const int n = dim();
  if (d < 0) d += n + 1;
  PR_CHECK(d >= 0 && d <= n, "unsqueeze: dim out of range for ", shape_str());
  Shape shape = shape_, strides = strides_;
  const std::int64_t stride = d < n ? strides_[d] * shape_[d] : 1;
  shape.insert(shape.begin() + d, 1);
  strides.insert(strides.begin() + d, stride);
  return Tensor(storage_, shape, strides, offset_, dtype_);
}

// ---- copies ---------------------------------------------------------------------------

Tensor Tensor::index_select(int d, const Tensor& index) const {
  d = wrap_dim(d, "index_select");
  PR_CHECK(index.dim() == 1 && (index.dtype() == DType::i32 || index.dtype() == DType::i64),
           "index_select: index must be an i32/i64 vector, got ", index.shape_str());
  const std::vector<std::int64_t> idx = index.to_vector<std::int64_t>();
  Shape shape = shape_;
  shape[d] = static_cast<std::int64_t>(idx.size());
  Tensor out = empty(shape, dtype_);
  for (std::size_t k = 0; k < idx.size(); ++k) {
    PR_CHECK(idx[k] >= 0 && idx[k] < shape_[d], "index_select: index ", idx[k],
             " out of range for dim ", d, " of ", shape_str());
    out.select(d, static_cast<std::int64_t>(k)).copy_from(select(d, idx[k]));
  }
  return out;
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape_, dtype_);
  out.copy_from(*this);
  return out;
}

Tensor Tensor::to(DType dtype) const {
  if (dtype == dtype_) return *this;
  Tensor out = empty(shape_, dtype);
  // Element-wise conversion in row-major order.
  std::int64_t k = 0;
  void* dst = out.raw_data();
  for_each_offset(shape_, strides_, offset_, [&](std::int64_t o) {
    if (dtype_ == DType::i64 && dtype == DType::i32)
      static_cast<std::int32_t*>(dst)[k++] = static_cast<std::int32_t>(static_cast<const std::int64_t*>(storage_->data())[o]);
    else if (dtype_ == DType::i32 && dtype == DType::i64)
      static_cast<std::int64_t*>(dst)[k++] = static_cast<const std::int32_t*>(storage_->data())[o];
    else
      store_from_double(dst, dtype, k++, load_as_double(storage_->data(), dtype_, o));
  });
  return out;
}

void Tensor::copy_from(const Tensor& src) {
  PR_CHECK(defined() && src.defined(), "copy_from: undefined tensor");
  PR_CHECK(shape_ == src.shape_, "copy_from: shape ", src.shape_str(), " into ", shape_str());
  if (numel_ == 0) return;
  if (dtype_ == src.dtype_ && is_contiguous() && src.is_contiguous()) {
    std::memmove(raw_data(), src.raw_data(), nbytes());
    return;
  }
  if (is_contiguous() && dtype_ == src.dtype_ && !shares_storage(src)) {
    switch (dtype_) {
      case DType::f32: gather_strided<float>(src, data<float>()); return;
      case DType::f64: gather_strided<double>(src, data<double>()); return;
      case DType::i32: gather_strided<std::int32_t>(src, data<std::int32_t>()); return;
      case DType::i64: gather_strided<std::int64_t>(src, data<std::int64_t>()); return;
    }
  }
  // General case: src in row-major order into a contiguous buffer of our dtype (exact for
  // same-dtype copies, including i64 beyond 2^53), then scattered into our layout. The
  // buffer also makes copying between overlapping views safe.
  const Tensor buffer = src.dtype() == dtype_ ? src.clone() : src.to(dtype_);
  const char* from = static_cast<const char*>(buffer.raw_data());
  char* base = static_cast<char*>(storage_->data());
  const std::size_t size = dtype_size(dtype_);
  std::int64_t k = 0;
  for_each_offset(shape_, strides_, offset_, [&](std::int64_t o) {
    std::memcpy(base + o * static_cast<std::int64_t>(size), from + (k++) * static_cast<std::int64_t>(size), size);
  });
}

void Tensor::fill(double value) {
  PR_CHECK(defined(), "fill: tensor is undefined");
  void* base = storage_->data();
  for_each_offset(shape_, strides_, offset_, [&](std::int64_t o) { store_from_double(base, dtype_, o, value); });
}

// ---- printing and comparison ----------------------------------------------------------

namespace {
void print_values(std::ostream& os, const Tensor& t, int d, std::vector<std::int64_t>& idx, int limit) {
  if (t.dim() == 0) {
    os << t.item();
    return;
  }
  os << '[';
  const std::int64_t n = t.size(d);
  for (std::int64_t i = 0; i < n; ++i) {
    if (i == limit && n > 2 * limit) {
      os << "..., ";
      i = n - limit;
    }
    idx[d] = i;
    if (d + 1 < t.dim()) {
      print_values(os, t, d + 1, idx, limit);
    } else {
      std::int64_t off = t.offset();
      for (int k = 0; k < t.dim(); ++k) off += idx[k] * t.stride(k);
      os << load_as_double(t.storage()->data(), t.dtype(), off);
    }
    if (i + 1 < n) os << ", ";
  }
  os << ']';
}
}  // namespace

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  os << t.shape_str();
  if (!t.defined()) return os;
  os << ' ';
  std::vector<std::int64_t> idx(t.dim(), 0);
  print_values(os, t, 0, idx, 4);
  return os;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  PR_CHECK(a.shape() == b.shape(), "max_abs_diff: ", a.shape_str(), " vs ", b.shape_str());
  const std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  double m = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double d = std::fabs(x[i] - y[i]);
    if (std::isnan(d)) return d;
    m = std::max(m, d);
  }
  return m;
}

bool allclose(const Tensor& a, const Tensor& b, double rtol, double atol) {
  if (a.shape() != b.shape()) return false;
  const std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  for (std::size_t i = 0; i < x.size(); ++i)
    if (!(std::fabs(x[i] - y[i]) <= atol + rtol * std::fabs(y[i]))) return false;
  return true;
}

bool bit_equal(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  const Tensor x = a.contiguous(), y = b.contiguous();
  return x.numel() == 0 || std::memcmp(x.raw_data(), y.raw_data(), x.nbytes()) == 0;
}

}  // namespace prunerec
