// encfs's FUSE data plane on libfuse3's low-level API (see docs/data-path.md).
//
// The session loop runs on libfuse's own threads (fuse_session_loop_mt). A READ whose bytes are
// all in a mirrored cache table is answered right there: plain files straight from the cached
// ranges (writev), userspace LUKS2 volumes decrypted with AES-XTS from the cached ciphertext
// into a per-thread reply buffer. Everything else (misses, writes, fsync) is posted to
// JavaScript through a thread-safe function and answered later from the main thread by request
// id; FUSE threads never touch V8 and the main thread never waits for the kernel. libfuse
// installs no signal handlers here: Node owns SIGTERM.
#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>
#include <napi.h>
#include <openssl/crypto.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "../xts_core.h"

namespace {

constexpr size_t kMaxRequest = 1024 * 1024;
constexpr double kTimeout = 3600.0;  // attributes and entries never change while mounted

// ---------------------------------------------------------------------------------------------
// The mirror of one BlockCache: cached ranges by start offset. JavaScript keeps each range's
// Buffer alive until retract() returns, and retract() waits until no FUSE thread uses it.

struct Extent {
  uint64_t start;
  uint64_t len;
  const uint8_t* data;
  int pins = 0;
};

struct Table {
  std::mutex mu;
  std::condition_variable cv;
  std::map<uint64_t, Extent*> map;

  ~Table() {
    for (auto& [k, e] : map) delete e;
  }

  // Removes one range, waiting (briefly: a copy or a decryption) for its readers.
  void RetractLocked(std::unique_lock<std::mutex>& lock, std::map<uint64_t, Extent*>::iterator it) {
    Extent* e = it->second;
    map.erase(it);
    cv.wait(lock, [e] { return e->pins == 0; });
    delete e;
  }
};

class TableWrap : public Napi::ObjectWrap<TableWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Table", {
      InstanceMethod("publish", &TableWrap::Publish),
      InstanceMethod("retract", &TableWrap::Retract),
      InstanceMethod("clear", &TableWrap::Clear),
      InstanceMethod("size", &TableWrap::Size),
    });
  }
  explicit TableWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TableWrap>(info), table(std::make_shared<Table>()) {}
  std::shared_ptr<Table> table;

 private:
  Napi::Value Publish(const Napi::CallbackInfo& info) {
    if (info.Length() != 2 || !info[0].IsNumber() || !info[1].IsBuffer()) throw Napi::TypeError::New(info.Env(), "publish(start, buffer)");
    const uint64_t start = static_cast<uint64_t>(info[0].As<Napi::Number>().DoubleValue());
    auto buf = info[1].As<Napi::Buffer<uint8_t>>();
    auto* e = new Extent{start, buf.Length(), buf.Data()};
    std::unique_lock<std::mutex> lock(table->mu);
    auto it = table->map.find(start);
    if (it != table->map.end()) table->RetractLocked(lock, it);
    table->map.emplace(start, e);
    return info.Env().Undefined();
  }
  Napi::Value Retract(const Napi::CallbackInfo& info) {
    if (info.Length() != 1 || !info[0].IsNumber()) throw Napi::TypeError::New(info.Env(), "retract(start)");
    const uint64_t start = static_cast<uint64_t>(info[0].As<Napi::Number>().DoubleValue());
    std::unique_lock<std::mutex> lock(table->mu);
    auto it = table->map.find(start);
    if (it != table->map.end()) table->RetractLocked(lock, it);
    return info.Env().Undefined();
  }
  Napi::Value Clear(const Napi::CallbackInfo& info) {
    std::unique_lock<std::mutex> lock(table->mu);
    while (!table->map.empty()) table->RetractLocked(lock, table->map.begin());
    return info.Env().Undefined();
  }
  Napi::Value Size(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> lock(table->mu);
    return Napi::Number::New(info.Env(), static_cast<double>(table->map.size()));
  }
};

// ---------------------------------------------------------------------------------------------

struct File {
  std::string name;
  uint64_t size = 0;
  bool writable = false;
  std::shared_ptr<Table> table;  // null: every read goes to JavaScript
  uint64_t offset = 0;           // where byte 0 of the file is in the table's coordinates
  bool xts = false;
  uint8_t key[64] = {0};
  size_t keyLen = 0;
  size_t unit = 0;
  bool plain64 = true;
  std::vector<double> touched;  // (offset, length) in table coordinates, not yet reported
};

