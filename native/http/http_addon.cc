// Blob transfers on libcurl, off the JavaScript main thread (see docs/data-path.md, "The HTTP
// client"). One curl multi handle runs on its own thread and owns every connection; a GET writes
// the response body straight into the caller's Buffer (held by a reference until the transfer
// ends), a PUT sends its body from the caller's Buffer. Completions reach JavaScript in batches
// through one thread-safe function, so the main thread never parses HTTP nor touches body bytes.
//
// What a request carries (URL with its SAS, x-ms-* headers, a bearer token) is JavaScript's
// business: this file moves bytes and reports status, the raw headers of a failed answer, and
// libcurl's result. Retries, resumption and error mapping stay in src/storage/native-ranged-get.ts.
#include <napi.h>
#include <curl/curl.h>

#include <atomic>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

// A failed answer's headers are kept for the error (x-ms-error-code, Retry-After); its body is not.
constexpr size_t kMaxHeaderBytes = 16 * 1024;

struct Transfer {
  uint32_t id = 0;
  bool upload = false;
  std::string url;
  std::vector<std::string> headers;
  uint8_t* data = nullptr;
  size_t length = 0;
  size_t pos = 0;
  // A PUT's body may be gathered from several Buffers (the block cache's ranges, uncopied).
  std::vector<std::pair<const uint8_t*, size_t>> parts;
  size_t part = 0;
  size_t partPos = 0;
  long timeoutMs = 0;
  // Main thread only: keeps the Buffer's memory alive while libcurl writes into (or reads from) it.
  Napi::Reference<Napi::Value> keep;

  // Worker thread only, until completion.
  CURL* easy = nullptr;
  curl_slist* slist = nullptr;
  long status = 0;
  bool overflow = false;
  bool cancelled = false;
  std::string responseHeaders;
  char errbuf[CURL_ERROR_SIZE] = {0};
  CURLcode result = CURLE_OK;
};

size_t OnHeader(char* p, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t len = size * n;
  // Every response (a 100 Continue, then the real one) starts with its status line.
  if (len > 5 && std::memcmp(p, "HTTP/", 5) == 0) {
    t->responseHeaders.clear();
    const char* sp = static_cast<const char*>(std::memchr(p, ' ', len));
    t->status = sp ? std::strtol(sp + 1, nullptr, 10) : 0;
  }
  if (t->responseHeaders.size() + len <= kMaxHeaderBytes) t->responseHeaders.append(p, len);
  return len;
}

size_t OnWrite(char* p, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t len = size * n;
  // Only a successful answer's body is the blob's bytes; an error's body (XML) is dropped.
  if (t->status < 200 || t->status >= 300 || t->upload) return len;
  if (t->pos + len > t->length) {
    t->overflow = true;
    return 0;  // CURLE_WRITE_ERROR: the server sent more than was asked for
  }
  std::memcpy(t->data + t->pos, p, len);
  t->pos += len;
  return len;
}

size_t OnRead(char* p, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t room = size * n;
  size_t out = 0;
  while (room > 0 && t->part < t->parts.size()) {
    const auto& [base, len] = t->parts[t->part];
    const size_t k = std::min(room, len - t->partPos);
    std::memcpy(p + out, base + t->partPos, k);
    out += k;
    room -= k;
    t->partPos += k;
    if (t->partPos == len) {
      t->part++;
      t->partPos = 0;
    }
  }
  t->pos += out;
  return out;
}

