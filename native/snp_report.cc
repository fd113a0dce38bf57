// SEV-SNP attestation reports from the guest driver. Only the ioctls live here: they take raw
// user-space pointers, which JavaScript cannot pass. Everything else is TypeScript.
#include <napi.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include <fcntl.h>
#include <linux/sev-guest.h>
#include <sys/ioctl.h>
#include <unistd.h>

void RegisterXts(Napi::Env env, Napi::Object exports);
void RegisterVerityHash(Napi::Env env, Napi::Object exports);

namespace {

// The Azure 5.15 kernel's /dev/sev interface (not in upstream uapi headers).
struct sev_snp_guest_request {
  uint8_t req_msg_type;
  uint8_t rsp_msg_type;
  uint8_t msg_version;
  uint16_t request_len;
  uint64_t request_uaddr;
  uint16_t response_len;
  uint64_t response_uaddr;
  uint32_t error;
};
#define SEV_SNP_GUEST_MSG_REPORT _IOWR('S', 0x1, struct sev_snp_guest_request)

constexpr uint8_t kMsgReportReq = 5;
constexpr uint8_t kMsgReportRsp = 6;
constexpr size_t kReportReqSize = 96;
constexpr size_t kAzureResponseSize = 1280;
constexpr size_t kReportOffset = 0x20;
constexpr size_t kReportSize = 1184;

struct Outcome {
  int err = 0;             // errno of open or ioctl, 0 when both succeeded
  const char* step = "";   // which call failed
  uint32_t status = 0;     // MSG_REPORT_RSP status
  uint32_t fw_error = 0;
  uint32_t vmm_error = 0;
  uint32_t report_size = 0;
  uint8_t report[kReportSize] = {};
};

void Fetch(bool azure, const std::string& path, const uint8_t (&user_data)[64], Outcome& out) {
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    out.err = errno;
    out.step = "open";
    return;
  }
  uint8_t req[kReportReqSize] = {};  // REPORT_DATA, VMPL 0, reserved zero
  std::memcpy(req, user_data, 64);
  static thread_local uint8_t resp[4000];
  std::memset(resp, 0, sizeof resp);
  int rc;
  if (azure) {
    sev_snp_guest_request r{};
    r.req_msg_type = kMsgReportReq;
    r.rsp_msg_type = kMsgReportRsp;
    r.msg_version = 1;
    r.request_len = kReportReqSize;
    r.request_uaddr = reinterpret_cast<uint64_t>(req);
    r.response_len = kAzureResponseSize;
    r.response_uaddr = reinterpret_cast<uint64_t>(resp);
    rc = ioctl(fd, SEV_SNP_GUEST_MSG_REPORT, &r);
    out.fw_error = r.error;
  } else {
    snp_guest_request_ioctl r{};
    r.msg_version = 1;
    r.req_data = reinterpret_cast<uint64_t>(req);
    r.resp_data = reinterpret_cast<uint64_t>(resp);
    rc = ioctl(fd, SNP_GET_REPORT, &r);
    out.fw_error = static_cast<uint32_t>(r.exitinfo2 & 0xffffffffu);
    out.vmm_error = static_cast<uint32_t>(r.exitinfo2 >> 32);
  }
  if (rc < 0) {
    out.err = errno;
    out.step = "ioctl";
  }
  close(fd);
  if (out.err != 0) return;
  std::memcpy(&out.status, resp, 4);
  std::memcpy(&out.report_size, resp + 4, 4);
  std::memcpy(out.report, resp + kReportOffset, kReportSize);
}

