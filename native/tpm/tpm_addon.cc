// The vTPM commands of an Azure confidential VM's attestation and key release, on tpm2-tss's
// ESAPI (docs/attestation.md#vtpm). Every call opens its own ESYS context on the TCTI it is given
// ("device:/dev/tpmrm0" in production, "swtpm:host=...,port=..." in tests), runs a few commands on
// a libuv worker thread (a TPM answers in tens of milliseconds, RSA key generation in seconds)
// and closes it: the context, its transient objects and sessions have one owner, the worker, and
// live no longer than the call. Marshalled TPM structures go back to JavaScript as Buffers; their
// meaning is read in src/tpm/.
#include <napi.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace {

using Bytes = std::vector<uint8_t>;

// What went wrong, for the Error JavaScript sees: the ESAPI call, its response code, and whether
// the TPM could not be reached at all (TCTI) rather than refusing a command.
struct Failure {
  std::string step;
  TSS2_RC rc = 0;
  bool tcti = false;
};

void Check(TSS2_RC rc, const char* step) {
  if (rc != TSS2_RC_SUCCESS) throw Failure{step, rc, false};
}

// One ESYS context over one TCTI, closed (flushing what it loaded) when it goes out of scope.
class Context {
 public:
  explicit Context(const std::string& tcti) {
    TSS2_RC rc = Tss2_TctiLdr_Initialize(tcti.c_str(), &tcti_);
    if (rc != TSS2_RC_SUCCESS) throw Failure{"Tss2_TctiLdr_Initialize", rc, true};
    rc = Esys_Initialize(&ctx_, tcti_, nullptr);
    if (rc != TSS2_RC_SUCCESS) {
      Tss2_TctiLdr_Finalize(&tcti_);
      throw Failure{"Esys_Initialize", rc, true};
    }
  }
  ~Context() {
    for (ESYS_TR h : transient_) Esys_FlushContext(ctx_, h);
    Esys_Finalize(&ctx_);
    Tss2_TctiLdr_Finalize(&tcti_);
  }
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  ESYS_CONTEXT* get() { return ctx_; }
  // A loaded key or session: flushed when the context closes.
  void Own(ESYS_TR h) { transient_.push_back(h); }

 private:
  TSS2_TCTI_CONTEXT* tcti_ = nullptr;
  ESYS_CONTEXT* ctx_ = nullptr;
  std::vector<ESYS_TR> transient_;
};

// ESAPI allocates its outputs with malloc; this frees them.
template <typename T>
struct Freed {
  T* p = nullptr;
  ~Freed() { free(p); }
  T* operator->() { return p; }
};

ESYS_TR FromPublic(Context& c, uint32_t handle, const char* step) {
  ESYS_TR tr = ESYS_TR_NONE;
  Check(Esys_TR_FromTPMPublic(c.get(), handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &tr), step);
  return tr;
}

TPML_PCR_SELECTION Selection(const std::vector<uint32_t>& pcrs) {
  TPML_PCR_SELECTION sel{};
  sel.count = 1;
  sel.pcrSelections[0].hash = TPM2_ALG_SHA256;
  sel.pcrSelections[0].sizeofSelect = 3;
  for (uint32_t p : pcrs) sel.pcrSelections[0].pcrSelect[p / 8] |= static_cast<uint8_t>(1u << (p % 8));
  return sel;
}

// Fills a TPM2B buffer: the boundary bounds every length, this keeps the bound next to the copy,
// and memcpy never gets the null data() of an empty vector (undefined behaviour, even for 0 bytes).
template <typename T>
void Fill(T& tpm2b, const uint8_t* bytes, size_t n, const char* what) {
  if (n > sizeof(tpm2b.buffer)) throw Failure{std::string(what) + " does not fit its TPM buffer", TPM2_RC_SIZE, false};
  tpm2b.size = static_cast<uint16_t>(n);
  if (n > 0) std::memcpy(tpm2b.buffer, bytes, n);
}

template <typename T, typename M>
Bytes Marshal(const T& value, M marshal, const char* step) {
  Bytes out(sizeof(T) + 16);
  size_t offset = 0;
  Check(marshal(&value, out.data(), out.size(), &offset), step);
  out.resize(offset);
  return out;
}