// kRead: a miss, JavaScript decides; kReadData: JavaScript must answer with the bytes itself
// (a retry found the range gone again, or the file has no table).
// kWriteEncrypted: whole data units of an AES-XTS file, encrypted here on the FUSE thread.
enum EventKind { kRead = 1, kWrite = 2, kFsync = 3, kTouch = 4, kStopped = 5, kReadData = 6, kWriteEncrypted = 7 };

struct Pending {
  fuse_req_t req = nullptr;
  int file = 0;
  uint64_t offset = 0;
  size_t size = 0;
};

struct Event {
  explicit Event(int k) : kind(k) {}
  int kind;
  double id = 0;
  int file = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
  uint8_t* data = nullptr;  // kWrite: malloc'd copy of the request's bytes, handed to a Buffer
  std::string message;
};

// Per FUSE thread: the collected ranges and the reply buffer, reused from request to request.
thread_local std::vector<Extent*> tlsExtents;
thread_local std::vector<iovec> tlsIov;
thread_local std::unique_ptr<uint8_t[]> tlsReply;

uint64_t AlignDown(uint64_t n, uint64_t a) { return n / a * a; }
uint64_t AlignUp(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

class Session : public Napi::ObjectWrap<Session> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Session", {
      InstanceMethod("replyData", &Session::ReplyData),
      InstanceMethod("retry", &Session::Retry),
      InstanceMethod("replyWrite", &Session::ReplyWrite),
      InstanceMethod("replyError", &Session::ReplyError),
      InstanceMethod("drainTouches", &Session::DrainTouches),
      InstanceMethod("stats", &Session::Stats),
      InstanceMethod("unmount", &Session::Unmount),
      InstanceMethod("close", &Session::Close),
    });
  }

  explicit Session(const Napi::CallbackInfo& info);
  ~Session() override;

  // ---- FUSE operations (libfuse threads) ----
  static void OnInit(void* userdata, fuse_conn_info* conn);
  static void OnLookup(fuse_req_t req, fuse_ino_t parent, const char* name);
  static void OnGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  static void OnSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi);
  static void OnReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
  static void OnOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  static void OnRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
  static void OnWrite(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off, fuse_file_info* fi);
  static void OnFlush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  static void OnRelease(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  static void OnFsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi);
  static void OnStatfs(fuse_req_t req, fuse_ino_t ino);

 private:
  static Session* Of(fuse_req_t req) { return static_cast<Session*>(fuse_req_userdata(req)); }
  File* FileOf(fuse_ino_t ino) { return ino >= 2 && ino - 2 < files.size() ? &files[ino - 2] : nullptr; }
  void Attr(fuse_ino_t ino, struct stat* st);
  bool ServeNative(fuse_req_t req, File& f, uint64_t off, size_t size, bool loaded);
  void PostRead(int kind, const Pending& p);
  void RetryWorker();
  void NoteTouch(File& f, uint64_t offset, double length);
  bool Post(Event* ev);
  double Remember(const Pending& p);
  Pending Take(double id);
  void RunLoop();
  void Stop();
  void ZeroKeys();

  Napi::Value ReplyData(const Napi::CallbackInfo& info);
  Napi::Value Retry(const Napi::CallbackInfo& info);
  Napi::Value ReplyWrite(const Napi::CallbackInfo& info);
  Napi::Value ReplyError(const Napi::CallbackInfo& info);
  Napi::Value DrainTouches(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value Unmount(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  fuse_session* se = nullptr;
  std::string mountpoint;
  std::vector<File> files;
  time_t mountedAt = time(nullptr);
  Napi::ThreadSafeFunction tsfn;
  std::thread loop;
  std::mutex loopMu;
  std::condition_variable loopCv;
  bool loopDone = false;
  int loopResult = 0;
  std::atomic<bool> stopping{false};
  bool ended = false;
  bool closed = false;

  std::mutex pendingMu;
  std::unordered_map<uint64_t, Pending> pending;
  uint64_t nextId = 1;

  // Misses JavaScript has fetched: served by these threads as cache hits, off the main thread.
  std::vector<std::thread> retryThreads;
  std::mutex retryMu;
  std::condition_variable retryCv;
  std::vector<Pending> retries;
  bool retryStop = false;

  std::mutex touchMu;
  bool touchPosted = false;

  std::atomic<uint64_t> nativeReads{0}, nativeBytes{0}, postedReads{0}, postedWrites{0}, postedFsyncs{0};
};

// ---- setup ----

Session::Session(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Session>(info) {
  Napi::Env env = info.Env();
  if (info.Length() != 2 || !info[0].IsObject() || !info[1].IsFunction()) throw Napi::TypeError::New(env, "new Session(options, onEvent)");
  Napi::Object o = info[0].As<Napi::Object>();
  mountpoint = o.Get("mountpoint").As<Napi::String>().Utf8Value();
  const std::string fsname = o.Get("fsname").As<Napi::String>().Utf8Value();
  const std::string subtype = o.Get("subtype").As<Napi::String>().Utf8Value();
  Napi::Array list = o.Get("files").As<Napi::Array>();
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Object d = list.Get(i).As<Napi::Object>();
    File f;
    f.name = d.Get("name").As<Napi::String>().Utf8Value();
    f.size = static_cast<uint64_t>(d.Get("size").As<Napi::Number>().DoubleValue());
    f.writable = d.Get("writable").As<Napi::Boolean>();
    Napi::Value t = d.Get("table");
    if (t.IsObject()) {
      f.table = TableWrap::Unwrap(t.As<Napi::Object>())->table;
      f.offset = static_cast<uint64_t>(d.Get("offset").As<Napi::Number>().DoubleValue());
      Napi::Value x = d.Get("xts");
      if (x.IsObject()) {
        Napi::Object xo = x.As<Napi::Object>();
        auto key = xo.Get("key").As<Napi::Buffer<uint8_t>>();
        f.unit = xo.Get("unit").As<Napi::Number>().Uint32Value();
        if ((key.Length() != 32 && key.Length() != 64) || f.unit < 512 || f.unit > 4096 || f.unit % 512 != 0) {
          throw Napi::RangeError::New(env, "xts: a 32 or 64-byte key and a unit of 512 to 4096 bytes");
        }
        f.xts = true;
        f.keyLen = key.Length();
        std::memcpy(f.key, key.Data(), key.Length());
        f.plain64 = xo.Get("plain64").As<Napi::Boolean>();
      }
    }
    files.push_back(std::move(f));
  }

  const std::string opts = "fsname=" + fsname + ",subtype=" + subtype;
  std::vector<std::string> argv = {"encfs", "-o", opts};
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(cargv.size()), cargv.data());
  fuse_lowlevel_ops ops{};
  ops.init = OnInit;
  ops.lookup = OnLookup;
  ops.getattr = OnGetattr;
  ops.setattr = OnSetattr;
  ops.readdir = OnReaddir;
  ops.open = OnOpen;
  ops.read = OnRead;
  ops.write = OnWrite;
  ops.flush = OnFlush;
  ops.release = OnRelease;
  ops.fsync = OnFsync;
  ops.statfs = OnStatfs;
  se = fuse_session_new(&args, &ops, sizeof(ops), this);
  if (!se) {
    ZeroKeys();
    throw Napi::Error::New(env, "fuse_session_new failed (bad options?)");
  }
  if (fuse_session_mount(se, mountpoint.c_str()) != 0) {
    fuse_session_destroy(se);
    se = nullptr;
    ZeroKeys();
    throw Napi::Error::New(env, "mounting " + mountpoint + " failed (libfuse printed why on stderr)");
  }
  tsfn = Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "encfs-fuse3", 0, 1);
  // The FUSE threads use this object until close(): JavaScript dropping it must not free it.
  Ref();
  for (int i = 0; i < 2; i++) retryThreads.emplace_back([this] { RetryWorker(); });
  loop = std::thread([this] { RunLoop(); });
}

