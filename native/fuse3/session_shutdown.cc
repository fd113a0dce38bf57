// Ending a session (docs/data-path.md, "Shutdown"). In this order, on a thread of its own:
//
//   1. Abort the connection: umount2(MNT_FORCE) reaches the kernel's FUSE abort (fuse_umount_begin),
//      so every request waiting in the kernel, and every later one (a loop device or a process
//      still holding the file), fails at once with ENOTCONN, and our threads' reads of /dev/fuse
//      get ENODEV, which ends libfuse's loop without reading another request. (fuse_session_exit
//      first would make libfuse read one more request and drop it unanswered; fusectl's abort file,
//      the other way in, is not mounted in most pods and is only tried when the mount is gone.)
//      Where something holds the file the mount cannot go at once: it is detached from the tree.
//   2. Wait for the loop threads, then stop the retry threads.
//   3. Under the gate, exclusively: answer EIO to every request JavaScript still has (which also
//      frees libfuse's copies), then unmount and destroy the libfuse session. Answers arriving later
//      find the session gone and do nothing.
//   4. Zero the keys, and tell JavaScript (a stopped event) with what happened.
#include <errno.h>
#include <sys/mount.h>
#include <sys/sysmacros.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <system_error>

#include <openssl/crypto.h>

#include "mountinfo.h"
#include "session.h"

namespace encfs_fuse3 {
namespace {

// How long the loop threads get to end after the abort (they end in milliseconds; this bounds a kernel that does not abort).
constexpr int kLoopSeconds = 5;

}  // namespace

// Starts the unmount; JavaScript hears of its end as the stopped event, then calls close().
Napi::Value Session::Unmount(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!mounted_.load()) throw Napi::Error::New(env, "unmount() before mount()");
  if (stopping_.exchange(true)) throw Napi::Error::New(env, "unmount() already called");
  auto stopAndTell = [this] {
    auto* ev = new Event(kStopped);
    ev->stop = StopNow(true);
    if (!Post(ev)) delete ev;
  };
  try {
    stopper_ = std::thread(stopAndTell);
  } catch (const std::system_error&) {
    stopAndTell();  // no thread to spare: the main thread waits instead (seconds at most)
  }
  return env.Undefined();
}

// After the stopped event: no more events. The object may then be collected, unless the loop
// threads could not be stopped (they still use it: it is kept, and so is the channel).
Napi::Value Session::Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!stopping_.load()) throw Napi::Error::New(env, "close() before unmount()");
  if (stopper_.joinable()) stopper_.join();
  std::lock_guard<std::mutex> once(stopMu_);
  if (!channelMade_ || !stopped_) return env.Undefined();
  if (stop_.ended) {
    channelMade_ = false;
    channel_.Release();
  } else {
    channel_.Unref(env);
  }
  return env.Undefined();
}

// The channel is finalized: after close(), or at process teardown, where a session never
// unmounted is stopped here, before its memory can go (nobody is listening for the event then).
void Session::OnChannelFinalized(Napi::Env, void*, Session* s) {
  if (!s->stopping_.exchange(true)) s->StopNow(true);
  if (s->stopper_.joinable()) s->stopper_.join();
  Stop last = s->StopNow(true);  // no-op once ended; one more try otherwise (the holder may be gone now)
  s->channelMade_ = false;
  // Threads that could not be stopped still use the object: it stays until the process ends.
  if (last.ended) s->Unref();
}

Session::~Session() {
  // Stopped (see OnChannelFinalized), or never mounted: nothing runs any more.
  ZeroKeys();
}

void Session::ZeroKeys() {
  for (auto& f : files_) OPENSSL_cleanse(f.key, sizeof(f.key));
}

Stop Session::StopNow(bool requested) {
  std::lock_guard<std::mutex> once(stopMu_);
  if (stopped_ && stop_.ended) return stop_;
  refusing_ = true;
  Stop s;
  s.requested = requested;
  std::string why;
  const bool aborted = AbortConnection(why);
  bool ended = WaitLoop(kLoopSeconds);
  if (!ended) {
    // Our mount is out of reach by path: fusectl's abort, where it is mounted, is the other way in.
    std::ofstream abort("/sys/fs/fuse/connections/" + std::to_string(minor(device_)) + "/abort");
    if (abort && (abort << "1" << std::endl)) ended = WaitLoop(kLoopSeconds);
  }
  StopRetryThreads();
  if (ended) {
    if (loop_.joinable()) loop_.join();
    DestroyUnderGate();
    ZeroKeys();
    s.ended = true;
    s.detail = aborted ? "unmounted (the connection was aborted: readers still holding the file get ENOTCONN)" : "unmounted (" + why + ")";
  } else {
    // The keys stay: threads still serving may be decrypting with them; the process ends soon.
    s.detail = "the FUSE connection could not be aborted (" + why + "; fusectl is not mounted): its threads keep answering until the process exits";
  }
  stop_ = s;
  stopped_ = true;
  return s;
}

bool Session::AbortConnection(std::string& detail) {
  if (!se_) {
    detail = "never mounted";
    return false;
  }
  const auto top = TopMountAt(mountpoint_);
  if (!top) {
    detail = "nothing is mounted at " + mountpoint_ + " any more";
    return false;
  }
  if (top->dev != device_) {
    // Forcing that one would abort someone else's filesystem.
    detail = "another filesystem is mounted over " + mountpoint_;
    return false;
  }
  if (umount2(mountpoint_.c_str(), MNT_FORCE) == 0) return true;
  const int e = errno;
  // EBUSY: aborted (the kernel aborts before it checks for users) but held open: out of the tree.
  umount2(mountpoint_.c_str(), MNT_DETACH);
  if (e == EBUSY) return true;
  detail = std::string("umount2(MNT_FORCE) of ") + mountpoint_ + ": " + std::strerror(e);
  return false;
}

bool Session::WaitLoop(int seconds) {
  if (!loop_.joinable()) return true;
  std::unique_lock<std::mutex> lock(loopMu_);
  return loopCv_.wait_for(lock, std::chrono::seconds(seconds), [this] { return loopDone_; });
}

void Session::StopRetryThreads() {
  {
    std::lock_guard<std::mutex> lock(reqMu_);
    retryStop_ = true;
  }
  retryCv_.notify_all();
  for (auto& t : retryThreads_) t.join();
  retryThreads_.clear();
}

void Session::DestroyUnderGate() {
  std::unique_lock<std::shared_mutex> lock(gate_);
  if (!se_) return;
  // The loop reset the exit flag on its way out; set, it keeps libfuse from printing the
  // failures of answers into the aborted connection.
  fuse_session_exit(se_);
  std::vector<Pending> left;
  {
    std::lock_guard<std::mutex> guard(reqMu_);
    for (auto& [id, p] : pending_) left.push_back(p);
    pending_.clear();
    left.insert(left.end(), retries_.begin(), retries_.end());
    retries_.clear();
  }
  for (auto& p : left) fuse_reply_err(p.req, EIO);
  fuse_session_unmount(se_);
  fuse_session_destroy(se_);
  se_ = nullptr;
  gone_ = true;
}

}  // namespace encfs_fuse3