class Fetcher : public Napi::ObjectWrap<Fetcher> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Fetcher", {
      InstanceMethod<&Fetcher::Get>("get"),
      InstanceMethod<&Fetcher::Put>("put"),
      InstanceMethod<&Fetcher::Cancel>("cancel"),
      InstanceMethod<&Fetcher::Close>("close"),
      InstanceMethod<&Fetcher::Stats>("stats"),
    });
  }

  explicit Fetcher(const Napi::CallbackInfo& info);
  ~Fetcher() override { Stop(); }

 private:
  Napi::Value Get(const Napi::CallbackInfo& info) { return Start(info, false); }
  Napi::Value Put(const Napi::CallbackInfo& info) { return Start(info, true); }
  Napi::Value Start(const Napi::CallbackInfo& info, bool upload);
  Napi::Value Cancel(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);

  void Run();
  void Begin(Transfer* t);
  void Finish(Transfer* t);
  void Deliver(Napi::Env env, Napi::Function cb);
  void Stop();

  // Options, fixed at construction.
  std::string userAgent;
  std::string caPem;
  long bufferSize = 256 * 1024;

  CURLM* multi = nullptr;
  std::thread worker;
  std::atomic<bool> stopping{false};
  bool stopped = false;

  // Main thread -> worker.
  std::mutex inMu;
  std::deque<Transfer*> incoming;
  std::vector<uint32_t> cancels;

  // Worker -> main thread.
  std::mutex outMu;
  std::vector<Transfer*> done;
  bool posted = false;
  Napi::ThreadSafeFunction tsfn;

  // Worker only.
  std::unordered_map<uint32_t, Transfer*> active;
  std::vector<CURL*> idle;

  // Main thread only.
  uint32_t nextId = 1;
  uint32_t inFlight = 0;
  bool referenced = false;
  double started = 0;
};

Fetcher::Fetcher(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Fetcher>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsFunction()) {
    throw Napi::TypeError::New(env, "new Fetcher(options, onDone)");
  }
  auto o = info[0].As<Napi::Object>();
  long maxHost = 16;
  if (o.Has("maxHostConnections")) maxHost = o.Get("maxHostConnections").As<Napi::Number>().Int32Value();
  if (o.Has("bufferSize")) bufferSize = o.Get("bufferSize").As<Napi::Number>().Int32Value();
  if (o.Has("userAgent")) userAgent = o.Get("userAgent").As<Napi::String>().Utf8Value();
  if (o.Has("caPem") && o.Get("caPem").IsBuffer()) {
    auto b = o.Get("caPem").As<Napi::Buffer<char>>();
    caPem.assign(b.Data(), b.Length());
  }
  multi = curl_multi_init();
  if (!multi) throw Napi::Error::New(env, "curl_multi_init failed");
  curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, maxHost);
  curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, maxHost * 2);
  tsfn = Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "encfs-http", 0, 1);
  // Idle, the fetcher must not keep the process alive.
  tsfn.Unref(env);
  worker = std::thread([this] { Run(); });
}

// get(url, headers[], target) / put(url, headers[], body: Buffer | Buffer[]), timeoutMs: the transfer's id.
Napi::Value Fetcher::Start(const Napi::CallbackInfo& info, bool upload) {
  Napi::Env env = info.Env();
  if (stopping.load()) throw Napi::Error::New(env, "the fetcher is closed");
  const bool gathered = upload && info.Length() > 2 && info[2].IsArray();
  if (info.Length() < 4 || !info[0].IsString() || !info[1].IsArray() || !(info[2].IsBuffer() || gathered) || !info[3].IsNumber()) {
    throw Napi::TypeError::New(env, upload ? "put(url, headers, body, timeoutMs)" : "get(url, headers, target, timeoutMs)");
  }
  auto t = std::make_unique<Transfer>();
  t->id = nextId++;
  if (nextId == 0) nextId = 1;
  t->upload = upload;
  t->url = info[0].As<Napi::String>().Utf8Value();
  auto hs = info[1].As<Napi::Array>();
  for (uint32_t i = 0; i < hs.Length(); i++) t->headers.push_back(hs.Get(i).As<Napi::String>().Utf8Value());
  if (gathered) {
    auto list = info[2].As<Napi::Array>();
    for (uint32_t i = 0; i < list.Length(); i++) {
      Napi::Value v = list.Get(i);
      if (!v.IsBuffer()) throw Napi::TypeError::New(env, "put(url, headers, body, timeoutMs): body is a Buffer or an array of Buffers");
      auto b = v.As<Napi::Buffer<uint8_t>>();
      t->parts.emplace_back(b.Data(), b.Length());
      t->length += b.Length();
    }
  } else {
    auto buf = info[2].As<Napi::Buffer<uint8_t>>();
    t->data = buf.Data();
    t->length = buf.Length();
    if (upload) t->parts.emplace_back(buf.Data(), buf.Length());
  }
  t->timeoutMs = info[3].As<Napi::Number>().Int64Value();
  // The array (for a gathered body) holds its Buffers: the caller must not change it meanwhile.
  t->keep = Napi::Reference<Napi::Value>::New(info[2], 1);
  const uint32_t id = t->id;
  if (inFlight++ == 0 && !referenced) {
    // Busy, it keeps the process alive, and JavaScript dropping it must not free it.
    tsfn.Ref(env);
    Ref();
    referenced = true;
  }
  started++;
  {
    std::lock_guard<std::mutex> lock(inMu);
    incoming.push_back(t.release());
  }
  curl_multi_wakeup(multi);
  return Napi::Number::New(env, id);
}

