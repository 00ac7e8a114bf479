{
  "targets": [
    {
      "target_name": "nftables",
      "sources": ["src/native/nftables.c", "src/native/setelem-get.c", "src/native/setelem-batch.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=gnu11"],
      "libraries": ["-lnftables"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
