"""The kernel matrix: run the tracer's kernel-level tests on many kernels and
report a kernel × capability table (``libtrace matrix``, ``tox -e matrix``)."""
