#include "cache_table.h"

#include "../arg_checks.h"

namespace encfs_fuse3 {

Table::~Table() {
  // The last owner lets go (the JavaScript Table and the sessions serving from it are gone): no
  // reader is left, and this runs on the main thread, where the Buffers' references may be freed.
  for (auto& [start, e] : map_) delete e;
}

void Table::RetractLocked(std::unique_lock<std::mutex>& lock, Iterator it) {
  Extent* e = it->second;
  map_.erase(it);
  unpinned_.wait(lock, [e] { return e->pins == 0; });
  delete e;
}

void Table::Publish(uint64_t start, Napi::Buffer<uint8_t> buffer) {
  auto* e = new Extent{start, buffer.Length(), buffer.Data(), 0, Napi::Reference<Napi::Buffer<uint8_t>>::New(buffer, 1)};
  std::unique_lock<std::mutex> lock(mu_);
  auto it = map_.find(start);
  if (it != map_.end()) RetractLocked(lock, it);
  map_.emplace(start, e);
}

void Table::Retract(uint64_t start) {
  std::unique_lock<std::mutex> lock(mu_);
  auto it = map_.find(start);
  if (it != map_.end()) RetractLocked(lock, it);
}

void Table::Clear() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!map_.empty()) RetractLocked(lock, map_.begin());
}

size_t Table::Size() {
  std::lock_guard<std::mutex> lock(mu_);
  return map_.size();
}

bool Table::PinCovering(uint64_t a, uint64_t b, std::vector<Extent*>& out) {
  out.clear();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = map_.upper_bound(a);
  if (it == map_.begin()) return false;
  --it;
  for (uint64_t pos = a; pos < b; ++it) {
    if (it == map_.end()) return false;
    Extent* e = it->second;
    if (e->start > pos || e->start + e->len <= pos) return false;
    out.push_back(e);
    pos = e->start + e->len;
  }
  for (Extent* e : out) e->pins++;
  return true;
}

void Table::Unpin(const std::vector<Extent*>& pinned) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (Extent* e : pinned) e->pins--;
  }
  unpinned_.notify_all();
}

Napi::Function TableWrap::Define(Napi::Env env) {
  return DefineClass(env, "Table",
                     {
                         InstanceMethod("publish", &TableWrap::Publish),
                         InstanceMethod("retract", &TableWrap::Retract),
                         InstanceMethod("clear", &TableWrap::Clear),
                         InstanceMethod("size", &TableWrap::Size),
                     });
}

TableWrap::TableWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TableWrap>(info), table_(std::make_shared<Table>()) {}

Napi::Value TableWrap::Publish(const Napi::CallbackInfo& info) {
  if (info.Length() != 2) throw Napi::TypeError::New(info.Env(), "publish(start, buffer)");
  const uint64_t start = encfs::WholeNumber(info[0], "publish: start");
  auto buffer = encfs::BufferArg(info[1], "publish: buffer");
  if (buffer.Length() == 0) throw Napi::RangeError::New(info.Env(), "publish: an empty buffer is no range");
  if (static_cast<double>(start) + static_cast<double>(buffer.Length()) > encfs::kMaxSafeInteger) {
    throw Napi::RangeError::New(info.Env(), "publish: the range ends past 2^53");
  }
  table_->Publish(start, buffer);
  return info.Env().Undefined();
}

Napi::Value TableWrap::Retract(const Napi::CallbackInfo& info) {
  if (info.Length() != 1) throw Napi::TypeError::New(info.Env(), "retract(start)");
  table_->Retract(encfs::WholeNumber(info[0], "retract: start"));
  return info.Env().Undefined();
}

Napi::Value TableWrap::Clear(const Napi::CallbackInfo& info) {
  table_->Clear();
  return info.Env().Undefined();
}

Napi::Value TableWrap::Size(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(table_->Size()));
}

}  // namespace encfs_fuse3