// The ioctl can wait up to a minute in the kernel (host busy): never on the main thread.
class ReportWorker : public Napi::AsyncWorker {
 public:
  ReportWorker(Napi::Env env, bool azure, std::string path, const uint8_t* data)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), azure_(azure), path_(std::move(path)) {
    std::memcpy(data_, data, 64);
  }
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override { Fetch(azure_, path_, data_, out_); }

  void OnOK() override {
    Napi::Env env = Env();
    if (out_.err != 0 || out_.status != 0) {
      Napi::Error e = Napi::Error::New(env, out_.err != 0 ? std::string(out_.step) + " " + path_ + ": " + std::strerror(out_.err)
                                                          : "the firmware answered status " + std::to_string(out_.status));
      e.Set("errno", Napi::Number::New(env, out_.err));
      e.Set("syscall", Napi::String::New(env, out_.step));
      e.Set("status", Napi::Number::New(env, out_.status));
      e.Set("fwError", Napi::Number::New(env, out_.fw_error));
      e.Set("vmmError", Napi::Number::New(env, out_.vmm_error));
      deferred_.Reject(e.Value());
      return;
    }
    Napi::Object result = Napi::Object::New(env);
    result.Set("report", Napi::Buffer<uint8_t>::Copy(env, out_.report, kReportSize));
    result.Set("reportSize", Napi::Number::New(env, out_.report_size));
    deferred_.Resolve(result);
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  bool azure_;
  std::string path_;
  uint8_t data_[64];
  Outcome out_;
};

Napi::Value GetReport(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 3 || !info[0].IsString() || !info[1].IsString() || !info[2].IsBuffer()) {
    throw Napi::TypeError::New(env, "getReport(kind: 'sev-guest' | 'sev', path: string, reportData: Buffer(64))");
  }
  std::string kind = info[0].As<Napi::String>();
  if (kind != "sev-guest" && kind != "sev") throw Napi::TypeError::New(env, "kind must be 'sev-guest' or 'sev'");
  auto data = info[2].As<Napi::Buffer<uint8_t>>();
  if (data.Length() != 64) throw Napi::RangeError::New(env, "reportData must be exactly 64 bytes");
  const std::string path = info[1].As<Napi::String>();
  if (path.empty() || path[0] != '/' || path.find('\0') != std::string::npos) throw Napi::TypeError::New(env, "path must be an absolute device path");
  auto* worker = new ReportWorker(env, kind == "sev", path, data.Data());
  worker->Queue();
  return worker->Promise();
}

// The compiled ABI, so that tests can hold it against the kernel's uapi definitions.
Napi::Value Layout(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  auto n = [&](const char* k, double v) { o.Set(k, Napi::Number::New(env, v)); };
  n("SNP_GET_REPORT", SNP_GET_REPORT);
  n("SEV_SNP_GUEST_MSG_REPORT", SEV_SNP_GUEST_MSG_REPORT);
  n("snp_guest_request_ioctl.size", sizeof(snp_guest_request_ioctl));
  n("snp_guest_request_ioctl.msg_version", offsetof(snp_guest_request_ioctl, msg_version));
  n("snp_guest_request_ioctl.req_data", offsetof(snp_guest_request_ioctl, req_data));
  n("snp_guest_request_ioctl.resp_data", offsetof(snp_guest_request_ioctl, resp_data));
  n("snp_guest_request_ioctl.exitinfo2", offsetof(snp_guest_request_ioctl, exitinfo2));
  n("snp_report_req.size", sizeof(snp_report_req));
  n("snp_report_resp.size", sizeof(snp_report_resp));
  n("sev_snp_guest_request.size", sizeof(sev_snp_guest_request));
  n("sev_snp_guest_request.request_len", offsetof(sev_snp_guest_request, request_len));
  n("sev_snp_guest_request.request_uaddr", offsetof(sev_snp_guest_request, request_uaddr));
  n("sev_snp_guest_request.response_len", offsetof(sev_snp_guest_request, response_len));
  n("sev_snp_guest_request.response_uaddr", offsetof(sev_snp_guest_request, response_uaddr));
  n("sev_snp_guest_request.error", offsetof(sev_snp_guest_request, error));
  n("reportOffset", kReportOffset);
  n("reportSize", kReportSize);
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("getReport", Napi::Function::New(env, GetReport));
  exports.Set("layout", Napi::Function::New(env, Layout));
  RegisterXts(env, exports);
  RegisterVerityHash(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(encfs_snp_crypto, Init)
