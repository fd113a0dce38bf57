// One libfuse3 mount serving a few regular files, and its lifetime. The concerns live in their
// own files: the FUSE operations and the native read path (fuse_ops.cc), the bridge to
// JavaScript (js_bridge.cc: events out, answers in), mounting (session_mount.cc) and shutdown
// (session_shutdown.cc). How they share the object:
//
//   - libfuse's loop threads run the operations; a READ of cached bytes is answered there, the
//     rest is posted to JavaScript as an Event and remembered as Pending under `reqMu_`.
//   - JavaScript answers by request id on the main thread (reply*, retry); retry hands a request
//     to the retry threads, which answer it from the cache table.
//   - `gate_` is the session's lifetime: every answer holds it shared, and shutdown takes it
//     exclusively to answer what is left with EIO and destroy the libfuse session, so nothing
//     answers into a freed session and every request is answered exactly once.
//   - The thread-safe function carrying events owns the JavaScript side: the session keeps its
//     JavaScript object alive until that function is finalized, which is also where, at process
//     teardown, a session never unmounted is stopped before its memory can go.
#pragma once

#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>
#include <napi.h>

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "cache_table.h"

namespace encfs_fuse3 {

// Largest READ and WRITE negotiated with the kernel (exported as maxRequest).
constexpr size_t kMaxRequest = 1024 * 1024;

// The events to JavaScript, one definition: exported to JavaScript as `events` (name -> kind).
//   read:           a miss of a file with a cache table: JavaScript loads it, then retry(id)
//   readData:       JavaScript answers with the bytes itself: replyData(id, buffer)
//   write:          the bytes to write (a Buffer JavaScript owns): replyWrite(id, count)
//   writeEncrypted: whole units of an AES-XTS file, already encrypted here: replyWrite(id, count)
//   fsync:          replyError(id, 0) once durable
//   touch:          reads served natively since the last drainTouches()
//   stopped:        the session's end, with its own fields (Stop below)
enum EventKind : int { kRead = 1, kWrite = 2, kFsync = 3, kTouch = 4, kStopped = 5, kReadData = 6, kWriteEncrypted = 7 };

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

// A request JavaScript has to answer (or a retry thread, for kRead after retry()).
struct Pending {
  fuse_req_t req = nullptr;
  int kind = 0;
  int file = 0;
  uint64_t offset = 0;
  size_t size = 0;
};

// How the session ended, for the stopped event.
struct Stop {
  bool requested = false;  // by unmount(); false: the mount went away from outside
  bool ended = false;      // the loop threads ended and the libfuse session was destroyed
  std::string detail;
};

struct Event {
  explicit Event(int k) : kind(k) {}
  ~Event() { std::free(data); }
  int kind;
  double id = 0;
  int file = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
  uint8_t* data = nullptr;  // write events: malloc'd copy of the request's bytes, handed to a Buffer
  Stop stop;                // kStopped
};

class Session;
void CallEvent(Napi::Env env, Napi::Function onEvent, Session* session, Event* event);
using EventChannel = Napi::TypedThreadSafeFunction<Session, Event, CallEvent>;

class Session : public Napi::ObjectWrap<Session> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit Session(const Napi::CallbackInfo& info);
  ~Session() override;

  // FUSE operations (libfuse threads), fuse_ops.cc.
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

  // The event channel was finalized (session_shutdown.cc).
  static void OnChannelFinalized(Napi::Env env, void* unused, Session* session);
  // EIO for a request whose event JavaScript could not take (its handler threw).
  void FailRequest(double id);

 private:
  static Session* Of(fuse_req_t req) { return static_cast<Session*>(fuse_req_userdata(req)); }
  File* FileOf(fuse_ino_t ino) { return ino >= 2 && ino - 2 < files_.size() ? &files_[ino - 2] : nullptr; }
  void Attr(fuse_ino_t ino, struct stat* st);
  bool ServeNative(fuse_req_t req, File& f, uint64_t off, size_t size, bool loaded);
  bool ServeXts(File& f, const std::vector<Extent*>& ex, uint64_t a, uint64_t b, uint8_t* out);

  // The bridge (js_bridge.cc).
  void OpenChannel(Napi::Env env);
  bool Post(Event* ev);
  void PostRequest(Event* ev, const Pending& p);
  double Remember(const Pending& p);
  Pending Take(double id);
  // The request an answer names, taken while the gate is held shared (the lock comes with it, so
  // the session cannot be destroyed under the answer); p.req is null when there is nothing left
  // to answer (the session is gone, or the request was answered already).
  struct Answer {
    std::shared_lock<std::shared_mutex> lock;
    Pending p;
  };
  Answer TakeAnswer(const Napi::CallbackInfo& info, size_t args, const char* usage, int kind, int otherKind);
  void RetryWorker();
  void NoteTouch(File& f, uint64_t offset, double length);
  Napi::Value ReplyData(const Napi::CallbackInfo& info);
  Napi::Value Retry(const Napi::CallbackInfo& info);
  Napi::Value ReplyWrite(const Napi::CallbackInfo& info);
  Napi::Value ReplyError(const Napi::CallbackInfo& info);
  Napi::Value DrainTouches(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);

  // Mounting (session_mount.cc).
  void ReadOptions(const Napi::CallbackInfo& info);
  void ReadFile(Napi::Object d, File& f);
  Napi::Value Mount(const Napi::CallbackInfo& info);
  void StartThreads();
  void RunLoop();

  // Shutdown (session_shutdown.cc).
  Napi::Value Unmount(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Stop StopNow(bool requested);
  bool AbortConnection(std::string& detail);
  bool WaitLoop(int seconds);
  void StopRetryThreads();
  void DestroyUnderGate();
  void ZeroKeys();

  // Fixed once mounted.
  std::string mountpoint_;  // canonical (realpath), as the kernel shows it in mountinfo
  std::string fsname_, subtype_;
  std::vector<File> files_;
  time_t mountedAt_ = time(nullptr);
  fuse_session* se_ = nullptr;
  dev_t device_ = 0;  // our connection's st_dev, from mountinfo at mount time
  EventChannel channel_;
  Napi::FunctionReference onEvent_;
  // Read by FUSE and retry threads (Post), written on the main thread.
  std::atomic<bool> channelMade_{false};

  // The loop thread and its end.
  std::thread loop_;
  std::mutex loopMu_;
  std::condition_variable loopCv_;
  bool loopDone_ = false;
  int loopResult_ = 0;

  // Lifetime: see the top of this file.
  std::shared_mutex gate_;
  bool gone_ = false;  // the libfuse session is destroyed (under gate_)
  std::atomic<bool> mounted_{false}, stopping_{false};
  std::atomic<bool> refusing_{false};  // stopping: new requests get EIO instead of going to JavaScript
  std::mutex stopMu_;  // one StopNow at a time
  bool stopped_ = false;
  Stop stop_;
  std::thread stopper_;  // runs StopNow for unmount(); joined by close() or the channel's finalizer

  std::mutex reqMu_;
  std::unordered_map<uint64_t, Pending> pending_;
  uint64_t nextId_ = 1;
  std::vector<Pending> retries_;
  bool retryStop_ = false;
  std::condition_variable retryCv_;
  std::vector<std::thread> retryThreads_;

  std::mutex touchMu_;
  bool touchPosted_ = false;

  std::atomic<uint64_t> nativeReads_{0}, nativeBytes_{0}, postedReads_{0}, postedWrites_{0}, postedFsyncs_{0};
};

}  // namespace encfs_fuse3
