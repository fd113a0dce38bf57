// One transfer of the libcurl fetcher: what JavaScript asked for, the libcurl callbacks that move
// its bytes, and what is checked on the way (see docs/data-path.md, "The HTTP client").
#pragma once

#include <curl/curl.h>
#include <napi.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace encfs_http {

// How a transfer ended when it is not libcurl's own result: told to JavaScript in place of the
// libcurl code (exported as `failures`).
enum Failure : int {
  kCancelled = -1,  // cancel() or close()
  kOverflow = -2,   // the server sent more body than the buffer holds
  kMismatch = -3,   // a 2xx answer that is not the range asked for (another range, a whole blob, a stray response)
  kSetup = -4,      // libcurl refused an option or the handle (its message says which)
};

struct Transfer {
  uint32_t id = 0;
  bool upload = false;
  std::string url;
  std::vector<std::string> headers;
  uint8_t* data = nullptr;
  size_t length = 0;
  // GET: the blob offset of data[0]; the answer must be exactly [first, first + length).
  uint64_t first = 0;
  // PUT: the body, gathered from these Buffers end to end; `pos` bytes of it sent so far.
  std::vector<std::pair<const uint8_t*, size_t>> parts;
  size_t part = 0;
  size_t partPos = 0;
  size_t pos = 0;
  long timeoutMs = 0;
  // Main thread only: keeps the Buffers' memory alive while libcurl writes into (or reads from) it.
  Napi::Reference<Napi::Value> keep;

  // Transfer thread only, until completion.
  CURL* easy = nullptr;
  curl_slist* slist = nullptr;
  long status = 0;
  bool body = false;  // the current answer's headers are done and its body is ours to take
  int failure = 0;    // a Failure, or 0
  std::string contentRange, contentLength;
  std::string responseHeaders;
  std::string message;
  char errbuf[CURL_ERROR_SIZE] = {0};
  CURLcode result = CURLE_OK;
};

// Sets up `easy` for `t`; on a refused option, returns what failed (the transfer is not started).
std::string Configure(CURL* easy, Transfer* t, const std::string& userAgent, const std::string& caPem, long bufferSize);

// The checks a header line must pass to be sent: "Name: value", a token name, no CR, LF or NUL.
// Returns what is wrong, or an empty string.
std::string HeaderProblem(const std::string& line);

// What is wrong with a URL to be requested (not http or https, control characters), or empty.
std::string UrlProblem(const std::string& url);

}  // namespace encfs_http