Session::~Session() {
  // Unmounted properly, this has nothing left to do; if JavaScript dropped a live session, do
  // not block the finaliser: detach from the mount and leave the threads.
  if (loop.joinable()) {
    if (se) fuse_session_exit(se);
    umount2(mountpoint.c_str(), MNT_DETACH);
    loop.detach();
  }
  for (auto& t : retryThreads) if (t.joinable()) t.detach();
  ZeroKeys();
}

void Session::ZeroKeys() {
  for (auto& f : files) OPENSSL_cleanse(f.key, sizeof(f.key));
}

void Session::RunLoop() {
  fuse_loop_config cfg{};
  cfg.clone_fd = 0;
  cfg.max_idle_threads = 10;
  const int res = fuse_session_loop_mt(se, &cfg);
  {
    std::lock_guard<std::mutex> lock(loopMu);
    loopDone = true;
    loopResult = res;
  }
  loopCv.notify_all();
  if (!stopping.load()) {
    // The mount went away without us (fusermount -u, or the connection was aborted).
    auto* ev = new Event(kStopped);
    ev->message = "the FUSE session ended by itself (" + std::to_string(res) + ")";
    if (!Post(ev)) delete ev;
  }
}

// ---- events to JavaScript ----

bool Session::Post(Event* ev) {
  auto call = [](Napi::Env env, Napi::Function cb, Event* e) {
    std::unique_ptr<Event> owned(e);
    if (env == nullptr || cb == nullptr) {
      free(e->data);
      return;
    }
    Napi::Value data = env.Undefined();
    if (e->data) {
      data = Napi::Buffer<uint8_t>::NewOrCopy(env, e->data, e->length, [](Napi::Env, uint8_t* p) { free(p); });
      e->data = nullptr;
    } else if (!e->message.empty()) {
      data = Napi::String::New(env, e->message);
    }
    cb.Call({Napi::Number::New(env, e->kind), Napi::Number::New(env, e->id), Napi::Number::New(env, e->file),
             Napi::Number::New(env, static_cast<double>(e->offset)), Napi::Number::New(env, static_cast<double>(e->length)), data});
  };
  return tsfn.NonBlockingCall(ev, call) == napi_ok;
}

