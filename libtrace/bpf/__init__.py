"""BPF C sources, their build, and static inspection of the compiled objects."""
