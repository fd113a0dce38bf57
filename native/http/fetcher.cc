// Blob transfers on libcurl, off the JavaScript main thread (see docs/data-path.md, "The HTTP
// client"). One curl multi handle runs on its own thread and owns every connection; a GET writes
// the answer's body straight into the caller's Buffer (held by a reference until the transfer
// ends), a PUT sends its body from the caller's Buffers. Completions reach JavaScript in batches
// through one typed thread-safe function, so the main thread never parses HTTP nor touches body
// bytes.
//
// What a request carries (URL with its SAS, x-ms-* headers, a bearer token) is JavaScript's
// business, but some of it comes from places the host can influence (an ETag, a lease id, a
// token): every string is checked here before libcurl sees it (transfer.cc), and only http and
// https are spoken. Retries, resumption and error mapping stay in src/storage/native-ranged-get.ts.
//
// Lifetimes: the JavaScript object is kept alive (Ref) until its channel is finalized, after
// close() or at process teardown; the finalizer joins the transfer thread and frees what was
// never delivered, so neither the thread nor a queued completion outlives the object.
#include <napi.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <vector>

#include "../arg_checks.h"
#include "transfer.h"

namespace encfs_http {

class Fetcher;
void CallDone(Napi::Env env, Napi::Function onDone, Fetcher* fetcher, void* unused);
using DoneChannel = Napi::TypedThreadSafeFunction<Fetcher, void, CallDone>;

class Fetcher : public Napi::ObjectWrap<Fetcher> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Fetcher",
                       {
                           InstanceMethod<&Fetcher::Get>("get"),
                           InstanceMethod<&Fetcher::Put>("put"),
                           InstanceMethod<&Fetcher::Cancel>("cancel"),
                           InstanceMethod<&Fetcher::Close>("close"),
                           InstanceMethod<&Fetcher::Stats>("stats"),
                       });
  }

  explicit Fetcher(const Napi::CallbackInfo& info);
  ~Fetcher() override { StopThread(); }

  // Main thread: every finished transfer is released and reported.
  void Deliver(Napi::Env env, Napi::Function onDone);
  static void OnChannelFinalized(Napi::Env env, void*, Fetcher* f);

 private:
  Napi::Value Get(const Napi::CallbackInfo& info) { return Start(info, false); }
  Napi::Value Put(const Napi::CallbackInfo& info) { return Start(info, true); }
  Napi::Value Start(const Napi::CallbackInfo& info, bool upload);
  void ReadBody(const Napi::CallbackInfo& info, Transfer& t, bool upload);
  Napi::Value Cancel(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);

  void Run();
  void Begin(Transfer* t);
  void Finish(Transfer* t);
  void FailAll(const std::string& why);
  void StopThread();

  // Options, fixed at construction.
  std::string userAgent_;
  std::string caPem_;
  long bufferSize_ = 256 * 1024;

  CURLM* multi_ = nullptr;
  std::thread worker_;
  std::atomic<bool> stopping_{false};
  bool stopped_ = false;

  // Main thread -> worker.
  std::mutex inMu_;
  std::deque<Transfer*> incoming_;
  std::vector<uint32_t> cancels_;

  // Worker -> main thread.
  std::mutex outMu_;
  std::vector<Transfer*> done_;
  bool posted_ = false;
  DoneChannel channel_;
  bool channelOpen_ = false;

  // Worker only.
  std::unordered_map<uint32_t, Transfer*> active_;
  std::vector<CURL*> idle_;

  // Main thread only.
  uint32_t nextId_ = 1;
  uint32_t inFlight_ = 0;
  double started_ = 0;
};

void CallDone(Napi::Env env, Napi::Function onDone, Fetcher* fetcher, void*) {
  // At teardown the channel goes with calls still queued: the finalizer has freed their transfers.
  if (env == nullptr || onDone.IsEmpty()) return;
  fetcher->Deliver(env, onDone);
}

