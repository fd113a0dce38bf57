// encfs's FUSE data plane on libfuse3's low-level API (see docs/data-path.md and session.h). libfuse
// installs no signal handlers here: Node owns SIGTERM.
#include <napi.h>

#include "../arg_checks.h"
#include "addon_data.h"
#include "cache_table.h"
#include "session.h"

namespace encfs_fuse3 {

Napi::Function Session::Define(Napi::Env env) {
  return DefineClass(env, "Session",
                     {
                         InstanceMethod("mount", &Session::Mount),
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

namespace {

Napi::Value Version(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), std::to_string(fuse_version())); }

Napi::Object Events(Napi::Env env) {
  return encfs::FrozenNumbers(env, {{"read", kRead}, {"write", kWrite}, {"fsync", kFsync}, {"touch", kTouch}, {"stopped", kStopped}, {"readData", kReadData}, {"writeEncrypted", kWriteEncrypted}});
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Napi::Function table = TableWrap::Define(env);
  auto* data = new AddonData();
  data->table = Napi::Persistent(table);
  env.SetInstanceData(data);
  exports.Set("Table", table);
  exports.Set("Session", Session::Define(env));
  exports.Set("libfuseVersion", Napi::Function::New(env, Version));
  exports.Set("maxRequest", Napi::Number::New(env, kMaxRequest));
  exports.Set("events", Events(env));
  return exports;
}

}  // namespace encfs_fuse3

namespace {
Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return encfs_fuse3::Init(env, exports); }
}  // namespace

NODE_API_MODULE(encfs_fuse3, InitModule)
