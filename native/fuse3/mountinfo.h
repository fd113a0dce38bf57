// Our mount as the kernel lists it in /proc/self/mountinfo: found without a request to ourselves
// (a stat of the mount point would be a FUSE request the loop may not be there to answer).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

namespace encfs_fuse3 {

struct MountEntry {
  dev_t dev = 0;  // the FUSE connection's number is its minor
  std::string fstype;
};

// mountinfo writes a space, tab, newline and backslash in a path as \040, \011, \012 and \134.
std::string DecodeMountinfoPath(const std::string& field);

// The filesystem mounted last (on top) at `path`, a canonical path; nothing when none is.
std::optional<MountEntry> TopMountAt(const std::string& path);

}  // namespace encfs_fuse3
