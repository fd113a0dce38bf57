// The bridge between the FUSE threads and JavaScript: events out through one typed thread-safe
// function (whose call owns the event, also when the channel is torn down with events still
// queued), answers in by request id on the main thread. Every answer checks its arguments and
// the request's kind at the boundary, and runs under the session's gate (see session.h), so it
// never reaches a destroyed libfuse session and never answers a request twice.
#include <errno.h>

#include <cstring>

#include "../arg_checks.h"
#include "session.h"

namespace encfs_fuse3 {
namespace {

constexpr unsigned Kinds(int a, int b = 0) { return (1u << a) | (b ? 1u << b : 0); }

// libfuse refuses errno values of 1000 and above (it answers ERANGE instead).
constexpr double kMaxErrno = 999;

Napi::Object StopObject(Napi::Env env, const Stop& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("requested", Napi::Boolean::New(env, s.requested));
  o.Set("ended", Napi::Boolean::New(env, s.ended));
  o.Set("detail", Napi::String::New(env, s.detail));
  return o;
}

}  // namespace

// Main thread: onEvent(kind, id, file, offset, length, data). `data` is the written bytes (a
// Buffer JavaScript owns), the stop (kStopped) or undefined.
void CallEvent(Napi::Env env, Napi::Function onEvent, Session* session, Event* raw) {
  std::unique_ptr<Event> ev(raw);
  // The channel is being torn down (process exit) with this event still queued: it only needs freeing.
  if (env == nullptr || onEvent.IsEmpty()) return;
  Napi::Value data = env.Undefined();
  if (ev->data) {
    data = Napi::Buffer<uint8_t>::NewOrCopy(env, ev->data, ev->length, [](Napi::Env, uint8_t* p) { std::free(p); });
    ev->data = nullptr;
  } else if (ev->kind == kStopped) {
    data = StopObject(env, ev->stop);
  }
  try {
    onEvent.Call({Napi::Number::New(env, ev->kind), Napi::Number::New(env, ev->id), Napi::Number::New(env, ev->file),
                  Napi::Number::New(env, static_cast<double>(ev->offset)), Napi::Number::New(env, static_cast<double>(ev->length)), data});
  } catch (...) {
    // The handler threw before it took the request: it must still be answered, once.
    if (ev->id != 0) session->FailRequest(ev->id);
    throw;
  }
}

void Session::FailRequest(double id) {
  std::shared_lock<std::shared_mutex> lock(gate_);
  if (gone_) return;
  if (fuse_req_t r = Take(id).req) fuse_reply_err(r, EIO);
}

// Here, after CallEvent's definition: with -fsanitize=undefined, GCC 12 cannot check the
// callback against nullptr at compile time (as the typed channel's template does) otherwise.
void Session::OpenChannel(Napi::Env env) { channel_ = EventChannel::New(env, onEvent_.Value(), "encfs-fuse3", 0, 1, this, OnChannelFinalized); }

bool Session::Post(Event* ev) { return channelMade_ && channel_.NonBlockingCall(ev) == napi_ok; }

// A request for JavaScript: remembered under a new id, then posted. When the channel is closing
// (the process is going away) nobody will answer: EIO now.
void Session::PostRequest(Event* ev, const Pending& p) {
  ev->id = Remember(p);
  ev->file = p.file;
  ev->offset = p.offset;
  ev->length = p.size;
  const double id = ev->id;
  if (!refusing_.load() && Post(ev)) return;
  delete ev;
  if (fuse_req_t r = Take(id).req) fuse_reply_err(r, EIO);
}

double Session::Remember(const Pending& p) {
  std::lock_guard<std::mutex> lock(reqMu_);
  const uint64_t id = nextId_++;
  pending_.emplace(id, p);
  return static_cast<double>(id);
}

Pending Session::Take(double id) {
  std::lock_guard<std::mutex> lock(reqMu_);
  auto it = pending_.find(static_cast<uint64_t>(id));
  if (it == pending_.end()) return Pending{};
  Pending p = it->second;
  pending_.erase(it);
  return p;
}

// Answering a request with the wrong call is a bug in JavaScript: the request gets EIO (it must
// not be left unanswered) and the call throws.
Session::Answer Session::TakeAnswer(const Napi::CallbackInfo& info, size_t args, const char* usage, int kind, int otherKind) {
  if (info.Length() != args) throw Napi::TypeError::New(info.Env(), usage);
  const uint64_t id = encfs::WholeNumber(info[0], "request id", 1);
  Answer a{std::shared_lock<std::shared_mutex>(gate_), Pending{}};
  if (gone_) return a;
  a.p = Take(static_cast<double>(id));
  if (!a.p.req || (Kinds(kind, otherKind) & (1u << a.p.kind))) return a;
  fuse_reply_err(a.p.req, EIO);
  throw Napi::TypeError::New(info.Env(), std::string(usage) + ": request " + std::to_string(id) + " is not answered this way (its kind is " + std::to_string(a.p.kind) + ")");
}

Napi::Value Session::ReplyData(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto buf = encfs::BufferArg(info[1], "replyData: buffer");
  Answer a = TakeAnswer(info, 2, "replyData(id, buffer)", kReadData, kRead);
  if (!a.p.req) return Napi::Boolean::New(env, false);
  if (buf.Length() > a.p.size) {
    fuse_reply_err(a.p.req, EIO);
    throw Napi::RangeError::New(env, "replyData: " + std::to_string(buf.Length()) + " bytes answer a read of " + std::to_string(a.p.size));
  }
  fuse_reply_buf(a.p.req, reinterpret_cast<const char*>(buf.Data()), buf.Length());
  return Napi::Boolean::New(env, true);
}

// A kRead miss whose bytes JavaScript has now cached: answered by a retry thread from the table,
// or with EIO at shutdown if the retry threads are gone by then.
Napi::Value Session::Retry(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Answer a = TakeAnswer(info, 1, "retry(id)", kRead, kRead);
  if (!a.p.req) return Napi::Boolean::New(env, false);
  bool queued;
  {
    std::lock_guard<std::mutex> guard(reqMu_);
    queued = !retryStop_;
    if (queued) retries_.push_back(a.p);
  }
  if (queued) retryCv_.notify_one();
  else fuse_reply_err(a.p.req, EIO);  // the retry threads are gone (stopping)
  return Napi::Boolean::New(env, true);
}

Napi::Value Session::ReplyWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Answer a = TakeAnswer(info, 2, "replyWrite(id, count)", kWrite, kWriteEncrypted);
  if (!a.p.req) return Napi::Boolean::New(env, false);
  uint64_t count = 0;
  try {
    count = encfs::WholeNumber(info[1], "replyWrite: count", 0, static_cast<double>(a.p.size));
  } catch (...) {
    fuse_reply_err(a.p.req, EIO);
    throw;
  }
  fuse_reply_write(a.p.req, static_cast<size_t>(count));
  return Napi::Boolean::New(env, true);
}

