"""Generated code for the KServe v2 inference protocol; regenerate with `make generate`."""
