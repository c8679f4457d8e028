# node-gyp build of the SO_ORIGINAL_DST addon (plain N-API, no npm dependencies).
# Built by native/original-dst/build.mjs from the root package.json `install` script.
{
  "targets": [
    {
      "target_name": "original_dst",
      "sources": ["original_dst.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
