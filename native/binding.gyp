{
  "targets": [
    {
      "target_name": "physcap",
      "sources": [
        "src/addon/addon.cc",
        "src/addon/arm.cc",
        "src/addon/capture.cc",
        "src/addon/common.cc",
        "src/addon/device.cc",
        "src/addon/files.cc",
        "src/addon/hash.cc",
        "src/addon/kmsg.cc",
        "src/addon/system.cc",
        "src/addon/uapi.cc",
        "src/addon/worker.cc",
        "src/io/armdev.cc",
        "src/io/capture.cc",
        "src/io/chunkhash.cc",
        "src/io/dest.cc",
        "src/io/digestpipe.cc",
        "src/io/dirops.cc",
        "src/io/hashfile.cc",
        "src/io/kmsg.cc",
        "src/io/physcap_dev.cc",
        "src/io/physread.cc",
        "src/io/sha256.cc",
        "src/io/system.cc",
        "src/io/window.cc",
        "src/io/workers.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=6", "NAPI_CPP_EXCEPTIONS", "_GNU_SOURCE"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=c++17"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Werror", "-O2", "-fexceptions"]
    }
  ]
}
