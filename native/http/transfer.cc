#include "transfer.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <regex>
#include <string_view>

namespace encfs_http {
namespace {

// A failed answer's headers are kept for the error (x-ms-error-code, Retry-After); its body is not.
constexpr size_t kMaxHeaderBytes = 16 * 1024;

bool IsToken(char c) { return std::isalnum(static_cast<unsigned char>(c)) || std::strchr("!#$%&'*+-.^_`|~", c) != nullptr; }

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string Trim(std::string_view s) {
  while (!s.empty() && std::strchr(" \t\r\n", s.front())) s.remove_prefix(1);
  while (!s.empty() && std::strchr(" \t\r\n", s.back())) s.remove_suffix(1);
  return std::string(s);
}

// Whether the 2xx answer whose headers just ended is exactly the bytes asked for: a 206 for the
// same range, or a 200 (the whole blob) when the range asked for is the whole blob. Anything else
// would put other bytes in the caller's buffer: what is wrong, or an empty string.
std::string RangeProblem(const Transfer& t) {
  const uint64_t last = t.first + t.length - 1;
  const std::string asked = "asked for bytes " + std::to_string(t.first) + "-" + std::to_string(last);
  if (!t.contentLength.empty() && t.contentLength != std::to_string(t.length)) {
    return "the answer is " + std::to_string(t.status) + " with Content-Length " + t.contentLength + " (" + asked + ")";
  }
  if (t.status == 206) {
    static const std::regex range("bytes (\\d+)-(\\d+)/(\\d+|\\*)");
    std::smatch m;
    if (std::regex_match(t.contentRange, m, range) && m[1] == std::to_string(t.first) && m[2] == std::to_string(last)) return "";
    return "the answer is 206 with Content-Range \"" + t.contentRange + "\" (" + asked + ")";
  }
  if (t.status == 200 && t.first == 0 && t.contentLength == std::to_string(t.length)) return "";
  return "the answer is " + std::to_string(t.status) + (t.status == 200 ? " (a whole blob, not the range)" : "") + " (" + asked + ")";
}

size_t OnHeader(char* p, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t len = size * n;
  const std::string_view line(p, len);
  if (line.size() > 5 && line.substr(0, 5) == "HTTP/") {
    // Every answer (a 100 Continue, then the real one) starts with its status line.
    t->responseHeaders.clear();
    t->contentRange.clear();
    t->contentLength.clear();
    t->body = false;
    const size_t sp = line.find(' ');
    t->status = sp == std::string_view::npos ? 0 : std::strtol(std::string(line.substr(sp + 1, 3)).c_str(), nullptr, 10);
  } else if (line == "\r\n" || line == "\n") {
    if (t->status >= 200 && t->status < 300 && !t->upload) {
      const std::string why = RangeProblem(*t);
      if (!why.empty()) {
        // Aborting ends the transfer before a byte of the body is taken, and libcurl closes the
        // connection (it may carry more answers nobody asked for).
        t->failure = kMismatch;
        t->message = why;
        return 0;
      }
      t->body = true;
    }
  } else if (const size_t colon = line.find(':'); colon != std::string_view::npos) {
    const std::string name = Lower(line.substr(0, colon));
    if (name == "content-range") t->contentRange = Trim(line.substr(colon + 1));
    if (name == "content-length") t->contentLength = Trim(line.substr(colon + 1));
  }
  if (t->responseHeaders.size() + len <= kMaxHeaderBytes) t->responseHeaders.append(p, len);
  return len;
}

size_t OnWrite(char* p, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t len = size * n;
  // Only the matching answer's body is the blob's bytes; an error's body (XML) is dropped.
  if (t->upload || !t->body) return len;
  if (t->pos + len > t->length) {
    t->failure = kOverflow;
    return 0;  // the server sent more than was asked for: the transfer (and its connection) ends
  }
  std::memcpy(t->data + t->pos, p, len);
  t->pos += len;
  return len;
}

size_t OnRead(char* p, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t room = size * n;
  size_t out = 0;
  while (room > 0 && t->part < t->parts.size()) {
    const auto& [base, len] = t->parts[t->part];
    const size_t k = std::min(room, len - t->partPos);
    std::memcpy(p + out, base + t->partPos, k);
    out += k;
    room -= k;
    t->partPos += k;
    if (t->partPos == len) {
      t->part++;
      t->partPos = 0;
    }
  }
  t->pos += out;
  return out;
}

// libcurl rewinds an upload to send it again (a kept-alive connection found dead after part of
// the body went out, a redirect): back to `offset` of the gathered body.
int OnSeek(void* user, curl_off_t offset, int origin) {
  auto* t = static_cast<Transfer*>(user);
  if (origin != SEEK_SET || offset < 0 || static_cast<uint64_t>(offset) > t->length) return CURL_SEEKFUNC_FAIL;
  t->part = 0;
  t->partPos = 0;
  size_t left = static_cast<size_t>(offset);
  while (left > 0 && t->part < t->parts.size()) {
    const size_t len = t->parts[t->part].second;
    if (left < len) {
      t->partPos = left;
      break;
    }
    left -= len;
    t->part++;
  }
  t->pos = static_cast<size_t>(offset);
  return CURL_SEEKFUNC_OK;
}

}  // namespace

std::string HeaderProblem(const std::string& line) {
  const size_t colon = line.find(':');
  if (colon == 0 || colon == std::string::npos) return "a header is \"Name: value\"";
  if (!std::all_of(line.begin(), line.begin() + static_cast<std::ptrdiff_t>(colon), IsToken)) return "a header name is a token (letters, digits, !#$%&'*+-.^_`|~)";
  if (line.find_first_of(std::string("\r\n\0", 3), colon) != std::string::npos) return "a header value may not hold CR, LF or NUL";
  return "";
}

std::string UrlProblem(const std::string& url) {
  const std::string scheme = Lower(url.substr(0, url.find(':')));
  if (scheme != "http" && scheme != "https") return "only http and https URLs are requested";
  for (unsigned char c : url) {
    if (c <= 0x20 || c == 0x7f) return "a URL may not hold spaces or control characters";
  }
  return "";
}

std::string Configure(CURL* e, Transfer* t, const std::string& userAgent, const std::string& caPem, long bufferSize) {
  std::string failed;
  auto set = [&](CURLoption option, auto value, const char* name) {
    if (!failed.empty()) return;
    const CURLcode c = curl_easy_setopt(e, option, value);
    if (c != CURLE_OK) failed = std::string(name) + ": " + curl_easy_strerror(c);
  };
  for (const auto& h : t->headers) {
    curl_slist* grown = curl_slist_append(t->slist, h.c_str());
    if (!grown) return "curl_slist_append: out of memory";
    t->slist = grown;
  }
  if (t->upload) {
    curl_slist* grown = curl_slist_append(t->slist, "Expect:");  // no 100-continue round trip
    if (!grown) return "curl_slist_append: out of memory";
    t->slist = grown;
  }
  set(CURLOPT_URL, t->url.c_str(), "CURLOPT_URL");
  // Blob URLs only: a file://, ftp:// or other URL (from a configuration or a redirect) is refused by libcurl too.
  set(CURLOPT_PROTOCOLS_STR, "http,https", "CURLOPT_PROTOCOLS_STR");
  set(CURLOPT_REDIR_PROTOCOLS_STR, "http,https", "CURLOPT_REDIR_PROTOCOLS_STR");
  set(CURLOPT_HTTPHEADER, t->slist, "CURLOPT_HTTPHEADER");
  set(CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1), "CURLOPT_HTTP_VERSION");
  set(CURLOPT_NOSIGNAL, 1L, "CURLOPT_NOSIGNAL");
  set(CURLOPT_PRIVATE, static_cast<void*>(t), "CURLOPT_PRIVATE");
  set(CURLOPT_ERRORBUFFER, t->errbuf, "CURLOPT_ERRORBUFFER");
  set(CURLOPT_HEADERFUNCTION, OnHeader, "CURLOPT_HEADERFUNCTION");
  set(CURLOPT_HEADERDATA, static_cast<void*>(t), "CURLOPT_HEADERDATA");
  set(CURLOPT_WRITEFUNCTION, OnWrite, "CURLOPT_WRITEFUNCTION");
  set(CURLOPT_WRITEDATA, static_cast<void*>(t), "CURLOPT_WRITEDATA");
  set(CURLOPT_BUFFERSIZE, bufferSize, "CURLOPT_BUFFERSIZE");
  set(CURLOPT_TCP_KEEPALIVE, 1L, "CURLOPT_TCP_KEEPALIVE");
  if (t->timeoutMs > 0) set(CURLOPT_TIMEOUT_MS, t->timeoutMs, "CURLOPT_TIMEOUT_MS");
  if (!userAgent.empty()) set(CURLOPT_USERAGENT, userAgent.c_str(), "CURLOPT_USERAGENT");
  if (!caPem.empty()) {
    curl_blob blob{const_cast<char*>(caPem.data()), caPem.size(), CURL_BLOB_NOCOPY};
    set(CURLOPT_CAINFO_BLOB, &blob, "CURLOPT_CAINFO_BLOB");
  }
  if (t->upload) {
    set(CURLOPT_UPLOAD, 1L, "CURLOPT_UPLOAD");
    set(CURLOPT_READFUNCTION, OnRead, "CURLOPT_READFUNCTION");
    set(CURLOPT_READDATA, static_cast<void*>(t), "CURLOPT_READDATA");
    set(CURLOPT_SEEKFUNCTION, OnSeek, "CURLOPT_SEEKFUNCTION");
    set(CURLOPT_SEEKDATA, static_cast<void*>(t), "CURLOPT_SEEKDATA");
    set(CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(t->length), "CURLOPT_INFILESIZE_LARGE");
    set(CURLOPT_UPLOAD_BUFFERSIZE, 1024L * 1024L, "CURLOPT_UPLOAD_BUFFERSIZE");
  }
  return failed;
}

}  // namespace encfs_http
