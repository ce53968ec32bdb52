"""Feed sequences for the MySQL, Kafka, MQTT and Dubbo parsers (a RuleBasedStateMachine).

Valid messages, junk, capture gaps and ends of stream arrive in any order on
either direction; after every step the parser must not raise, must keep its
buffers bounded, and every event must be a message of its protocol or a Desync.
"""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from libtrace.parsers import Desync, Message, parser_for
from libtrace.parsers._limits import MAX_BUFFER_BYTES

from . import test_dubbo as dubbo
from . import test_kafka as kafka
from . import test_mqtt as mqtt
from . import test_mysql as mysql

#: Valid wire messages per protocol and direction, taken from the cases tables.
SAMPLES = {
    name: {"request": [c[1] for c in module.CASES], "response": [c[2] for c in module.CASES]}
    for name, module in (("mysql", mysql), ("kafka", kafka), ("mqtt", mqtt), ("dubbo", dubbo))
}
DIRECTIONS = st.sampled_from(["request", "response"])


class FeedSequences(RuleBasedStateMachine):
    @initialize(protocol=st.sampled_from(sorted(SAMPLES)), mid=st.booleans())
    def start(self, protocol: str, mid: bool) -> None:
        self.protocol = protocol
        self.parser = parser_for(protocol)(mid_stream=mid)
        self.ts = 0

    def _pull(self) -> None:
        for event in self.parser.events():
            assert isinstance(event, Desync) or (
                isinstance(event, Message) and event.protocol == self.protocol)

    @rule(direction=DIRECTIONS, data=st.data(), cut=st.integers(0, 64))
    def valid(self, direction: str, data: st.DataObject, cut: int) -> None:
        wire = data.draw(st.sampled_from(SAMPLES[self.protocol][direction]))
        for piece in (wire[:cut], wire[cut:]):
            if piece:
                self.ts += 1
                self.parser.feed(direction, piece, self.ts)
                self._pull()

    @rule(direction=DIRECTIONS, junk=st.binary(min_size=1, max_size=64))
    def junk(self, direction: str, junk: bytes) -> None:
        self.ts += 1
        self.parser.feed(direction, junk, self.ts)
        self._pull()

    @rule(direction=DIRECTIONS, size=st.integers(1, 1 << 20))
    def gap(self, direction: str, size: int) -> None:
        self.ts += 1
        self.parser.feed_gap(direction, size, self.ts)
        self._pull()

    @rule(direction=DIRECTIONS)
    def end(self, direction: str) -> None:
        self.parser.feed(direction, b"", self.ts)
        self._pull()

    @invariant()
    def bounded(self) -> None:
        if hasattr(self, "parser"):
            for side in self.parser._sides.values():
                assert len(side.buf) <= 2 * MAX_BUFFER_BYTES


TestFeedSequences = pytest.mark.fuzz(FeedSequences.TestCase)
FeedSequences.TestCase.settings = settings(stateful_step_count=30)