double Session::Remember(const Pending& p) {
  std::lock_guard<std::mutex> lock(pendingMu);
  const uint64_t id = nextId++;
  pending.emplace(id, p);
  return static_cast<double>(id);
}

Pending Session::Take(double id) {
  std::lock_guard<std::mutex> lock(pendingMu);
  auto it = pending.find(static_cast<uint64_t>(id));
  if (it == pending.end()) return Pending{};
  Pending p = it->second;
  pending.erase(it);
  return p;
}

void Session::PostRead(int kind, const Pending& p) {
  auto* ev = new Event(kind);
  ev->id = Remember(p);
  ev->file = p.file;
  ev->offset = p.offset;
  ev->length = p.size;
  if (!Post(ev)) {
    const double id = ev->id;
    delete ev;
    if (fuse_req_t r = Take(id).req) fuse_reply_err(r, EIO);
  }
}

void Session::RetryWorker() {
  for (;;) {
    Pending p;
    {
      std::unique_lock<std::mutex> lock(retryMu);
      retryCv.wait(lock, [this] { return retryStop || !retries.empty(); });
      if (retries.empty()) return;
      p = retries.back();
      retries.pop_back();
    }
    if (!ServeNative(p.req, files[p.file], p.offset, p.size, true)) PostRead(kReadData, p);
  }
}

void Session::NoteTouch(File& f, uint64_t offset, double length) {
  bool post = false;
  {
    std::lock_guard<std::mutex> lock(touchMu);
    f.touched.push_back(static_cast<double>(f.offset + offset));
    f.touched.push_back(length);
    if (!touchPosted) post = touchPosted = true;
  }
  if (post) {
    auto* ev = new Event(kTouch);
    if (!Post(ev)) delete ev;
  }
}

// ---- the native read path ----

