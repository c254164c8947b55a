{
  "targets": [
    {
      "target_name": "caffe_native",
      "sources": ["native/caffe_native.c", "native/packed_gemm.c", "native/winograd.c", "native/pool.c", "native/depthwise.c", "native/lrn.c", "native/sgd.c"],
      "cflags_c": ["-O3", "-std=c11", "-fno-math-errno", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "include_dirs": ["/usr/include/x86_64-linux-gnu/openblas-pthread", "/usr/include/openblas"],
      "libraries": ["-lopenblas", "-lpthread"]
    }
  ]
}
