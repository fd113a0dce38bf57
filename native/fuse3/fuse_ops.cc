// The FUSE operations, on libfuse's loop threads, and the native read path: a READ whose bytes
// are all in the mirrored cache table is answered here, plain files straight from the cached
// ranges (writev), userspace LUKS2 volumes decrypted with AES-XTS from the cached ciphertext into
// a per-thread reply buffer. Everything else is posted to JavaScript (js_bridge.cc).
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>

#include <algorithm>
#include <cstring>

#include "../xts_core.h"
#include "session.h"

namespace encfs_fuse3 {
namespace {

constexpr double kTimeout = 3600.0;  // attributes and entries never change while mounted
constexpr size_t kMaxUnit = 4096;
// The reply buffer: one request, widened to whole units at both ends.
constexpr size_t kReplyBytes = kMaxRequest + 2 * kMaxUnit;

// Per FUSE thread: the pinned ranges and the reply buffer, reused from request to request.
thread_local std::vector<Extent*> tlsExtents;
thread_local std::vector<iovec> tlsIov;
thread_local std::unique_ptr<uint8_t[]> tlsReply;

uint64_t AlignDown(uint64_t n, uint64_t a) { return n / a * a; }
uint64_t AlignUp(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

}  // namespace

// Decrypts [a, b) of the table (whole units, pinned in `ex`) into `out`. A unit split between two
// ranges is gathered first.
bool Session::ServeXts(File& f, const std::vector<Extent*>& ex, uint64_t a, uint64_t b, uint8_t* out) {
  const uint64_t unit = f.unit;
  uint8_t unitBuf[kMaxUnit];
  size_t i = 0;
  for (uint64_t pos = a; pos < b;) {
    while (ex[i]->start + ex[i]->len <= pos) i++;
    Extent* e = ex[i];
    const uint64_t stop = std::min(b, e->start + e->len);
    const uint64_t whole = AlignDown(stop - pos, unit);
    if (whole > 0) {
      if (!encfs::XtsCrypt(false, f.key, f.keyLen, e->data + (pos - e->start), out + (pos - a), whole, (pos - f.offset) / 512, unit, f.plain64)) return false;
      pos += whole;
      continue;
    }
    uint64_t got = 0;
    for (size_t j = i; got < unit; j++) {
      Extent* g = ex[j];
      const uint64_t from = pos + got;
      const uint64_t n = std::min(unit - got, g->start + g->len - from);
      std::memcpy(unitBuf + got, g->data + (from - g->start), n);
      got += n;
    }
    if (!encfs::XtsCrypt(false, f.key, f.keyLen, unitBuf, out + (pos - a), unit, (pos - f.offset) / 512, unit, f.plain64)) return false;
    pos += unit;
  }
  return true;
}

// Answers a READ from the cache table when every byte is there; false (nothing answered) when not.
bool Session::ServeNative(fuse_req_t req, File& f, uint64_t off, size_t size, bool loaded) {
  if (!f.table || size > kMaxRequest) return false;
  const uint64_t unit = f.xts ? f.unit : 1;
  const uint64_t a = f.offset + AlignDown(off, unit);
  const uint64_t b = f.offset + AlignUp(off + size, unit);
  auto& ex = tlsExtents;
  if (!f.table->PinCovering(a, b, ex)) return false;
  if (!f.xts) {
    auto& iov = tlsIov;
    iov.clear();
    uint64_t pos = a;
    for (Extent* e : ex) {
      const uint64_t stop = std::min(b, e->start + e->len);
      iov.push_back({const_cast<uint8_t*>(e->data + (pos - e->start)), static_cast<size_t>(stop - pos)});
      pos = stop;
    }
    fuse_reply_iov(req, iov.data(), static_cast<int>(iov.size()));
    f.table->Unpin(ex);
  } else {
    if (!tlsReply) tlsReply.reset(new uint8_t[kReplyBytes]);
    const bool ok = ServeXts(f, ex, a, b, tlsReply.get());
    f.table->Unpin(ex);
    if (!ok) {
      fuse_reply_err(req, EIO);
      return true;
    }
    fuse_reply_buf(req, reinterpret_cast<const char*>(tlsReply.get() + (f.offset + off - a)), size);
  }
  nativeReads_++;
  nativeBytes_ += size;
  // Reported for the cache's access pattern and eviction order; a negative length says that
  // JavaScript counted this read already when it loaded the range.
  NoteTouch(f, off, loaded ? -static_cast<double>(size) : static_cast<double>(size));
  return true;
}

void Session::OnInit(void*, fuse_conn_info* conn) {
  // Up to 1 MiB per READ and WRITE (libfuse derives max_pages from max_write).
  conn->max_write = kMaxRequest;
  conn->max_background = 64;
  conn->congestion_threshold = 48;
  if (conn->capable & FUSE_CAP_ASYNC_READ) conn->want |= FUSE_CAP_ASYNC_READ;
  if (conn->capable & FUSE_CAP_ASYNC_DIO) conn->want |= FUSE_CAP_ASYNC_DIO;
  // The files only change through us: no invalidation on attribute changes.
  conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
}

void Session::Attr(fuse_ino_t ino, struct stat* st) {
  std::memset(st, 0, sizeof(*st));
  st->st_ino = ino;
  st->st_atime = st->st_mtime = st->st_ctime = mountedAt_;
  if (ino == FUSE_ROOT_ID) {
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = 2;
    st->st_size = 4096;
    return;
  }
  File* f = FileOf(ino);
  st->st_mode = S_IFREG | (f->writable ? 0600 : 0444);
  st->st_nlink = 1;
  st->st_size = static_cast<off_t>(f->size);
  st->st_blksize = 4096;
  st->st_blocks = static_cast<blkcnt_t>((f->size + 511) / 512);
}

void Session::OnLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Session* s = Of(req);
  if (parent != FUSE_ROOT_ID) return (void)fuse_reply_err(req, ENOENT);
  for (size_t i = 0; i < s->files_.size(); i++) {
    if (s->files_[i].name != name) continue;
    fuse_entry_param e{};
    e.ino = i + 2;
    e.generation = 1;
    e.attr_timeout = e.entry_timeout = kTimeout;
    s->Attr(e.ino, &e.attr);
    return (void)fuse_reply_entry(req, &e);
  }
  fuse_reply_err(req, ENOENT);
}

void Session::OnGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  Session* s = Of(req);
  if (ino != FUSE_ROOT_ID && !s->FileOf(ino)) return (void)fuse_reply_err(req, ENOENT);
  struct stat st;
  s->Attr(ino, &st);
  fuse_reply_attr(req, &st, kTimeout);
}