bool Session::ServeNative(fuse_req_t req, File& f, uint64_t off, size_t size, bool loaded) {
  if (!f.table) return false;
  Table& t = *f.table;
  const uint64_t unit = f.xts ? f.unit : 1;
  const uint64_t a = f.offset + AlignDown(off, unit);
  const uint64_t b = f.offset + AlignUp(off + size, unit);
  auto& ex = tlsExtents;
  ex.clear();
  {
    std::lock_guard<std::mutex> lock(t.mu);
    auto it = t.map.upper_bound(a);
    if (it == t.map.begin()) return false;
    --it;
    for (uint64_t pos = a; pos < b; ++it) {
      if (it == t.map.end()) return false;
      Extent* e = it->second;
      if (e->start > pos || e->start + e->len <= pos) return false;
      ex.push_back(e);
      pos = e->start + e->len;
    }
    for (Extent* e : ex) e->pins++;
  }
  auto unpin = [&] {
    std::lock_guard<std::mutex> lock(t.mu);
    for (Extent* e : ex) e->pins--;
    t.cv.notify_all();
  };
  if (!f.xts) {
    // Plain bytes: the reply is gathered by writev straight from the cached ranges.
    auto& iov = tlsIov;
    iov.clear();
    uint64_t pos = a;
    for (Extent* e : ex) {
      const uint64_t stop = std::min(b, e->start + e->len);
      iov.push_back({const_cast<uint8_t*>(e->data + (pos - e->start)), static_cast<size_t>(stop - pos)});
      pos = stop;
    }
    fuse_reply_iov(req, iov.data(), static_cast<int>(iov.size()));
    unpin();
  } else {
    if (!tlsReply) tlsReply.reset(new uint8_t[kMaxRequest + 2 * 4096]);
    uint8_t* out = tlsReply.get();
    uint8_t unitBuf[4096];
    bool ok = true;
    size_t i = 0;
    for (uint64_t pos = a; pos < b && ok;) {
      while (ex[i]->start + ex[i]->len <= pos) i++;
      Extent* e = ex[i];
      const uint64_t stop = std::min(b, e->start + e->len);
      const uint64_t whole = AlignDown(stop - pos, unit);
      if (whole > 0) {
        // Straight from the cached ciphertext into the reply buffer.
        ok = encfs::XtsCrypt(false, f.key, f.keyLen, e->data + (pos - e->start), out + (pos - a), whole, (pos - f.offset) / 512, unit, f.plain64);
        pos += whole;
        continue;
      }
      // A unit split between ranges: gathered first.
      uint64_t got = 0;
      for (size_t j = i; got < unit; j++) {
        Extent* g = ex[j];
        const uint64_t from = pos + got;
        const uint64_t n = std::min(unit - got, g->start + g->len - from);
        std::memcpy(unitBuf + got, g->data + (from - g->start), n);
        got += n;
      }
      ok = encfs::XtsCrypt(false, f.key, f.keyLen, unitBuf, out + (pos - a), unit, (pos - f.offset) / 512, unit, f.plain64);
      pos += unit;
    }
    unpin();
    if (!ok) {
      fuse_reply_err(req, EIO);
      return true;
    }
    fuse_reply_buf(req, reinterpret_cast<const char*>(out + (f.offset + off - a)), size);
  }
  nativeReads++;
  nativeBytes += size;
  // Reported for the cache's access pattern and eviction order; a negative length says that
  // JavaScript counted this read already when it loaded the range.
  NoteTouch(f, off, loaded ? -static_cast<double>(size) : static_cast<double>(size));
  return true;
}

// ---- FUSE operations ----

void Session::OnInit(void* userdata, fuse_conn_info* conn) {
  (void)userdata;
  // Up to 1 MiB per READ and WRITE (libfuse derives max_pages from max_write).
  conn->max_write = kMaxRequest;
  conn->max_background = 64;
  conn->congestion_threshold = 48;
  if (conn->capable & FUSE_CAP_ASYNC_READ) conn->want |= FUSE_CAP_ASYNC_READ;
  if (conn->capable & FUSE_CAP_ASYNC_DIO) conn->want |= FUSE_CAP_ASYNC_DIO;
  // The files only change through us: no invalidation on attribute changes.
  conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
}

void Session::Attr(fuse_ino_t ino, struct stat* st) {
  std::memset(st, 0, sizeof(*st));
  st->st_ino = ino;
  st->st_atime = st->st_mtime = st->st_ctime = mountedAt;
  if (ino == FUSE_ROOT_ID) {
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = 2;
    st->st_size = 4096;
    return;
  }
  File* f = FileOf(ino);
  st->st_mode = S_IFREG | (f->writable ? 0600 : 0444);
  st->st_nlink = 1;
  st->st_size = static_cast<off_t>(f->size);
  st->st_blksize = 4096;
  st->st_blocks = static_cast<blkcnt_t>((f->size + 511) / 512);
}