// errno 0 is success, for an fsync only; any request may be answered with an error.
Napi::Value Session::ReplyError(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 2) throw Napi::TypeError::New(env, "replyError(id, errno)");
  const uint64_t id = encfs::WholeNumber(info[0], "request id", 1);
  const int err = static_cast<int>(encfs::WholeNumber(info[1], "replyError: errno", 0, kMaxErrno));
  std::shared_lock<std::shared_mutex> lock(gate_);
  if (gone_) return Napi::Boolean::New(env, false);
  Pending p = Take(static_cast<double>(id));
  if (!p.req) return Napi::Boolean::New(env, false);
  if (err == 0 && p.kind != kFsync) {
    fuse_reply_err(p.req, EIO);
    throw Napi::RangeError::New(env, "replyError: errno 0 (success) answers an fsync only; request " + std::to_string(id) + " is of kind " + std::to_string(p.kind));
  }
  fuse_reply_err(p.req, err);
  return Napi::Boolean::New(env, true);
}

void Session::RetryWorker() {
  for (;;) {
    Pending p;
    {
      std::unique_lock<std::mutex> lock(reqMu_);
      retryCv_.wait(lock, [this] { return retryStop_ || !retries_.empty(); });
      // Stopping: what is left is answered with EIO under the gate when the session is destroyed.
      if (retryStop_) return;
      p = retries_.back();
      retries_.pop_back();
    }
    if (ServeNative(p.req, files_[p.file], p.offset, p.size, true)) continue;
    // The range is gone again (evicted) or too large to serve natively: JavaScript answers with the bytes.
    PostRequest(new Event(kReadData), Pending{p.req, kReadData, p.file, p.offset, p.size});
  }
}

void Session::NoteTouch(File& f, uint64_t offset, double length) {
  bool post = false;
  {
    std::lock_guard<std::mutex> lock(touchMu_);
    f.touched.push_back(static_cast<double>(f.offset + offset));
    f.touched.push_back(length);
    if (!touchPosted_) post = touchPosted_ = true;
  }
  if (post) {
    auto* ev = new Event(kTouch);
    if (!Post(ev)) delete ev;
  }
}

// Reads served natively since the last call, per file: [Float64Array of (offset, length) pairs | null, ...].
Napi::Value Session::DrainTouches(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env, files_.size());
  std::lock_guard<std::mutex> lock(touchMu_);
  touchPosted_ = false;
  for (size_t i = 0; i < files_.size(); i++) {
    auto& v = files_[i].touched;
    if (v.empty()) {
      out.Set(static_cast<uint32_t>(i), env.Null());
      continue;
    }
    auto arr = Napi::Float64Array::New(env, v.size());
    std::memcpy(arr.Data(), v.data(), v.size() * sizeof(double));
    v.clear();
    out.Set(static_cast<uint32_t>(i), arr);
  }
  return out;
}

Napi::Value Session::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("nativeReads", static_cast<double>(nativeReads_.load()));
  o.Set("nativeBytes", static_cast<double>(nativeBytes_.load()));
  o.Set("postedReads", static_cast<double>(postedReads_.load()));
  o.Set("postedWrites", static_cast<double>(postedWrites_.load()));
  o.Set("postedFsyncs", static_cast<double>(postedFsyncs_.load()));
  {
    std::lock_guard<std::mutex> lock(reqMu_);
    o.Set("pending", static_cast<double>(pending_.size() + retries_.size()));
  }
  return o;
}

}  // namespace encfs_fuse3
