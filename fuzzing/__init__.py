"""Coverage-guided fuzzing of the parsers, the pcap reader and the event decoder
(``tox -e fuzz-deep``, or ``python -m fuzzing``).

Theory of operation
-------------------
The engine is atheris (libFuzzer driving Python code whose bytecode it
instruments for coverage): each target runs in its own child process
(``python -m fuzzing._child TARGET``), which imports libtrace under
``atheris.instrument_imports`` so that libFuzzer sees the edges of
libtrace's own code, and which libFuzzer ends when the target has made its
executions (``--runs``) or its time (``--seconds``) is over.  The parent
(:mod:`fuzzing.__main__`) writes the seeds, starts the children one after
the other, reads libFuzzer's final statistics and prints one JSON object per
target and a summary.  The parsers' modules must be the pure-Python ones: a
mypyc-compiled module has no bytecode to instrument (the parent refuses it).

One target per parser, one for the pcap reader and analyser, one for the
event decoder (:mod:`fuzzing._targets`).  A parser target reads its input as a
script of feeds (data for either direction, gaps, ends of stream; see
:func:`fuzzing._script.parse`), so the cut points between pieces and the
interleaving of the directions are fuzzed along with the bytes; the seeds
are the fixtures' TCP segments and UDP datagrams, one feed each, as the
repository's own pcap reader finds them (:mod:`fuzzing._seeds`).

What counts as a finding (saved under ``OUT/TARGET/findings`` with its
traceback, one file per distinct failure, and making the exit status 1):

* an exception other than the target's own (none for a parser, whose
  ``next_event`` turns every ``ProtocolError`` into a ``Desync``;
  ``PcapError`` for the reader; ``DecodeError`` for the decoder);
* a broken invariant: an event that is not a ``Message`` or ``Desync``, a
  message whose ``fields()`` is not JSON, a direction that buffers more than
  ``MAX_BUFFER_BYTES`` after its events are pulled, bytes still held once
  both directions ended, a parser whose retained object graph outgrows its
  limits (measured on a sample of inputs: walking it costs more than a run);
* an input that takes more than 100 ms of CPU time twice in a row
  (:data:`fuzzing._targets.TIME_BOUND_S`), or that hangs libFuzzer's own
  ``-timeout``.

The byte limits of :mod:`libtrace.parsers._limits` are divided by
``--scale`` (4096 by default; 1 keeps them) in every module that imported
them, so that inputs of a few KiB reach every bound (4 MiB buffers would
need inputs libFuzzer never grows to) and the memory invariants have teeth.
"""
