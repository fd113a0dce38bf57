{
  "targets": [
    {
      "target_name": "encfs_fuse3",
      "sources": ["addon.cc", "cache_table.cc", "fuse_ops.cc", "js_bridge.cc", "mountinfo.cc", "session_mount.cc", "session_shutdown.cc", "../xts_core.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "/usr/include/fuse3"],
      "libraries": ["-lfuse3", "-lpthread"],
      "defines": ["NAPI_VERSION=8"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-O2"]
    }
  ]
}