// Ends a transfer early; its completion still follows (cancelled), after which the buffer is free.
Napi::Value Fetcher::Cancel(const Napi::CallbackInfo& info) {
  {
    std::lock_guard<std::mutex> lock(inMu);
    cancels.push_back(info[0].As<Napi::Number>().Uint32Value());
  }
  curl_multi_wakeup(multi);
  return info.Env().Undefined();
}

Napi::Value Fetcher::Stats(const Napi::CallbackInfo& info) {
  auto o = Napi::Object::New(info.Env());
  o.Set("inFlight", inFlight);
  o.Set("started", started);
  return o;
}

void Fetcher::Begin(Transfer* t) {
  CURL* e;
  if (!idle.empty()) {
    e = idle.back();
    idle.pop_back();
    curl_easy_reset(e);
  } else {
    e = curl_easy_init();
  }
  t->easy = e;
  if (!e) {
    t->result = CURLE_OUT_OF_MEMORY;
    Finish(t);
    return;
  }
  for (const auto& h : t->headers) t->slist = curl_slist_append(t->slist, h.c_str());
  if (t->upload) t->slist = curl_slist_append(t->slist, "Expect:");  // no 100-continue round trip
  curl_easy_setopt(e, CURLOPT_URL, t->url.c_str());
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->slist);
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PRIVATE, t);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, OnWrite);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(e, CURLOPT_BUFFERSIZE, bufferSize);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  if (t->timeoutMs > 0) curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, t->timeoutMs);
  if (!userAgent.empty()) curl_easy_setopt(e, CURLOPT_USERAGENT, userAgent.c_str());
  if (!caPem.empty()) {
    curl_blob blob{const_cast<char*>(caPem.data()), caPem.size(), CURL_BLOB_NOCOPY};
    curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &blob);
  }
  if (t->upload) {
    curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, OnRead);
    curl_easy_setopt(e, CURLOPT_READDATA, t);
    curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(t->length));
    curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, 1024L * 1024L);
  }
  active.emplace(t->id, t);
  curl_multi_add_handle(multi, e);
}

// Worker: the transfer leaves libcurl and is queued for JavaScript.
void Fetcher::Finish(Transfer* t) {
  active.erase(t->id);
  if (t->easy) {
    curl_multi_remove_handle(multi, t->easy);
    if (idle.size() < 64) idle.push_back(t->easy);
    else curl_easy_cleanup(t->easy);
    t->easy = nullptr;
  }
  curl_slist_free_all(t->slist);
  t->slist = nullptr;
  bool post;
  {
    std::lock_guard<std::mutex> lock(outMu);
    done.push_back(t);
    post = !posted;
    posted = true;
  }
  if (post) {
    auto call = [this](Napi::Env env, Napi::Function cb) { Deliver(env, cb); };
    tsfn.NonBlockingCall(call);
  }
}

