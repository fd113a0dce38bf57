// What every addon checks at its boundary, before a value from JavaScript reaches native code:
// numbers that are offsets, sizes, ids or counts must be whole, finite and in range (a NaN or a
// negative double cast to an unsigned integer is undefined behaviour), strings must be strings.
// Each failure is a TypeError or RangeError naming the argument. (And the one shape of constants
// an addon hands out, FrozenNumbers, below.)
#pragma once

#include <napi.h>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>

namespace encfs {

// The largest integer a JavaScript number holds exactly (Number.MAX_SAFE_INTEGER).
constexpr double kMaxSafeInteger = 9007199254740991.0;

// A whole number in [min, max]: an offset, a size, an id, a count.
inline uint64_t WholeNumber(const Napi::Value& v, const char* name, double min = 0, double max = kMaxSafeInteger) {
  if (!v.IsNumber()) throw Napi::TypeError::New(v.Env(), std::string(name) + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::trunc(d) != d || d < min || d > max) {
    throw Napi::RangeError::New(v.Env(), std::string(name) + " must be a whole number from " + std::to_string(static_cast<uint64_t>(min)) + " to " +
                                             std::to_string(static_cast<uint64_t>(max)));
  }
  return static_cast<uint64_t>(d);
}

inline std::string StringArg(const Napi::Value& v, const char* name) {
  if (!v.IsString()) throw Napi::TypeError::New(v.Env(), std::string(name) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

inline bool BoolArg(const Napi::Value& v, const char* name) {
  if (!v.IsBoolean()) throw Napi::TypeError::New(v.Env(), std::string(name) + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

inline Napi::Buffer<uint8_t> BufferArg(const Napi::Value& v, const char* name) {
  if (!v.IsBuffer()) throw Napi::TypeError::New(v.Env(), std::string(name) + " must be a Buffer");
  return v.As<Napi::Buffer<uint8_t>>();
}

}  // namespace encfs

namespace encfs {

// What an addon exports as named constants (event kinds, outcome codes): one frozen object, so
// that JavaScript reads the addon's own numbers instead of repeating them.
inline Napi::Object FrozenNumbers(Napi::Env env, std::initializer_list<std::pair<const char*, int>> entries) {
  Napi::Object o = Napi::Object::New(env);
  for (const auto& [name, value] : entries) o.Set(name, Napi::Number::New(env, value));
  o.Freeze();
  return o;
}

}  // namespace encfs
