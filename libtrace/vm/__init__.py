"""The VM layer: kernels, initramfs and QEMU runs (filled in below)."""