void Session::OnLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Session* s = Of(req);
  if (parent != FUSE_ROOT_ID) return (void)fuse_reply_err(req, ENOENT);
  for (size_t i = 0; i < s->files.size(); i++) {
    if (s->files[i].name != name) continue;
    fuse_entry_param e{};
    e.ino = i + 2;
    e.generation = 1;
    e.attr_timeout = e.entry_timeout = kTimeout;
    s->Attr(e.ino, &e.attr);
    return (void)fuse_reply_entry(req, &e);
  }
  fuse_reply_err(req, ENOENT);
}

void Session::OnGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  Session* s = Of(req);
  if (ino != FUSE_ROOT_ID && !s->FileOf(ino)) return (void)fuse_reply_err(req, ENOENT);
  struct stat st;
  s->Attr(ino, &st);
  fuse_reply_attr(req, &st, kTimeout);
}

void Session::OnSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info*) {
  Session* s = Of(req);
  File* f = s->FileOf(ino);
  if (!f) return (void)fuse_reply_err(req, ino == FUSE_ROOT_ID ? EPERM : ENOENT);
  // The size is the image's: only a truncate to that same size (as O_TRUNC-less tools send) passes.
  if ((to_set & FUSE_SET_ATTR_SIZE) && static_cast<uint64_t>(attr->st_size) != f->size) return (void)fuse_reply_err(req, EPERM);
  if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) return (void)fuse_reply_err(req, EPERM);
  struct stat st;
  s->Attr(ino, &st);
  fuse_reply_attr(req, &st, kTimeout);
}

void Session::OnReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  Session* s = Of(req);
  if (ino != FUSE_ROOT_ID) return (void)fuse_reply_err(req, ENOTDIR);
  std::vector<char> buf;
  auto add = [&](const char* name, fuse_ino_t i) {
    struct stat st {};
    st.st_ino = i;
    const size_t old = buf.size();
    const size_t need = fuse_add_direntry(req, nullptr, 0, name, nullptr, 0);
    buf.resize(old + need);
    fuse_add_direntry(req, buf.data() + old, need, name, &st, static_cast<off_t>(buf.size()));
  };
  add(".", FUSE_ROOT_ID);
  add("..", FUSE_ROOT_ID);
  for (size_t i = 0; i < s->files.size(); i++) add(s->files[i].name.c_str(), i + 2);
  if (static_cast<size_t>(off) >= buf.size()) return (void)fuse_reply_buf(req, nullptr, 0);
  fuse_reply_buf(req, buf.data() + off, std::min(buf.size() - static_cast<size_t>(off), size));
}

void Session::OnOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  File* f = Of(req)->FileOf(ino);
  if (!f) return (void)fuse_reply_err(req, ino == FUSE_ROOT_ID ? EISDIR : ENOENT);
  if ((fi->flags & O_ACCMODE) != O_RDONLY && !f->writable) return (void)fuse_reply_err(req, EROFS);
  // The images are pinned by ETag (read-only) or written only through us: the kernel may keep pages across opens.
  fi->keep_cache = 1;
  fuse_reply_open(req, fi);
}

void Session::OnRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  Session* s = Of(req);
  File* f = s->FileOf(ino);
  if (!f) return (void)fuse_reply_err(req, ENOENT);
  const uint64_t o = static_cast<uint64_t>(off);
  if (o >= f->size || size == 0) return (void)fuse_reply_buf(req, nullptr, 0);
  size = static_cast<size_t>(std::min<uint64_t>(size, f->size - o));
  if (s->ServeNative(req, *f, o, size, false)) return;
  s->postedReads++;
  s->PostRead(f->table ? kRead : kReadData, Pending{req, static_cast<int>(ino - 2), o, size});
}

