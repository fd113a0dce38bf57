// The mirror of one BlockCache: its cached ranges by start offset, read by the FUSE threads
// without entering JavaScript (see docs/data-path.md).
#pragma once

#include <napi.h>

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

namespace encfs_fuse3 {

// One cached range. The table holds a reference to its Buffer while it is published, so the
// bytes cannot be collected under a reader; retract() returns only once no reader holds a pin.
struct Extent {
  uint64_t start = 0;
  uint64_t len = 0;
  const uint8_t* data = nullptr;
  int pins = 0;
  Napi::Reference<Napi::Buffer<uint8_t>> keep;  // main thread only
};

class Table {
 public:
  ~Table();
  // Main thread: publishing at a start already published replaces that range (after its readers).
  void Publish(uint64_t start, Napi::Buffer<uint8_t> buffer);
  void Retract(uint64_t start);
  void Clear();
  size_t Size();
  // Any thread: pins, in order, the ranges that together cover [a, b); false and nothing pinned
  // when a byte of it is not cached.
  bool PinCovering(uint64_t a, uint64_t b, std::vector<Extent*>& out);
  void Unpin(const std::vector<Extent*>& pinned);

 private:
  using Iterator = std::map<uint64_t, Extent*>::iterator;
  // Removes one range, waiting (briefly: a copy or a decryption) for its readers.
  void RetractLocked(std::unique_lock<std::mutex>& lock, Iterator it);

  std::mutex mu_;
  std::condition_variable unpinned_;
  std::map<uint64_t, Extent*> map_;
};

// Table for JavaScript: publish(start, buffer), retract(start), clear(), size().
class TableWrap : public Napi::ObjectWrap<TableWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit TableWrap(const Napi::CallbackInfo& info);
  std::shared_ptr<Table> table() const { return table_; }

 private:
  Napi::Value Publish(const Napi::CallbackInfo& info);
  Napi::Value Retract(const Napi::CallbackInfo& info);
  Napi::Value Clear(const Napi::CallbackInfo& info);
  Napi::Value Size(const Napi::CallbackInfo& info);

  std::shared_ptr<Table> table_;
};

}  // namespace encfs_fuse3
