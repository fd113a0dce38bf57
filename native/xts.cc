// Bulk AES-XTS for LUKS data units. node:crypto needs a new Decipheriv per 4 KiB unit (one IV
// each), and even OpenSSL's own XTS pays a full re-initialisation per IV; here two AES-ECB
// contexts are set up once per call and XTS is composed from them (IEEE 1619, no ciphertext
// stealing: units are multiples of 512 bytes). Uses the OpenSSL inside Node.
#include <napi.h>
#include <openssl/evp.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace {

struct Ctx {
  EVP_CIPHER_CTX* p = EVP_CIPHER_CTX_new();
  ~Ctx() { EVP_CIPHER_CTX_free(p); }
};

// dst = a ^ b, 8 bytes at a time (lengths are multiples of 16); memcpy keeps it alias-safe.
inline void Xor(uint8_t* dst, const uint8_t* a, const uint8_t* b, size_t n) {
  for (size_t i = 0; i < n; i += 8) {
    uint64_t x, y;
    std::memcpy(&x, a + i, 8);
    std::memcpy(&y, b + i, 8);
    x ^= y;
    std::memcpy(dst + i, &x, 8);
  }
}

// Multiplies the tweak by alpha in GF(2^128) on two little-endian 64-bit halves (IEEE 1619).
inline void NextTweak64(uint64_t& lo, uint64_t& hi) {
  const uint64_t carry = hi >> 63;
  hi = (hi << 1) | (lo >> 63);
  lo = (lo << 1) ^ (carry ? 0x87 : 0);
}

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
  const size_t half = key.Length() / 2;
  const EVP_CIPHER* ecb = half == 32 ? EVP_aes_256_ecb() : EVP_aes_128_ecb();
  Ctx data, tweak;
  if (!data.p || !tweak.p || EVP_CipherInit_ex(data.p, ecb, nullptr, key.Data(), nullptr, encrypt ? 1 : 0) != 1 ||
      EVP_CipherInit_ex(tweak.p, ecb, nullptr, key.Data() + half, nullptr, 1) != 1) {
    throw Napi::Error::New(env, "cannot set up AES for XTS");
  }
  EVP_CIPHER_CTX_set_padding(data.p, 0);
  EVP_CIPHER_CTX_set_padding(tweak.p, 0);
  const size_t units = input.Length() / unit;
  // All first tweaks in one ECB call: E_K2(IV) for every unit of the request.
  std::vector<uint8_t> ivs(units * 16, 0);
  uint64_t sector = static_cast<uint64_t>(first);
  const uint64_t step = unit / 512;
  for (size_t u = 0; u < units; u++, sector += step) {
    const uint64_t n = plain64 ? sector : (sector & 0xffffffffu);
    for (int i = 0; i < 8; i++) ivs[u * 16 + i] = static_cast<uint8_t>(n >> (8 * i));  // little-endian, as dm-crypt
  }
  int len = 0;
  if (units > 0 && (EVP_EncryptUpdate(tweak.p, ivs.data(), &len, ivs.data(), static_cast<int>(ivs.size())) != 1 || static_cast<size_t>(len) != ivs.size())) {
    throw Napi::Error::New(env, "AES-XTS tweak failed");
  }
  // Whiten everything, one ECB pass over the whole request, whiten again: three linear passes.
  const uint8_t* in = input.Data();
  uint8_t* out = output.Data();
  std::vector<uint8_t> whitening(input.Length());  // x86-64 and arm64 are little-endian, as XTS
  for (size_t u = 0; u < units; u++) {
    uint64_t lo, hi;
    std::memcpy(&lo, &ivs[u * 16], 8);
    std::memcpy(&hi, &ivs[u * 16 + 8], 8);
    for (size_t b = u * unit; b < (u + 1) * unit; b += 16) {
      std::memcpy(&whitening[b], &lo, 8);
      std::memcpy(&whitening[b + 8], &hi, 8);
      NextTweak64(lo, hi);
    }
  }
  Xor(out, in, whitening.data(), input.Length());
  if (units > 0 && (EVP_CipherUpdate(data.p, out, &len, out, static_cast<int>(input.Length())) != 1 || static_cast<size_t>(len) != input.Length())) {
    throw Napi::Error::New(env, "AES-XTS failed");
  }
  Xor(out, out, whitening.data(), input.Length());
  return env.Undefined();
}

}  // namespace

void RegisterXts(Napi::Env env, Napi::Object exports) {
  exports.Set("xtsCrypt", Napi::Function::New(env, XtsCrypt));
}