void Session::OnWrite(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off, fuse_file_info*) {
  Session* s = Of(req);
  File* f = s->FileOf(ino);
  if (!f) return (void)fuse_reply_err(req, ENOENT);
  if (!f->writable) return (void)fuse_reply_err(req, EROFS);
  const uint64_t o = static_cast<uint64_t>(off);
  if (o + size > f->size) return (void)fuse_reply_err(req, ENOSPC);
  if (size == 0) return (void)fuse_reply_write(req, 0);
  // libfuse reuses its buffer once this returns: JavaScript gets a copy it owns. Whole units of
  // a userspace volume are encrypted on the way (off the main thread), partial ones go as they are.
  auto* data = static_cast<uint8_t*>(malloc(size));
  if (!data) return (void)fuse_reply_err(req, ENOMEM);
  const bool encrypt = f->xts && o % f->unit == 0 && size % f->unit == 0 &&
                       encfs::XtsCrypt(true, f->key, f->keyLen, reinterpret_cast<const uint8_t*>(buf), data, size, o / 512, f->unit, f->plain64);
  if (!encrypt) std::memcpy(data, buf, size);
  auto* ev = new Event(encrypt ? kWriteEncrypted : kWrite);
  ev->id = s->Remember(Pending{req, static_cast<int>(ino - 2), o, size});
  ev->file = static_cast<int>(ino - 2);
  ev->offset = o;
  ev->length = size;
  ev->data = data;
  s->postedWrites++;
  if (!s->Post(ev)) {
    const double id = ev->id;
    free(ev->data);
    delete ev;
    if (fuse_req_t r = s->Take(id).req) fuse_reply_err(r, EIO);
  }
}

void Session::OnFsync(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info*) {
  Session* s = Of(req);
  File* f = s->FileOf(ino);
  if (!f) return (void)fuse_reply_err(req, ENOENT);
  if (!f->writable) return (void)fuse_reply_err(req, 0);
  auto* ev = new Event(kFsync);
  ev->id = s->Remember(Pending{req, static_cast<int>(ino - 2), 0, 0});
  ev->file = static_cast<int>(ino - 2);
  s->postedFsyncs++;
  if (!s->Post(ev)) {
    const double id = ev->id;
    delete ev;
    if (fuse_req_t r = s->Take(id).req) fuse_reply_err(r, EIO);
  }
}

void Session::OnFlush(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }
void Session::OnRelease(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }

void Session::OnStatfs(fuse_req_t req, fuse_ino_t) {
  struct statvfs st {};
  st.f_bsize = st.f_frsize = 4096;
  st.f_namemax = 255;
  fuse_reply_statfs(req, &st);
}

// ---- answers from JavaScript (main thread) ----

Napi::Value Session::ReplyData(const Napi::CallbackInfo& info) {
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsBuffer()) throw Napi::TypeError::New(info.Env(), "replyData(id, buffer)");
  auto buf = info[1].As<Napi::Buffer<uint8_t>>();
  if (fuse_req_t req = Take(info[0].As<Napi::Number>().DoubleValue()).req) fuse_reply_buf(req, reinterpret_cast<const char*>(buf.Data()), buf.Length());
  return info.Env().Undefined();
}

// A kRead miss whose bytes JavaScript has now cached: answered by a retry thread from the table.
Napi::Value Session::Retry(const Napi::CallbackInfo& info) {
  if (info.Length() != 1 || !info[0].IsNumber()) throw Napi::TypeError::New(info.Env(), "retry(id)");
  Pending p = Take(info[0].As<Napi::Number>().DoubleValue());
  if (!p.req) return info.Env().Undefined();
  {
    std::lock_guard<std::mutex> lock(retryMu);
    retries.push_back(p);
  }
  retryCv.notify_one();
  return info.Env().Undefined();
}

Napi::Value Session::ReplyWrite(const Napi::CallbackInfo& info) {
  if (info.Length() != 2 || !info[0].IsNumber() || !info[1].IsNumber()) throw Napi::TypeError::New(info.Env(), "replyWrite(id, count)");
  if (fuse_req_t req = Take(info[0].As<Napi::Number>().DoubleValue()).req) fuse_reply_write(req, info[1].As<Napi::Number>().Uint32Value());
  return info.Env().Undefined();
}

