"""``python -m libtrace.pcap FILE [--json]``: the pcap command without the main CLI."""

import sys

from .cli import main

sys.exit(main(["pcap", *sys.argv[1:]]))
