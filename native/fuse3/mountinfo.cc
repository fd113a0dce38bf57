#include "mountinfo.h"

#include <sys/sysmacros.h>

#include <fstream>
#include <sstream>

namespace encfs_fuse3 {

std::string DecodeMountinfoPath(const std::string& field) {
  std::string out;
  out.reserve(field.size());
  for (size_t i = 0; i < field.size(); i++) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      const char a = field[i + 1], b = field[i + 2], c = field[i + 3];
      if (a >= '0' && a <= '3' && b >= '0' && b <= '7' && c >= '0' && c <= '7') {
        out.push_back(static_cast<char>((a - '0') * 64 + (b - '0') * 8 + (c - '0')));
        i += 3;
        continue;
      }
    }
    out.push_back(field[i]);
  }
  return out;
}

// A line: id parent major:minor root mount-point options [optional fields...] - fstype source super-options
std::optional<MountEntry> TopMountAt(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::optional<MountEntry> top;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, target, word;
    if (!(fields >> id >> parent >> dev >> root >> target) || DecodeMountinfoPath(target) != path) continue;
    while (fields >> word && word != "-") {
    }
    std::string fstype;
    fields >> fstype;
    const auto colon = dev.find(':');
    if (colon == std::string::npos) continue;
    try {
      top = MountEntry{makedev(std::stoul(dev.substr(0, colon)), std::stoul(dev.substr(colon + 1))), fstype};
    } catch (const std::exception&) {
      continue;
    }
  }
  return top;
}

}  // namespace encfs_fuse3