// new Fetcher({ maxHostConnections?, bufferSize?, userAgent?, caPem? }, onDone)
Fetcher::Fetcher(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Fetcher>(info) {
  Napi::Env env = info.Env();
  if (info.Length() != 2 || !info[0].IsObject() || !info[1].IsFunction()) throw Napi::TypeError::New(env, "new Fetcher(options, onDone)");
  auto o = info[0].As<Napi::Object>();
  long maxHost = 16;
  if (o.Has("maxHostConnections")) maxHost = static_cast<long>(encfs::WholeNumber(o.Get("maxHostConnections"), "maxHostConnections", 1, 1024));
  if (o.Has("bufferSize")) bufferSize_ = static_cast<long>(encfs::WholeNumber(o.Get("bufferSize"), "bufferSize", 1024, CURL_MAX_READ_SIZE));
  if (o.Has("userAgent")) {
    userAgent_ = encfs::StringArg(o.Get("userAgent"), "userAgent");
    if (!HeaderProblem("User-Agent: " + userAgent_).empty()) throw Napi::TypeError::New(env, "userAgent may not hold CR, LF or NUL");
  }
  if (o.Has("caPem")) {
    auto b = encfs::BufferArg(o.Get("caPem"), "caPem");
    caPem_.assign(reinterpret_cast<const char*>(b.Data()), b.Length());
  }
  multi_ = curl_multi_init();
  if (!multi_) throw Napi::Error::New(env, "curl_multi_init failed");
  if (curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS, maxHost) != CURLM_OK || curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, maxHost * 2) != CURLM_OK) {
    curl_multi_cleanup(multi_);
    throw Napi::Error::New(env, "curl_multi_setopt refused the connection limits");
  }
  // The thread first: it posts nothing before a transfer is started, and if the channel cannot be
  // made it is stopped here, before any finalizer could refer to this object.
  try {
    worker_ = std::thread([this] { Run(); });
  } catch (const std::system_error& e) {
    curl_multi_cleanup(multi_);
    throw Napi::Error::New(env, std::string("cannot start the transfer thread: ") + e.what());
  }
  try {
    channel_ = DoneChannel::New(env, info[1].As<Napi::Function>(), "encfs-http", 0, 1, this, OnChannelFinalized);
  } catch (...) {
    StopThread();
    throw;
  }
  channelOpen_ = true;
  // Idle, the fetcher must not keep the process alive.
  channel_.Unref(env);
  Ref();
}

void Fetcher::ReadBody(const Napi::CallbackInfo& info, Transfer& t, bool upload) {
  Napi::Env env = info.Env();
  if (upload && info[2].IsArray()) {
    auto list = info[2].As<Napi::Array>();
    for (uint32_t i = 0; i < list.Length(); i++) {
      auto b = encfs::BufferArg(list.Get(i), "put: body[]");
      t.parts.emplace_back(b.Data(), b.Length());
      t.length += b.Length();
    }
    return;
  }
  auto buf = encfs::BufferArg(info[2], upload ? "put: body" : "get: target");
  t.data = buf.Data();
  t.length = buf.Length();
  if (upload) t.parts.emplace_back(buf.Data(), buf.Length());
  if (upload) return;
  if (t.length == 0) throw Napi::RangeError::New(env, "get: an empty target asks for nothing");
  t.first = encfs::WholeNumber(info[4], "get: first");
  if (static_cast<double>(t.first) + static_cast<double>(t.length) > encfs::kMaxSafeInteger) throw Napi::RangeError::New(env, "get: the range ends past 2^53");
}

// get(url, headers, target, timeoutMs, first) / put(url, headers, body: Buffer | Buffer[], timeoutMs): the transfer's id.
Napi::Value Fetcher::Start(const Napi::CallbackInfo& info, bool upload) {
  Napi::Env env = info.Env();
  if (stopping_.load()) throw Napi::Error::New(env, "the fetcher is closed");
  if (info.Length() != (upload ? 4u : 5u) || !info[1].IsArray()) {
    throw Napi::TypeError::New(env, upload ? "put(url, headers, body, timeoutMs)" : "get(url, headers, target, timeoutMs, first)");
  }
  auto t = std::make_unique<Transfer>();
  t->upload = upload;
  t->url = encfs::StringArg(info[0], "url");
  if (std::string why = UrlProblem(t->url); !why.empty()) {
    Napi::Error e = Napi::TypeError::New(env, "url: " + why);
    e.Set("code", Napi::String::New(env, "HTTP_URL_REFUSED"));
    throw e;
  }
  auto hs = info[1].As<Napi::Array>();
  for (uint32_t i = 0; i < hs.Length(); i++) {
    std::string h = encfs::StringArg(hs.Get(i), "headers[]");
    if (std::string why = HeaderProblem(h); !why.empty()) {
      Napi::Error e = Napi::TypeError::New(env, "headers[" + std::to_string(i) + "]: " + why);
      e.Set("code", Napi::String::New(env, "HTTP_HEADER_INVALID"));
      throw e;
    }
    t->headers.push_back(std::move(h));
  }
  ReadBody(info, *t, upload);
  t->timeoutMs = static_cast<long>(encfs::WholeNumber(info[3], "timeoutMs", 0, 2147483647));
  // The array (for a gathered body) holds its Buffers: the caller must not change it meanwhile.
  t->keep = Napi::Reference<Napi::Value>::New(info[2], 1);
  t->id = nextId_++;
  if (nextId_ == 0) nextId_ = 1;
  const uint32_t id = t->id;
  // Busy, it keeps the process alive.
  if (inFlight_++ == 0) channel_.Ref(env);
  started_++;
  {
    std::lock_guard<std::mutex> lock(inMu_);
    incoming_.push_back(t.release());
  }
  curl_multi_wakeup(multi_);
  return Napi::Number::New(env, id);
}

