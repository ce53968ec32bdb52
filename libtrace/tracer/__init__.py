"""The socket tracer: libbpf binding, feature probing, events, the Tracer."""
