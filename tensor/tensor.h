// Tensor: shared storage + shape + strides + offset + dtype. Row-major, dim 0 outermost.
//
//   Tensor x = Tensor::zeros({4, 8});              // f32 [4,8]
//   Tensor y = x.transpose(0, 1);                  // view [8,4], shares storage
//   Tensor z = y.contiguous();                     // copy with row-major strides
//   float* p = z.data<float>();                    // pointer to element 0 (offset applied)
//   std::cout << x.narrow(1, 2, 3);                // prints "f32[4,3] ..." and the values
//
// Views (reshape of a contiguous tensor, permute, transpose, slice, narrow, select) share
// storage; index_select, contiguous() of a non-contiguous tensor, clone() and to() of
// another dtype copy.
// Kernels (tensor/kernels/) take raw pointers and check nothing; the checks live here and
// in the autograd ops, and name the op and every shape involved.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "tensor/dtype.h"
#include "base/error.h"

namespace prunerec {

using Shape = std::vector<std::int64_t>;

std::string shape_str(const Shape& shape);  // "[2,3,4]"
std::int64_t shape_numel(const Shape& shape);
Shape contiguous_strides(const Shape& shape);

// A block of memory owned by the caching allocator, or borrowed from elsewhere (a
// memory-mapped checkpoint) and kept alive by `owner`.
class Storage {
 public:
  explicit Storage(std::size_t nbytes);                                    // allocates
  Storage(void* data, std::size_t nbytes, std::shared_ptr<void> owner);   // borrows
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  std::size_t nbytes() const { return nbytes_; }

 private:
  void* data_ = nullptr;
  std::size_t nbytes_ = 0;
  std::shared_ptr<void> owner_;  // null when we own data_
};

class Tensor {
 public:
  Tensor() = default;  // undefined tensor; defined() is false

  // Factories. Values of empty() are unspecified.
  static Tensor empty(const Shape& shape, DType dtype = DType::f32);
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32);
  static Tensor ones(const Shape& shape, DType dtype = DType::f32);
  static Tensor full(const Shape& shape, double value, DType dtype = DType::f32);
  static Tensor scalar(double value, DType dtype = DType::f32);  // shape []
  template <class T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape);
  template <class T>
  static Tensor from_vector(const std::vector<T>& values) {
    return from_vector(values, Shape{static_cast<std::int64_t>(values.size())});
  }
  static Tensor arange(std::int64_t n, DType dtype = DType::i64);  // 0, 1, ..., n-1
  // A contiguous tensor over existing storage (e.g. a borrowing Storage over a
  // memory-mapped checkpoint), starting at storage->data(). Throws if it does not fit.
  static Tensor from_storage(std::shared_ptr<Storage> storage, const Shape& shape, DType dtype);

  bool defined() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  int dim() const { return static_cast<int>(shape_.size()); }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  std::int64_t size(int d) const;     // negative d counts from the end
  std::int64_t stride(int d) const;
  std::int64_t offset() const { return offset_; }  // in elements
  std::int64_t numel() const { return numel_; }
  std::size_t nbytes() const { return static_cast<std::size_t>(numel_) * dtype_size(dtype_); }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  bool shares_storage(const Tensor& other) const { return storage_ == other.storage_; }
  std::string shape_str() const;  // "f32[2,3]"

  // Typed pointer to the first element (offset applied); throws if T is not the dtype.
  template <class T>
  T* data() const {
    check_dtype(dtype_of<T>, "data");
    return static_cast<T*>(raw_data());
  }
  void* raw_data() const;

  // Element access for tests and small host-side code (slow, checks bounds).
  double item() const;  // the only element of a one-element tensor
  double at(std::initializer_list<std::int64_t> index) const;
  void set(std::initializer_list<std::int64_t> index, double value);
  template <class T>
  std::vector<T> to_vector() const;  // row-major copy of the values

  // Views: share storage.
  Tensor reshape(const Shape& shape) const;  // one dim may be -1; copies if not contiguous
  Tensor view(const Shape& shape) const;     // like reshape but throws if a copy is needed
  Tensor permute(const std::vector<int>& dims) const;
  Tensor transpose(int d0, int d1) const;
  Tensor slice(int d, std::int64_t start, std::int64_t end, std::int64_t step = 1) const;
  Tensor narrow(int d, std::int64_t start, std::int64_t length) const;
  Tensor select(int d, std::int64_t index) const;  // drops dimension d
  Tensor unsqueeze(int d) const;
  Tensor flatten() const { return reshape({numel_}); }

  // Copies.
  Tensor index_select(int d, const Tensor& index) const;  // index: i32 or i64 vector
  Tensor contiguous() const;  // *this when already contiguous
  Tensor clone() const;       // always a fresh contiguous copy
  Tensor to(DType dtype) const;  // converted copy; *this (no copy) when already that dtype

  // In-place.
  void copy_from(const Tensor& src);  // same shape; src may be any dtype and layout, even overlap
  void fill(double value);
  void zero() { fill(0.0); }

 private:
  friend class TensorTestPeer;
  void check_dtype(DType want, const char* op) const;
  int wrap_dim(int d, const char* op) const;

  std::shared_ptr<Storage> storage_;
  Shape shape_;
  Shape strides_;
  std::int64_t offset_ = 0;
  std::int64_t numel_ = 0;
  DType dtype_ = DType::f32;

  Tensor(std::shared_ptr<Storage> storage, Shape shape, Shape strides, std::int64_t offset,
         DType dtype);
};

// Prints "f32[2,3]" then the values (at most `limit` per dimension).
std::ostream& operator<<(std::ostream& os, const Tensor& t);

// Max |a - b| over all elements (any floating dtypes, same shape); for tests.
double max_abs_diff(const Tensor& a, const Tensor& b);
// True when every element satisfies |a - b| <= atol + rtol * |b|.
bool allclose(const Tensor& a, const Tensor& b, double rtol, double atol);
// True when shapes, dtypes and every byte of the values agree.
bool bit_equal(const Tensor& a, const Tensor& b);

}  // namespace prunerec