// The NV index's public area: its size, and whether the owner may read / write it.
TPMS_NV_PUBLIC NvPublic(Context& c, ESYS_TR index) {
  Freed<TPM2B_NV_PUBLIC> pub;
  Check(Esys_NV_ReadPublic(c.get(), index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub.p, nullptr), "Esys_NV_ReadPublic");
  return pub->nvPublic;
}

// TPM2_PT_NV_BUFFER_MAX is 1024 on swtpm and Azure's vTPM; 512 is the smallest any TPM 2.0 allows.
constexpr uint16_t kNvChunk = 512;

Bytes NvRead(Context& c, uint32_t handle) {
  ESYS_TR index = FromPublic(c, handle, "Esys_TR_FromTPMPublic(nv index)");
  TPMS_NV_PUBLIC pub = NvPublic(c, index);
  ESYS_TR auth = (pub.attributes & TPMA_NV_OWNERREAD) ? ESYS_TR_RH_OWNER : index;
  Bytes out;
  for (uint16_t off = 0; off < pub.dataSize;) {
    uint16_t n = static_cast<uint16_t>(std::min<int>(kNvChunk, pub.dataSize - off));
    Freed<TPM2B_MAX_NV_BUFFER> data;
    Check(Esys_NV_Read(c.get(), auth, index, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, n, off, &data.p), "Esys_NV_Read");
    out.insert(out.end(), data->buffer, data->buffer + data->size);
    off = static_cast<uint16_t>(off + n);
  }
  return out;
}

// Writes `data` at offset 0, defining the index (owner read/write) when it is missing or of
// another size, as the paravisor's user-data index expects.
void NvWrite(Context& c, uint32_t handle, const Bytes& data) {
  ESYS_TR index = ESYS_TR_NONE;
  bool exists = Esys_TR_FromTPMPublic(c.get(), handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &index) == TSS2_RC_SUCCESS;
  if (exists && NvPublic(c, index).dataSize != data.size()) {
    Check(Esys_NV_UndefineSpace(c.get(), ESYS_TR_RH_OWNER, index, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE), "Esys_NV_UndefineSpace");
    exists = false;
  }
  if (!exists) {
    TPM2B_NV_PUBLIC pub{};
    pub.nvPublic.nvIndex = handle;
    pub.nvPublic.nameAlg = TPM2_ALG_SHA256;
    pub.nvPublic.attributes = TPMA_NV_OWNERWRITE | TPMA_NV_OWNERREAD | TPMA_NV_AUTHWRITE | TPMA_NV_AUTHREAD;
    pub.nvPublic.dataSize = static_cast<uint16_t>(data.size());
    TPM2B_AUTH noAuth{};
    Check(Esys_NV_DefineSpace(c.get(), ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &noAuth, &pub, &index), "Esys_NV_DefineSpace");
  }
  for (size_t off = 0; off < data.size(); off += kNvChunk) {
    TPM2B_MAX_NV_BUFFER chunk{};
    Fill(chunk, data.data() + off, std::min<size_t>(kNvChunk, data.size() - off), "NV data");
    Check(Esys_NV_Write(c.get(), ESYS_TR_RH_OWNER, index, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &chunk, static_cast<uint16_t>(off)), "Esys_NV_Write");
  }
}

Bytes ReadPublic(Context& c, uint32_t handle) {
  ESYS_TR key = FromPublic(c, handle, "Esys_TR_FromTPMPublic(key)");
  Freed<TPM2B_PUBLIC> pub;
  Check(Esys_ReadPublic(c.get(), key, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub.p, nullptr, nullptr), "Esys_ReadPublic");
  return Marshal(*pub.p, Tss2_MU_TPM2B_PUBLIC_Marshal, "Tss2_MU_TPM2B_PUBLIC_Marshal");
}

// The TPMS_ATTEST bytes and the raw RSASSA signature, as MAA takes them (not the TPM2B / TPMT wrappers).
std::map<std::string, Bytes> Signed(TPM2B_ATTEST* attest, TPMT_SIGNATURE* sig) {
  if (sig->sigAlg != TPM2_ALG_RSASSA) throw Failure{"the attestation key did not sign with RSASSA", TPM2_RC_SCHEME, false};
  const auto& s = sig->signature.rsassa.sig;
  return {{"attest", Bytes(attest->attestationData, attest->attestationData + attest->size)}, {"signature", Bytes(s.buffer, s.buffer + s.size)}};
}

