// xtsCrypt() for JavaScript: the userspace volume's bulk AES-XTS (see xts_core.cc).
#include <napi.h>

#include "arg_checks.h"
#include "xts_core.h"

namespace {

Napi::Value XtsCrypt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 7) throw Napi::TypeError::New(env, "xtsCrypt(encrypt, key, input, output, firstSector, unitSize, plain64)");
  const bool encrypt = encfs::BoolArg(info[0], "encrypt");
  auto key = encfs::BufferArg(info[1], "key");
  auto input = encfs::BufferArg(info[2], "input");
  auto output = encfs::BufferArg(info[3], "output");
  const uint64_t first = encfs::WholeNumber(info[4], "firstSector");
  const size_t unit = encfs::WholeNumber(info[5], "unitSize", 512, 4096);
  const bool plain64 = encfs::BoolArg(info[6], "plain64");
  if (key.Length() != 32 && key.Length() != 64) throw Napi::RangeError::New(env, "XTS keys are 32 or 64 bytes");
  if (unit % 512 != 0 || input.Length() % unit != 0 || output.Length() < input.Length()) {
    throw Napi::RangeError::New(env, "input must be whole units of a multiple of 512 bytes, output at least as long");
  }
  // In place is fine; buffers that overlap otherwise would be read after they were written.
  const uint8_t* in = input.Data();
  uint8_t* out = output.Data();
  if (in != out && in < out + input.Length() && out < in + input.Length()) throw Napi::RangeError::New(env, "input and output overlap without being the same bytes");
  if (!encfs::XtsCrypt(encrypt, key.Data(), key.Length(), in, out, input.Length(), first, unit, plain64)) {
    throw Napi::Error::New(env, "AES-XTS failed");
  }
  return env.Undefined();
}

}  // namespace

void RegisterXts(Napi::Env env, Napi::Object exports) {
  exports.Set("xtsCrypt", Napi::Function::New(env, XtsCrypt));
}
