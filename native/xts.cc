// xtsCrypt() for JavaScript: the userspace volume's bulk AES-XTS (see xts_core.cc).
#include <napi.h>

#include "xts_core.h"

namespace {

Napi::Value XtsCrypt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 7 || !info[0].IsBoolean() || !info[1].IsBuffer() || !info[2].IsBuffer() || !info[3].IsBuffer() ||
      !info[4].IsNumber() || !info[5].IsNumber() || !info[6].IsBoolean()) {
    throw Napi::TypeError::New(env, "xtsCrypt(encrypt, key, input, output, firstSector, unitSize, plain64)");
  }
  const bool encrypt = info[0].As<Napi::Boolean>();
  auto key = info[1].As<Napi::Buffer<uint8_t>>();
  auto input = info[2].As<Napi::Buffer<uint8_t>>();
  auto output = info[3].As<Napi::Buffer<uint8_t>>();
  const double first = info[4].As<Napi::Number>().DoubleValue();
  const size_t unit = info[5].As<Napi::Number>().Uint32Value();
  const bool plain64 = info[6].As<Napi::Boolean>();
  if (key.Length() != 32 && key.Length() != 64) throw Napi::RangeError::New(env, "XTS keys are 32 or 64 bytes");
  if (unit < 512 || unit % 512 != 0 || input.Length() % unit != 0 || output.Length() < input.Length()) {
    throw Napi::RangeError::New(env, "input must be whole units of a multiple of 512 bytes, output at least as long");
  }
  if (!encfs::XtsCrypt(encrypt, key.Data(), key.Length(), input.Data(), output.Data(), input.Length(), static_cast<uint64_t>(first), unit, plain64)) {
    throw Napi::Error::New(env, "AES-XTS failed");
  }
  return env.Undefined();
}

}  // namespace

void RegisterXts(Napi::Env env, Napi::Object exports) {
  exports.Set("xtsCrypt", Napi::Function::New(env, XtsCrypt));
}