void Session::OnSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info*) {
  Session* s = Of(req);
  File* f = s->FileOf(ino);
  if (!f) return (void)fuse_reply_err(req, ino == FUSE_ROOT_ID ? EPERM : ENOENT);
  // The size is the image's: only a truncate to that same size (as O_TRUNC-less tools send) passes.
  if ((to_set & FUSE_SET_ATTR_SIZE) && static_cast<uint64_t>(attr->st_size) != f->size) return (void)fuse_reply_err(req, EPERM);
  if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) return (void)fuse_reply_err(req, EPERM);
  struct stat st;
  s->Attr(ino, &st);
  fuse_reply_attr(req, &st, kTimeout);
}

void Session::OnReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  Session* s = Of(req);
  if (ino != FUSE_ROOT_ID) return (void)fuse_reply_err(req, ENOTDIR);
  std::vector<char> buf;
  auto add = [&](const char* name, fuse_ino_t i) {
    struct stat st {};
    st.st_ino = i;
    const size_t old = buf.size();
    const size_t need = fuse_add_direntry(req, nullptr, 0, name, nullptr, 0);
    buf.resize(old + need);
    fuse_add_direntry(req, buf.data() + old, need, name, &st, static_cast<off_t>(buf.size()));
  };
  add(".", FUSE_ROOT_ID);
  add("..", FUSE_ROOT_ID);
  for (size_t i = 0; i < s->files_.size(); i++) add(s->files_[i].name.c_str(), i + 2);
  if (off < 0 || static_cast<size_t>(off) >= buf.size()) return (void)fuse_reply_buf(req, nullptr, 0);
  fuse_reply_buf(req, buf.data() + off, std::min(buf.size() - static_cast<size_t>(off), size));
}

