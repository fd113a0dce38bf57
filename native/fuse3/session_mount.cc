// Creating a session: the options, checked at the boundary (they become mount options, file
// names and the sizes the FUSE threads trust), then mount(): the libfuse session, the kernel
// mount, the event channel, the threads. Whatever mount() made is undone when a later step fails.
#include <limits.h>
#include <stdlib.h>
#include <sys/mount.h>

#include <cerrno>
#include <cstring>
#include <regex>
#include <set>
#include <system_error>

#include "../arg_checks.h"
#include "addon_data.h"
#include "mountinfo.h"
#include "session.h"

namespace encfs_fuse3 {
namespace {

constexpr size_t kMaxFiles = 64;
// Names become FUSE mount options and directory entries: nothing that could carry a comma, a slash or a NUL.
const std::regex kName("[A-Za-z0-9._-]{1,255}");

std::string NameArg(const Napi::Value& v, const char* what) {
  const std::string s = encfs::StringArg(v, what);
  if (!std::regex_match(s, kName) || s == "." || s == "..") {
    throw Napi::TypeError::New(v.Env(), std::string(what) + " must be 1 to 255 of A-Z a-z 0-9 . _ - (and not . or ..)");
  }
  return s;
}

bool Absent(const Napi::Value& v) { return v.IsUndefined() || v.IsNull(); }

}  // namespace

// new Session({ mountpoint, fsname, subtype, files: [{ name, size, writable, table?, offset?, xts? }] }, onEvent)
Session::Session(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Session>(info) {
  Napi::Env env = info.Env();
  if (info.Length() != 2 || !info[0].IsObject() || !info[1].IsFunction()) throw Napi::TypeError::New(env, "new Session(options, onEvent)");
  try {
    ReadOptions(info);
  } catch (...) {
    ZeroKeys();
    throw;
  }
  onEvent_ = Napi::Persistent(info[1].As<Napi::Function>());
}

void Session::ReadOptions(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = info[0].As<Napi::Object>();
  mountpoint_ = encfs::StringArg(o.Get("mountpoint"), "mountpoint");
  if (mountpoint_.empty() || mountpoint_[0] != '/' || mountpoint_.find('\0') != std::string::npos || mountpoint_.size() >= PATH_MAX) {
    throw Napi::TypeError::New(env, "mountpoint must be an absolute path");
  }
  fsname_ = NameArg(o.Get("fsname"), "fsname");
  subtype_ = NameArg(o.Get("subtype"), "subtype");
  Napi::Value list = o.Get("files");
  if (!list.IsArray()) throw Napi::TypeError::New(env, "files must be an array");
  Napi::Array files = list.As<Napi::Array>();
  if (files.Length() == 0 || files.Length() > kMaxFiles) throw Napi::RangeError::New(env, "files: 1 to " + std::to_string(kMaxFiles) + " of them");
  std::set<std::string> names;
  files_.resize(files.Length());
  for (uint32_t i = 0; i < files.Length(); i++) {
    Napi::Value d = files.Get(i);
    if (!d.IsObject()) throw Napi::TypeError::New(env, "files[" + std::to_string(i) + "] must be an object");
    ReadFile(d.As<Napi::Object>(), files_[i]);
    if (!names.insert(files_[i].name).second) throw Napi::TypeError::New(env, "files: the name " + files_[i].name + " is served twice");
  }
}

void Session::ReadFile(Napi::Object d, File& f) {
  Napi::Env env = d.Env();
  f.name = NameArg(d.Get("name"), "files[].name");
  f.size = encfs::WholeNumber(d.Get("size"), "files[].size");
  f.writable = encfs::BoolArg(d.Get("writable"), "files[].writable");
  Napi::Value t = d.Get("table");
  if (Absent(t)) {
    if (!Absent(d.Get("xts"))) throw Napi::TypeError::New(env, "files[].xts needs a table to read from");
    return;
  }
  auto* data = env.GetInstanceData<AddonData>();
  if (!t.IsObject() || !t.As<Napi::Object>().InstanceOf(data->table.Value())) throw Napi::TypeError::New(env, "files[].table must be a Table");
  f.table = TableWrap::Unwrap(t.As<Napi::Object>())->table();
  f.offset = encfs::WholeNumber(d.Get("offset"), "files[].offset");
  if (static_cast<double>(f.offset) + static_cast<double>(f.size) > encfs::kMaxSafeInteger) throw Napi::RangeError::New(env, "files[]: offset + size past 2^53");
  Napi::Value x = d.Get("xts");
  if (Absent(x)) return;
  if (!x.IsObject()) throw Napi::TypeError::New(env, "files[].xts must be an object");
  Napi::Object xo = x.As<Napi::Object>();
  auto key = encfs::BufferArg(xo.Get("key"), "xts.key");
  f.unit = encfs::WholeNumber(xo.Get("unit"), "xts.unit", 512, 4096);
  if ((key.Length() != 32 && key.Length() != 64) || f.unit % 512 != 0) throw Napi::RangeError::New(env, "xts: a 32 or 64-byte key and a unit of 512 to 4096 bytes");
  f.plain64 = encfs::BoolArg(xo.Get("plain64"), "xts.plain64");
  f.xts = true;
  f.keyLen = key.Length();
  std::memcpy(f.key, key.Data(), key.Length());
}

// mount(): resolves nothing (synchronous); throws, leaving nothing mounted, when a step fails.
Napi::Value Session::Mount(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (mounted_.load() || stopping_.load() || se_) throw Napi::Error::New(env, "mount() is called once, before unmount()");
  char resolved[PATH_MAX];
  if (!realpath(mountpoint_.c_str(), resolved)) throw Napi::Error::New(env, "mount point " + mountpoint_ + ": " + std::strerror(errno));
  mountpoint_ = resolved;
  const std::string opts = "fsname=" + fsname_ + ",subtype=" + subtype_;
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
  se_ = fuse_session_new(&args, &ops, sizeof(ops), this);
  // Parsing may have grown argv into memory of libfuse's (args.allocated): ours to free.
  fuse_opt_free_args(&args);
  if (!se_) throw Napi::Error::New(env, "fuse_session_new failed (bad options?)");
  auto undo = [this] {
    fuse_session_unmount(se_);
    fuse_session_destroy(se_);
    se_ = nullptr;
  };
  if (fuse_session_mount(se_, mountpoint_.c_str()) != 0) {
    fuse_session_destroy(se_);
    se_ = nullptr;
    throw Napi::Error::New(env, "mounting " + mountpoint_ + " failed (libfuse printed why on stderr)");
  }
  const auto top = TopMountAt(mountpoint_);
  if (!top || top->fstype != "fuse." + subtype_) {
    undo();
    throw Napi::Error::New(env, "mounted " + mountpoint_ + " but /proc/self/mountinfo does not show it there");
  }
  device_ = top->dev;
  try {
    OpenChannel(env);
  } catch (...) {
    undo();
    throw;
  }
  channelMade_ = true;
  // The threads use this object until the channel is finalized: JavaScript dropping it must not free it.
  Ref();
  mounted_ = true;
  try {
    StartThreads();
  } catch (const std::system_error& e) {
    stopping_ = true;
    StopNow(true);
    channel_.Release();
    throw Napi::Error::New(env, std::string("cannot start the FUSE threads: ") + e.what());
  }
  return env.Undefined();
}

void Session::StartThreads() {
  for (int i = 0; i < 2; i++) retryThreads_.emplace_back([this] { RetryWorker(); });
  loop_ = std::thread([this] { RunLoop(); });
}

void Session::RunLoop() {
  fuse_loop_config cfg{};
  cfg.clone_fd = 0;
  cfg.max_idle_threads = 10;
  const int res = fuse_session_loop_mt(se_, &cfg);
  {
    std::lock_guard<std::mutex> lock(loopMu_);
    loopDone_ = true;
    loopResult_ = res;
  }
  loopCv_.notify_all();
  if (stopping_.load()) return;
  // The mount went away without us (unmounted from outside, or the connection was aborted).
  auto* ev = new Event(kStopped);
  ev->stop = Stop{false, false, "the FUSE session ended by itself (" + std::to_string(res) + ")"};
  if (!Post(ev)) delete ev;
}

}  // namespace encfs_fuse3