void Fetcher::Run() {
  while (!stopping.load()) {
    std::deque<Transfer*> add;
    std::vector<uint32_t> cancel;
    {
      std::lock_guard<std::mutex> lock(inMu);
      add.swap(incoming);
      cancel.swap(cancels);
    }
    for (Transfer* t : add) Begin(t);
    for (uint32_t id : cancel) {
      auto it = active.find(id);
      if (it == active.end()) continue;  // already finished
      it->second->cancelled = true;
      it->second->result = CURLE_ABORTED_BY_CALLBACK;
      Finish(it->second);
    }
    int running = 0;
    curl_multi_perform(multi, &running);
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(multi, &left)) {
      if (m->msg != CURLMSG_DONE) continue;
      Transfer* t = nullptr;
      curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, reinterpret_cast<char**>(&t));
      if (!t) continue;
      t->result = m->data.result;
      Finish(t);
    }
    curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
  }
  // Closing: whatever is left ends as cancelled.
  {
    std::lock_guard<std::mutex> lock(inMu);
    for (Transfer* t : incoming) active.emplace(t->id, t);
    incoming.clear();
  }
  std::vector<Transfer*> left;
  for (auto& kv : active) left.push_back(kv.second);
  for (Transfer* t : left) {
    t->cancelled = true;
    t->result = CURLE_ABORTED_BY_CALLBACK;
    Finish(t);
  }
  for (CURL* e : idle) curl_easy_cleanup(e);
  idle.clear();
}

// Main thread: every finished transfer is released and reported as
// onDone(id, curlCode, status, bytes, message, headers).
void Fetcher::Deliver(Napi::Env env, Napi::Function cb) {
  std::vector<Transfer*> batch;
  {
    std::lock_guard<std::mutex> lock(outMu);
    batch.swap(done);
    posted = false;
  }
  for (Transfer* raw : batch) {
    std::unique_ptr<Transfer> t(raw);
    t->keep.Reset();
    if (--inFlight == 0 && referenced && env != nullptr) {
      tsfn.Unref(env);
      Unref();
      referenced = false;
    }
    if (env == nullptr || cb == nullptr) continue;
    const bool failed = t->result != CURLE_OK || t->status < 200 || t->status >= 300;
    std::string message;
    if (t->cancelled) message = "cancelled";
    else if (t->overflow) message = "overflow";
    else if (t->result != CURLE_OK) message = t->errbuf[0] ? t->errbuf : curl_easy_strerror(t->result);
    cb.Call({
      Napi::Number::New(env, t->id),
      Napi::Number::New(env, t->cancelled ? -1 : static_cast<int>(t->result)),
      Napi::Number::New(env, static_cast<double>(t->status)),
      Napi::Number::New(env, static_cast<double>(t->pos)),
      message.empty() ? env.Undefined() : Napi::String::New(env, message),
      failed ? Napi::String::New(env, t->responseHeaders) : env.Undefined(),
    });
  }
}

void Fetcher::Stop() {
  if (stopped) return;
  stopped = true;
  stopping.store(true);
  if (multi) curl_multi_wakeup(multi);
  if (worker.joinable()) worker.join();
  if (multi) curl_multi_cleanup(multi);
  multi = nullptr;
  tsfn.Release();
}

// Cancels everything in flight (each still completes, as cancelled) and ends the thread.
Napi::Value Fetcher::Close(const Napi::CallbackInfo& info) {
  Stop();
  return info.Env().Undefined();
}

Napi::Value Version(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), curl_version());
}

// Where libcurl looks for CA certificates when told nothing (Debian: /etc/ssl/certs/ca-certificates.crt).
Napi::Value DefaultCaInfo(const Napi::CallbackInfo& info) {
  CURL* e = curl_easy_init();
  char* path = nullptr;
  Napi::Value out = info.Env().Undefined();
  if (e && curl_easy_getinfo(e, CURLINFO_CAINFO, &path) == CURLE_OK && path) out = Napi::String::New(info.Env(), path);
  if (e) curl_easy_cleanup(e);
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) throw Napi::Error::New(env, "curl_global_init failed");
  exports.Set("Fetcher", Fetcher::Define(env));
  exports.Set("curlVersion", Napi::Function::New(env, Version));
  exports.Set("defaultCaInfo", Napi::Function::New(env, DefaultCaInfo));
  return exports;
}

}  // namespace

NODE_API_MODULE(encfs_http, Init)