void Session::OnOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  File* f = Of(req)->FileOf(ino);
  if (!f) return (void)fuse_reply_err(req, ino == FUSE_ROOT_ID ? EISDIR : ENOENT);
  if ((fi->flags & O_ACCMODE) != O_RDONLY && !f->writable) return (void)fuse_reply_err(req, EROFS);
  // The images are pinned by ETag (read-only) or written only through us: the kernel may keep pages across opens.
  fi->keep_cache = 1;
  fuse_reply_open(req, fi);
}

void Session::OnRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  Session* s = Of(req);
  File* f = s->FileOf(ino);
  if (!f) return (void)fuse_reply_err(req, ENOENT);
  if (off < 0) return (void)fuse_reply_err(req, EINVAL);
  const uint64_t o = static_cast<uint64_t>(off);
  if (o >= f->size || size == 0) return (void)fuse_reply_buf(req, nullptr, 0);
  size = static_cast<size_t>(std::min<uint64_t>(size, f->size - o));
  // (The kernel asks for at most kMaxRequest; anything larger goes to JavaScript, never into the reply buffer.)
  if (s->ServeNative(req, *f, o, size, false)) return;
  s->postedReads_++;
  const int kind = f->table ? kRead : kReadData;
  auto* ev = new Event(kind);
  s->PostRequest(ev, Pending{req, kind, static_cast<int>(ino - 2), o, size});
}

void Session::OnWrite(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off, fuse_file_info*) {
  Session* s = Of(req);
  File* f = s->FileOf(ino);
  if (!f) return (void)fuse_reply_err(req, ENOENT);
  if (!f->writable) return (void)fuse_reply_err(req, EROFS);
  if (off < 0) return (void)fuse_reply_err(req, EINVAL);
  const uint64_t o = static_cast<uint64_t>(off);
  if (o > f->size || size > f->size - o) return (void)fuse_reply_err(req, ENOSPC);
  if (size == 0) return (void)fuse_reply_write(req, 0);
  // libfuse reuses its buffer once this returns: JavaScript gets a copy it owns. Whole units of
  // a userspace volume are encrypted on the way (off the main thread), partial ones go as they are.
  auto* data = static_cast<uint8_t*>(std::malloc(size));
  if (!data) return (void)fuse_reply_err(req, ENOMEM);
  const bool encrypt = f->xts && o % f->unit == 0 && size % f->unit == 0 &&
                       encfs::XtsCrypt(true, f->key, f->keyLen, reinterpret_cast<const uint8_t*>(buf), data, size, o / 512, f->unit, f->plain64);
  if (!encrypt) std::memcpy(data, buf, size);
  const int kind = encrypt ? kWriteEncrypted : kWrite;
  auto* ev = new Event(kind);
  ev->data = data;
  s->postedWrites_++;
  s->PostRequest(ev, Pending{req, kind, static_cast<int>(ino - 2), o, size});
}

void Session::OnFsync(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info*) {
  Session* s = Of(req);
  File* f = s->FileOf(ino);
  if (!f) return (void)fuse_reply_err(req, ENOENT);
  if (!f->writable) return (void)fuse_reply_err(req, 0);
  s->postedFsyncs_++;
  s->PostRequest(new Event(kFsync), Pending{req, kFsync, static_cast<int>(ino - 2), 0, 0});
}

void Session::OnFlush(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }
void Session::OnRelease(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }

void Session::OnStatfs(fuse_req_t req, fuse_ino_t) {
  struct statvfs st {};
  st.f_bsize = st.f_frsize = 4096;
  st.f_namemax = 255;
  fuse_reply_statfs(req, &st);
}

}  // namespace encfs_fuse3