std::map<std::string, Bytes> Quote(Context& c, uint32_t akHandle, const Bytes& qualifying, const std::vector<uint32_t>& pcrs) {
  ESYS_TR ak = FromPublic(c, akHandle, "Esys_TR_FromTPMPublic(attestation key)");
  TPM2B_DATA data{};
  Fill(data, qualifying.data(), qualifying.size(), "qualifyingData");
  TPMT_SIG_SCHEME scheme{};
  scheme.scheme = TPM2_ALG_NULL;
  TPML_PCR_SELECTION sel = Selection(pcrs);
  Freed<TPM2B_ATTEST> attest;
  Freed<TPMT_SIGNATURE> sig;
  Check(Esys_Quote(c.get(), ak, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &data, &scheme, &sel, &attest.p, &sig.p), "Esys_Quote");
  return Signed(attest.p, sig.p);
}

// SHA-256 PCR values in the order asked; PCR_Read answers at most 8 per call.
std::map<std::string, Bytes> PcrRead(Context& c, const std::vector<uint32_t>& pcrs) {
  std::map<std::string, Bytes> out;
  std::vector<uint32_t> left = pcrs;
  while (!left.empty()) {
    TPML_PCR_SELECTION sel = Selection(left);
    Freed<TPML_PCR_SELECTION> got;
    Freed<TPML_DIGEST> values;
    Check(Esys_PCR_Read(c.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &sel, nullptr, &got.p, &values.p), "Esys_PCR_Read");
    std::vector<uint32_t> rest;
    uint32_t v = 0;
    for (uint32_t p : left) {
      bool read = got->count > 0 && (got->pcrSelections[0].pcrSelect[p / 8] & (1u << (p % 8)));
      if (!read) {
        rest.push_back(p);
        continue;
      }
      if (v >= values->count) throw Failure{"Esys_PCR_Read answered fewer digests than it selected", TPM2_RC_SIZE, false};
      out[std::to_string(p)] = Bytes(values->digests[v].buffer, values->digests[v].buffer + values->digests[v].size);
      v++;
    }
    if (rest.size() == left.size()) throw Failure{"Esys_PCR_Read read none of the PCRs asked for (no SHA-256 bank?)", TPM2_RC_PCR, false};
    left = rest;
  }
  return out;
}

// The guest's ephemeral encryption key: RSA-2048, decrypt only, usable only through a policy
// session whose digest is `authPolicy` (PolicyPCR over the attested PCRs). A primary key of the
// NULL hierarchy, so the same template gives the same key until the VM restarts, and no other
// boot can ever use it. Mirrors the template of Azure's guest attestation library.
ESYS_TR CreateEphemeral(Context& c, const Bytes& authPolicy, TPM2B_PUBLIC** outPublic) {
  TPM2B_PUBLIC in{};
  in.publicArea.type = TPM2_ALG_RSA;
  in.publicArea.nameAlg = TPM2_ALG_SHA256;
  in.publicArea.objectAttributes = TPMA_OBJECT_DECRYPT | TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_NODA;
  Fill(in.publicArea.authPolicy, authPolicy.data(), authPolicy.size(), "authPolicy");
  in.publicArea.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;
  in.publicArea.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
  in.publicArea.parameters.rsaDetail.keyBits = 2048;
  in.publicArea.parameters.rsaDetail.exponent = 0;
  TPM2B_SENSITIVE_CREATE sensitive{};
  TPM2B_DATA outside{};
  TPML_PCR_SELECTION creation{};
  ESYS_TR key = ESYS_TR_NONE;
  Check(Esys_CreatePrimary(c.get(), ESYS_TR_RH_NULL, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive, &in, &outside, &creation, &key, outPublic, nullptr, nullptr,
                           nullptr),
        "Esys_CreatePrimary(ephemeral key)");
  c.Own(key);
  return key;
}

