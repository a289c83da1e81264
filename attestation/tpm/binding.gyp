{
  "targets": [
    {
      "target_name": "quorate_tpm",
      "sources": ["src/quorate_tpm.cc"],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(pkg-config --cflags-only-I tss2-esys tss2-tctildr tss2-mu tss2-rc | sed 's/-I//g')"
      ],
      "libraries": ["<!@(pkg-config --libs tss2-esys tss2-tctildr tss2-mu tss2-rc)"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]
    }
  ]
}