// Ends a transfer early; its completion still follows (cancelled), after which the buffer is free.
Napi::Value Fetcher::Cancel(const Napi::CallbackInfo& info) {
  if (info.Length() != 1) throw Napi::TypeError::New(info.Env(), "cancel(id)");
  const auto id = static_cast<uint32_t>(encfs::WholeNumber(info[0], "cancel: id", 1, 4294967295.0));
  if (stopping_.load()) return info.Env().Undefined();
  {
    std::lock_guard<std::mutex> lock(inMu_);
    cancels_.push_back(id);
  }
  curl_multi_wakeup(multi_);
  return info.Env().Undefined();
}

Napi::Value Fetcher::Stats(const Napi::CallbackInfo& info) {
  auto o = Napi::Object::New(info.Env());
  o.Set("inFlight", inFlight_);
  o.Set("started", started_);
  return o;
}

void Fetcher::Begin(Transfer* t) {
  CURL* e;
  if (!idle_.empty()) {
    e = idle_.back();
    idle_.pop_back();
    curl_easy_reset(e);
  } else {
    e = curl_easy_init();
  }
  if (!e) {
    t->failure = kSetup;
    t->message = "curl_easy_init failed";
    return Finish(t);
  }
  t->easy = e;
  if (std::string why = Configure(e, t, userAgent_, caPem_, bufferSize_); !why.empty()) {
    t->failure = kSetup;
    t->message = why;
    return Finish(t);
  }
  active_.emplace(t->id, t);
  if (const CURLMcode mc = curl_multi_add_handle(multi_, e); mc != CURLM_OK) {
    active_.erase(t->id);
    t->failure = kSetup;
    t->message = std::string("curl_multi_add_handle: ") + curl_multi_strerror(mc);
    t->easy = nullptr;
    curl_easy_cleanup(e);
    return Finish(t);
  }
}

// Worker: the transfer leaves libcurl and is queued for JavaScript.
void Fetcher::Finish(Transfer* t) {
  if (active_.erase(t->id) > 0 && t->easy) curl_multi_remove_handle(multi_, t->easy);
  if (t->easy) {
    if (idle_.size() < 64) idle_.push_back(t->easy);
    else curl_easy_cleanup(t->easy);
    t->easy = nullptr;
  }
  curl_slist_free_all(t->slist);
  t->slist = nullptr;
  bool post;
  {
    std::lock_guard<std::mutex> lock(outMu_);
    done_.push_back(t);
    post = !posted_;
    posted_ = true;
  }
  // When the channel is closing the call is refused: the finalizer frees what stays in done_.
  if (post) channel_.NonBlockingCall();
}

// Worker: libcurl's multi handle failed as a whole; every transfer in it ends with that.
void Fetcher::FailAll(const std::string& why) {
  std::vector<Transfer*> left;
  for (auto& kv : active_) left.push_back(kv.second);
  for (Transfer* t : left) {
    t->failure = kSetup;
    t->message = why;
    Finish(t);
  }
}

void Fetcher::Run() {
  while (!stopping_.load()) {
    std::deque<Transfer*> add;
    std::vector<uint32_t> cancel;
    {
      std::lock_guard<std::mutex> lock(inMu_);
      add.swap(incoming_);
      cancel.swap(cancels_);
    }
    for (Transfer* t : add) Begin(t);
    for (uint32_t id : cancel) {
      auto it = active_.find(id);
      if (it == active_.end()) continue;  // already finished
      it->second->failure = kCancelled;
      Finish(it->second);
    }
    int running = 0;
    if (const CURLMcode mc = curl_multi_perform(multi_, &running); mc != CURLM_OK) FailAll(std::string("curl_multi_perform: ") + curl_multi_strerror(mc));
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(multi_, &left)) {
      if (m->msg != CURLMSG_DONE) continue;
      Transfer* t = nullptr;
      if (curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, reinterpret_cast<char**>(&t)) != CURLE_OK || !t) continue;
      t->result = m->data.result;
      Finish(t);
    }
    if (const CURLMcode mc = curl_multi_poll(multi_, nullptr, 0, 1000, nullptr); mc != CURLM_OK) {
      FailAll(std::string("curl_multi_poll: ") + curl_multi_strerror(mc));
      std::this_thread::sleep_for(std::chrono::milliseconds(10));  // not a busy loop on a broken handle
    }
  }
  // Closing: whatever is left ends as cancelled.
  {
    std::lock_guard<std::mutex> lock(inMu_);
    for (Transfer* t : incoming_) active_.emplace(t->id, t);
    incoming_.clear();
  }
  std::vector<Transfer*> left;
  for (auto& kv : active_) left.push_back(kv.second);
  for (Transfer* t : left) {
    t->failure = kCancelled;
    Finish(t);
  }
  for (CURL* e : idle_) curl_easy_cleanup(e);
  idle_.clear();
}