std::map<std::string, Bytes> EphemeralKey(Context& c, const Bytes& authPolicy, uint32_t akHandle) {
  Freed<TPM2B_PUBLIC> pub;
  ESYS_TR key = CreateEphemeral(c, authPolicy, &pub.p);
  ESYS_TR ak = FromPublic(c, akHandle, "Esys_TR_FromTPMPublic(attestation key)");
  TPM2B_DATA none{};
  TPMT_SIG_SCHEME scheme{};
  scheme.scheme = TPM2_ALG_NULL;
  Freed<TPM2B_ATTEST> info;
  Freed<TPMT_SIGNATURE> sig;
  Check(Esys_Certify(c.get(), key, ak, ESYS_TR_PASSWORD, ESYS_TR_PASSWORD, ESYS_TR_NONE, &none, &scheme, &info.p, &sig.p), "Esys_Certify");
  auto out = Signed(info.p, sig.p);
  out["public"] = Marshal(*pub.p, Tss2_MU_TPM2B_PUBLIC_Marshal, "Tss2_MU_TPM2B_PUBLIC_Marshal");
  return out;
}

// RSA decryption with the ephemeral key, authorized by PolicyPCR over the current PCR values:
// it succeeds only while the PCRs hold what they held when the key was certified.
std::map<std::string, Bytes> EphemeralDecrypt(Context& c, const Bytes& authPolicy, const std::vector<uint32_t>& pcrs, const Bytes& ciphertext, bool oaep) {
  Freed<TPM2B_PUBLIC> pub;
  ESYS_TR key = CreateEphemeral(c, authPolicy, &pub.p);
  TPMT_SYM_DEF sym{};
  sym.algorithm = TPM2_ALG_NULL;
  ESYS_TR session = ESYS_TR_NONE;
  Check(Esys_StartAuthSession(c.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, nullptr, TPM2_SE_POLICY, &sym, TPM2_ALG_SHA256, &session),
        "Esys_StartAuthSession(policy)");
  c.Own(session);
  // Kept after the command, so that the context's own flush is the one end of its life.
  Check(Esys_TRSess_SetAttributes(c.get(), session, TPMA_SESSION_CONTINUESESSION, 0xff), "Esys_TRSess_SetAttributes");
  TPM2B_DIGEST current{};  // empty: the TPM takes the digest of the PCRs as they are now
  TPML_PCR_SELECTION sel = Selection(pcrs);
  Check(Esys_PolicyPCR(c.get(), session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &current, &sel), "Esys_PolicyPCR");
  TPM2B_PUBLIC_KEY_RSA in{};
  Fill(in, ciphertext.data(), ciphertext.size(), "ciphertext");
  TPMT_RSA_DECRYPT scheme{};
  scheme.scheme = oaep ? TPM2_ALG_OAEP : TPM2_ALG_RSAES;
  if (oaep) scheme.details.oaep.hashAlg = TPM2_ALG_SHA256;
  TPM2B_DATA label{};
  Freed<TPM2B_PUBLIC_KEY_RSA> out;
  Check(Esys_RSA_Decrypt(c.get(), key, session, ESYS_TR_NONE, ESYS_TR_NONE, &in, &scheme, &label, &out.p), "Esys_RSA_Decrypt");
  // Straight into the result: no other copy of the plaintext is left to free unwiped.
  std::map<std::string, Bytes> result;
  result["plaintext"].assign(out->buffer, out->buffer + out->size);
  std::memset(out->buffer, 0, out->size);
  return result;
}

enum class Op { NvRead, NvWrite, ReadPublic, Quote, PcrRead, EphemeralKey, EphemeralDecrypt };

struct Args {
  Op op = Op::NvRead;
  std::string tcti;
  uint32_t handle = 0;
  Bytes data;
  Bytes policy;
  std::vector<uint32_t> pcrs;
  bool oaep = false;
};