Napi::Value Session::ReplyError(const Napi::CallbackInfo& info) {
  if (info.Length() != 2 || !info[0].IsNumber() || !info[1].IsNumber()) throw Napi::TypeError::New(info.Env(), "replyError(id, errno)");
  if (fuse_req_t req = Take(info[0].As<Napi::Number>().DoubleValue()).req) fuse_reply_err(req, info[1].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

// Reads served natively since the last call, per file: [Float64Array of (offset, length) pairs | null, ...].
Napi::Value Session::DrainTouches(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env, files.size());
  std::lock_guard<std::mutex> lock(touchMu);
  touchPosted = false;
  for (size_t i = 0; i < files.size(); i++) {
    auto& v = files[i].touched;
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
  o.Set("nativeReads", static_cast<double>(nativeReads.load()));
  o.Set("nativeBytes", static_cast<double>(nativeBytes.load()));
  o.Set("postedReads", static_cast<double>(postedReads.load()));
  o.Set("postedWrites", static_cast<double>(postedWrites.load()));
  o.Set("postedFsyncs", static_cast<double>(postedFsyncs.load()));
  return o;
}

// The connection number of our mount (the minor of its st_dev), from /proc/self/mountinfo: no
// request to ourselves. 0 when not found.
unsigned ConnectionOf(const std::string& mountpoint) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, target;
    fields >> id >> parent >> dev >> root >> target;
    if (target != mountpoint) continue;
    const auto colon = dev.find(':');
    if (colon != std::string::npos) return static_cast<unsigned>(std::stoul(dev.substr(colon + 1)));
  }
  return 0;
}

// Off the main thread: detach the mount (which aborts the connection once nobody uses it, so
// the loop threads see ENODEV and end), abort it through fusectl if something still holds it,
// then destroy the session. Resolves with true when the loop ended, false when it had to be left.
void Session::Stop() {
  const unsigned conn = ConnectionOf(mountpoint);
  fuse_session_exit(se);
  umount2(mountpoint.c_str(), MNT_DETACH);
  auto waitLoop = [this](int seconds) {
    std::unique_lock<std::mutex> lock(loopMu);
    return loopCv.wait_for(lock, std::chrono::seconds(seconds), [this] { return loopDone; });
  };
  ended = waitLoop(10);
  if (!ended && conn != 0) {
    std::ofstream abort("/sys/fs/fuse/connections/" + std::to_string(conn) + "/abort");
    if (abort) abort << "1" << std::endl;
    ended = waitLoop(10);
  }
  {
    std::lock_guard<std::mutex> lock(retryMu);
    retryStop = true;
  }
  retryCv.notify_all();
  for (auto& t : retryThreads) t.join();
  retryThreads.clear();
  if (ended) {
    loop.join();
    {
      // Requests JavaScript never answered: the kernel connection is gone, free them.
      std::lock_guard<std::mutex> lock(pendingMu);
      for (auto& [id, p] : pending) fuse_reply_err(p.req, EIO);
      pending.clear();
      for (auto& p : retries) fuse_reply_err(p.req, EIO);
      retries.clear();
    }
    fuse_session_unmount(se);
    fuse_session_destroy(se);
    se = nullptr;
  } else {
    loop.detach();
  }
  ZeroKeys();
  auto* ev = new Event(kStopped);
  ev->offset = ended ? 1 : 0;  // 0: threads left running (something still holds the mount)
  ev->message = "unmounted";
  if (!Post(ev)) delete ev;
}

// Starts the unmount; JavaScript hears of its end as a kStopped event with "unmounted", then calls close().
Napi::Value Session::Unmount(const Napi::CallbackInfo& info) {
  if (stopping.exchange(true)) throw Napi::Error::New(info.Env(), "unmount() already called");
  std::thread([this] { Stop(); }).detach();
  return info.Env().Undefined();
}

// After the unmount: no more events; the object may be collected unless threads had to be left running.
Napi::Value Session::Close(const Napi::CallbackInfo& info) {
  if (!closed && stopping.load()) {
    closed = true;
    tsfn.Release();
    if (ended) Unref();
  }
  return info.Env().Undefined();
}

Napi::Value Version(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), std::to_string(fuse_version()));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Table", TableWrap::Define(env));
  exports.Set("Session", Session::Define(env));
  exports.Set("libfuseVersion", Napi::Function::New(env, Version));
  exports.Set("maxRequest", Napi::Number::New(env, kMaxRequest));
  return exports;
}

}  // namespace

NODE_API_MODULE(encfs_fuse3, Init)
