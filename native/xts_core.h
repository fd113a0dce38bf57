// AES-XTS over whole LUKS data units (IEEE 1619, no ciphertext stealing: units are multiples of
// 512 bytes), shared by the SNP/XTS addon and the libfuse3 data plane. Thread-safe: every call
// sets up its own cipher contexts. Uses the OpenSSL inside Node.
#pragma once

#include <cstddef>
#include <cstdint>

namespace encfs {

// in and out may be the same buffer. The IV of unit k is firstSector + k * (unit / 512), little
// endian, all 64 bits (plain64) or the low 32 (plain), as dm-crypt. Returns false on an OpenSSL
// failure or bad sizes (key 32 or 64 bytes; unit a multiple of 512; len a multiple of unit).
bool XtsCrypt(bool encrypt, const uint8_t* key, size_t keyLen, const uint8_t* in, uint8_t* out, size_t len,
              uint64_t firstSector, size_t unit, bool plain64);

}  // namespace encfs