class TpmWorker : public Napi::AsyncWorker {
 public:
  TpmWorker(Napi::Env env, Args args) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), args_(std::move(args)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      Context c(args_.tcti);
      switch (args_.op) {
        case Op::NvRead: out_ = {{"data", NvRead(c, args_.handle)}}; break;
        case Op::NvWrite: NvWrite(c, args_.handle, args_.data); break;
        case Op::ReadPublic: out_ = {{"public", ReadPublic(c, args_.handle)}}; break;
        case Op::Quote: out_ = Quote(c, args_.handle, args_.data, args_.pcrs); break;
        case Op::PcrRead: out_ = PcrRead(c, args_.pcrs); break;
        case Op::EphemeralKey: out_ = EphemeralKey(c, args_.policy, args_.handle); break;
        case Op::EphemeralDecrypt: out_ = EphemeralDecrypt(c, args_.policy, args_.pcrs, args_.data, args_.oaep); break;
      }
    } catch (const Failure& f) {
      failure_ = f;
      failed_ = true;
    }
    std::fill(args_.data.begin(), args_.data.end(), 0);
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (failed_) {
      const char* decoded = Tss2_RC_Decode(failure_.rc);
      Napi::Error e = Napi::Error::New(env, failure_.step + ": " + (decoded ? decoded : "unknown response code"));
      e.Set("rc", Napi::Number::New(env, failure_.rc));
      e.Set("step", Napi::String::New(env, failure_.step));
      e.Set("tcti", Napi::Boolean::New(env, failure_.tcti));
      deferred_.Reject(e.Value());
      return;
    }
    Napi::Object result = Napi::Object::New(env);
    for (auto& [name, bytes] : out_) {
      result.Set(name, Napi::Buffer<uint8_t>::Copy(env, bytes.data(), bytes.size()));
      std::fill(bytes.begin(), bytes.end(), 0);
    }
    deferred_.Resolve(result);
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Args args_;
  std::map<std::string, Bytes> out_;
  Failure failure_;
  bool failed_ = false;
};

// Boundary checks: everything JavaScript hands over is validated here, before a worker exists.
std::string TctiArg(const Napi::Value& v) {
  if (!v.IsString()) throw Napi::TypeError::New(v.Env(), "tcti must be a string such as device:/dev/tpmrm0");
  std::string s = v.As<Napi::String>();
  if (s.empty() || s.size() > 512) throw Napi::RangeError::New(v.Env(), "tcti must be 1 to 512 characters");
  return s;
}

