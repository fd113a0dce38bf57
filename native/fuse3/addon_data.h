// What the addon keeps per JavaScript environment.
#pragma once

#include <napi.h>

namespace encfs_fuse3 {

struct AddonData {
  // The Table class, to tell a real Table from any object passed as one.
  Napi::FunctionReference table;
};

}  // namespace encfs_fuse3