// onDone(id, code, status, bytes, message, headers): code is libcurl's result, or a Failure.
void Fetcher::Deliver(Napi::Env env, Napi::Function onDone) {
  std::vector<std::unique_ptr<Transfer>> batch;
  {
    std::lock_guard<std::mutex> lock(outMu_);
    for (Transfer* t : done_) batch.emplace_back(t);
    done_.clear();
    posted_ = false;
  }
  // Owned before any callback runs, and every transfer of the batch is reported even when a
  // callback throws (its promise would never settle otherwise): the first error is rethrown after.
  std::optional<Napi::Error> thrown;
  for (auto& t : batch) {
    t->keep.Reset();
    if (--inFlight_ == 0 && channelOpen_) channel_.Unref(env);
    const int code = t->failure != 0 ? t->failure : static_cast<int>(t->result);
    const bool failed = code != 0 || t->status < 200 || t->status >= 300;
    std::string message = t->message;
    if (message.empty() && t->result != CURLE_OK) message = t->errbuf[0] ? t->errbuf : curl_easy_strerror(t->result);
    try {
      onDone.Call({
          Napi::Number::New(env, t->id),
          Napi::Number::New(env, code),
          Napi::Number::New(env, static_cast<double>(t->status)),
          Napi::Number::New(env, static_cast<double>(t->pos)),
          message.empty() ? env.Undefined() : Napi::String::New(env, message),
          failed ? Napi::String::New(env, t->responseHeaders) : env.Undefined(),
      });
    } catch (const Napi::Error& e) {
      if (!thrown) thrown = e;
    }
  }
  if (thrown) throw *thrown;
}

void Fetcher::StopThread() {
  if (stopped_) return;
  stopped_ = true;
  stopping_.store(true);
  if (multi_) curl_multi_wakeup(multi_);
  if (worker_.joinable()) worker_.join();
  if (multi_) curl_multi_cleanup(multi_);
  multi_ = nullptr;
}

// Cancels everything in flight (each still completes, as cancelled) and ends the thread.
Napi::Value Fetcher::Close(const Napi::CallbackInfo& info) {
  StopThread();
  if (channelOpen_) {
    channelOpen_ = false;
    channel_.Release();
  }
  return info.Env().Undefined();
}

void Fetcher::OnChannelFinalized(Napi::Env, void*, Fetcher* f) {
  f->StopThread();
  f->channelOpen_ = false;
  // Completions never delivered (the process is going): their Buffers' references and memory.
  std::vector<Transfer*> left;
  {
    std::lock_guard<std::mutex> lock(f->outMu_);
    left.swap(f->done_);
  }
  for (Transfer* t : left) delete t;
  f->Unref();
}

namespace {

Napi::Value Version(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), curl_version()); }

// Where libcurl looks for CA certificates when told nothing (Debian: /etc/ssl/certs/ca-certificates.crt).
Napi::Value DefaultCaInfo(const Napi::CallbackInfo& info) {
  CURL* e = curl_easy_init();
  char* path = nullptr;
  Napi::Value out = info.Env().Undefined();
  if (e && curl_easy_getinfo(e, CURLINFO_CAINFO, &path) == CURLE_OK && path) out = Napi::String::New(info.Env(), path);
  if (e) curl_easy_cleanup(e);
  return out;
}

Napi::Object Failures(Napi::Env env) {
  return encfs::FrozenNumbers(env, {{"cancelled", kCancelled}, {"overflow", kOverflow}, {"mismatch", kMismatch}, {"setup", kSetup}});
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) throw Napi::Error::New(env, "curl_global_init failed");
  exports.Set("Fetcher", Fetcher::Define(env));
  exports.Set("curlVersion", Napi::Function::New(env, Version));
  exports.Set("defaultCaInfo", Napi::Function::New(env, DefaultCaInfo));
  exports.Set("failures", Failures(env));
  return exports;
}

}  // namespace encfs_http

namespace {
Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return encfs_http::Init(env, exports); }
}  // namespace

NODE_API_MODULE(encfs_http, InitModule)