uint32_t HandleArg(const Napi::Value& v, uint32_t lo, uint32_t hi, const char* what) {
  if (!v.IsNumber()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  // Checked before any cast: a NaN, negative or too large double cast to uint32_t is undefined behaviour.
  if (!std::isfinite(d) || std::trunc(d) != d || d < lo || d > hi) throw Napi::RangeError::New(v.Env(), std::string(what) + " is out of its handle range");
  return static_cast<uint32_t>(d);
}

Bytes BytesArg(const Napi::Value& v, size_t min, size_t max, const char* what) {
  if (!v.IsBuffer()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a Buffer");
  auto b = v.As<Napi::Buffer<uint8_t>>();
  if (b.Length() < min || b.Length() > max) throw Napi::RangeError::New(v.Env(), std::string(what) + " must be " + std::to_string(min) + " to " + std::to_string(max) + " bytes");
  return Bytes(b.Data(), b.Data() + b.Length());
}

std::vector<uint32_t> PcrsArg(const Napi::Value& v) {
  if (!v.IsArray()) throw Napi::TypeError::New(v.Env(), "pcrs must be an array of PCR numbers");
  auto a = v.As<Napi::Array>();
  if (a.Length() == 0 || a.Length() > 24) throw Napi::RangeError::New(v.Env(), "pcrs must name 1 to 24 PCRs");
  std::vector<uint32_t> out;
  uint32_t seen = 0;
  for (uint32_t i = 0; i < a.Length(); i++) {
    uint32_t p = HandleArg(a.Get(i), 0, 23, "a PCR number");
    if (seen & (1u << p)) throw Napi::RangeError::New(v.Env(), "pcrs names a PCR twice");
    seen |= 1u << p;
    out.push_back(p);
  }
  return out;
}

void Arity(const Napi::CallbackInfo& info, size_t n, const char* usage) {
  if (info.Length() != n) throw Napi::TypeError::New(info.Env(), usage);
}

Args For(Op op, std::string tcti, uint32_t handle = 0) {
  Args a;
  a.op = op;
  a.tcti = std::move(tcti);
  a.handle = handle;
  return a;
}

Napi::Value Queue(Napi::Env env, Args args) {
  auto* w = new TpmWorker(env, std::move(args));
  w->Queue();
  return w->Promise();
}

constexpr uint32_t kNvFirst = 0x01000000, kNvLast = 0x01ffffff, kPersistentFirst = 0x81000000, kPersistentLast = 0x81ffffff;

Napi::Value JsNvRead(const Napi::CallbackInfo& info) {
  Arity(info, 2, "nvRead(tcti, index)");
  return Queue(info.Env(), For(Op::NvRead, TctiArg(info[0]), HandleArg(info[1], kNvFirst, kNvLast, "index")));
}

Napi::Value JsNvWrite(const Napi::CallbackInfo& info) {
  Arity(info, 3, "nvWrite(tcti, index, data)");
  Args a = For(Op::NvWrite, TctiArg(info[0]), HandleArg(info[1], kNvFirst, kNvLast, "index"));
  a.data = BytesArg(info[2], 1, 2048, "data");
  return Queue(info.Env(), std::move(a));
}

Napi::Value JsReadPublic(const Napi::CallbackInfo& info) {
  Arity(info, 2, "readPublic(tcti, handle)");
  return Queue(info.Env(), For(Op::ReadPublic, TctiArg(info[0]), HandleArg(info[1], kPersistentFirst, kPersistentLast, "handle")));
}

Napi::Value JsQuote(const Napi::CallbackInfo& info) {
  Arity(info, 4, "quote(tcti, akHandle, qualifyingData, pcrs)");
  Args a = For(Op::Quote, TctiArg(info[0]), HandleArg(info[1], kPersistentFirst, kPersistentLast, "akHandle"));
  a.data = BytesArg(info[2], 0, 64, "qualifyingData");
  a.pcrs = PcrsArg(info[3]);
  return Queue(info.Env(), std::move(a));
}

Napi::Value JsPcrRead(const Napi::CallbackInfo& info) {
  Arity(info, 2, "pcrRead(tcti, pcrs)");
  Args a = For(Op::PcrRead, TctiArg(info[0]));
  a.pcrs = PcrsArg(info[1]);
  return Queue(info.Env(), std::move(a));
}

Napi::Value JsEphemeralKey(const Napi::CallbackInfo& info) {
  Arity(info, 3, "ephemeralKey(tcti, authPolicy, akHandle)");
  Args a = For(Op::EphemeralKey, TctiArg(info[0]), HandleArg(info[2], kPersistentFirst, kPersistentLast, "akHandle"));
  a.policy = BytesArg(info[1], 32, 32, "authPolicy");
  return Queue(info.Env(), std::move(a));
}

Napi::Value JsEphemeralDecrypt(const Napi::CallbackInfo& info) {
  Arity(info, 5, "ephemeralDecrypt(tcti, authPolicy, pcrs, ciphertext, scheme)");
  Args a = For(Op::EphemeralDecrypt, TctiArg(info[0]));
  a.policy = BytesArg(info[1], 32, 32, "authPolicy");
  a.pcrs = PcrsArg(info[2]);
  a.data = BytesArg(info[3], 256, 256, "ciphertext");
  if (!info[4].IsString()) throw Napi::TypeError::New(info.Env(), "scheme must be 'rsaes' or 'oaep-sha256'");
  std::string scheme = info[4].As<Napi::String>();
  if (scheme != "rsaes" && scheme != "oaep-sha256") throw Napi::RangeError::New(info.Env(), "scheme must be 'rsaes' or 'oaep-sha256'");
  a.oaep = scheme == "oaep-sha256";
  return Queue(info.Env(), std::move(a));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // tpm2-tss logs to stderr; encfs reports failures through its own errors and log lines.
  setenv("TSS2_LOG", "all+NONE", 0);
  exports.Set("nvRead", Napi::Function::New(env, JsNvRead));
  exports.Set("nvWrite", Napi::Function::New(env, JsNvWrite));
  exports.Set("readPublic", Napi::Function::New(env, JsReadPublic));
  exports.Set("quote", Napi::Function::New(env, JsQuote));
  exports.Set("pcrRead", Napi::Function::New(env, JsPcrRead));
  exports.Set("ephemeralKey", Napi::Function::New(env, JsEphemeralKey));
  exports.Set("ephemeralDecrypt", Napi::Function::New(env, JsEphemeralDecrypt));
  return exports;
}

}  // namespace

NODE_API_MODULE(encfs_tpm, Init)
