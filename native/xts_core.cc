// node:crypto needs a new Decipheriv per 4 KiB unit (one IV each), and even OpenSSL's own XTS
// pays a full re-initialisation per IV; here two AES-ECB contexts are set up once per call and
// XTS is composed from them: whiten, one ECB pass, whiten again, in slices that fit the cache.
#include "xts_core.h"

#include <openssl/evp.h>

#include <cstring>

namespace encfs {
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

// Whitening of one slice, on the stack: no allocation per request on the FUSE threads.
constexpr size_t kSlice = 16 * 1024;

}  // namespace

bool XtsCrypt(bool encrypt, const uint8_t* key, size_t keyLen, const uint8_t* in, uint8_t* out, size_t len,
              uint64_t firstSector, size_t unit, bool plain64) {
  if ((keyLen != 32 && keyLen != 64) || unit < 512 || unit % 512 != 0 || len % unit != 0) return false;
  if (len == 0) return true;
  const size_t half = keyLen / 2;
  const EVP_CIPHER* ecb = half == 32 ? EVP_aes_256_ecb() : EVP_aes_128_ecb();
  Ctx data, tweak;
  if (!data.p || !tweak.p || EVP_CipherInit_ex(data.p, ecb, nullptr, key, nullptr, encrypt ? 1 : 0) != 1 ||
      EVP_CipherInit_ex(tweak.p, ecb, nullptr, key + half, nullptr, 1) != 1) {
    return false;
  }
  EVP_CIPHER_CTX_set_padding(data.p, 0);
  EVP_CIPHER_CTX_set_padding(tweak.p, 0);
  alignas(16) uint8_t whitening[kSlice];
  const uint64_t step = unit / 512;
  uint64_t sector = firstSector;
  uint64_t lo = 0, hi = 0;
  size_t inUnit = unit;  // bytes of the current unit already whitened: a new unit starts at once
  int n = 0;
  for (size_t pos = 0; pos < len;) {
    const size_t slice = len - pos < kSlice ? len - pos : kSlice;
    for (size_t b = 0; b < slice; b += 16, inUnit += 16) {
      if (inUnit == unit) {
        // A new unit: its first tweak is E_K2(IV), the IV little-endian as dm-crypt writes it.
        uint8_t iv[16] = {0};
        const uint64_t v = plain64 ? sector : (sector & 0xffffffffu);
        for (int i = 0; i < 8; i++) iv[i] = static_cast<uint8_t>(v >> (8 * i));
        if (EVP_EncryptUpdate(tweak.p, iv, &n, iv, 16) != 1 || n != 16) return false;
        std::memcpy(&lo, iv, 8);  // x86-64 and arm64 are little-endian, as XTS
        std::memcpy(&hi, iv + 8, 8);
        sector += step;
        inUnit = 0;
      }
      std::memcpy(whitening + b, &lo, 8);
      std::memcpy(whitening + b + 8, &hi, 8);
      NextTweak64(lo, hi);
    }
    Xor(out + pos, in + pos, whitening, slice);
    if (EVP_CipherUpdate(data.p, out + pos, &n, out + pos, static_cast<int>(slice)) != 1 || static_cast<size_t>(n) != slice) return false;
    Xor(out + pos, out + pos, whitening, slice);
    pos += slice;
  }
  return true;
}

}  // namespace encfs
