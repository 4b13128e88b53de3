"""Ring buffer: wraparound, overflow accounting with gap positions, threaded use."""

from __future__ import annotations

import threading

import numpy as np

from streamsep.engine.ringbuffer import RingBuffer


def _ramp(start: int, n: int, channels: int = 2) -> np.ndarray:
    return np.repeat(np.arange(start, start + n, dtype=np.float32)[:, None], channels, axis=1)


def test_wraparound_preserves_order() -> None:
    ring = RingBuffer(10, 2)
    got = []
    written = 0
    for n in (7, 3, 6, 9, 1, 10):
        assert ring.write(_ramp(written, n)) == n
        written += n
        res = ring.read(100, timeout=1)
        assert res.lost_before == 0
        got.append(res.samples)
    data = np.concatenate(got)
    np.testing.assert_array_equal(data[:, 0], np.arange(written))
    assert ring.overrun_samples == 0


def test_overflow_is_counted_and_marked_at_its_place() -> None:
    ring = RingBuffer(8, 1)
    assert ring.write(_ramp(0, 6, 1)) == 6
    assert ring.write(_ramp(6, 5, 1)) == 2  # 3 dropped: indices 8, 9, 10
    assert ring.write(_ramp(11, 4, 1)) == 0  # 4 more dropped: 11..14
    assert ring.overrun_samples == 7
    first = ring.read(100, timeout=1)
    np.testing.assert_array_equal(first.samples[:, 0], np.arange(8))
    assert (first.start_index, first.lost_before) == (0, 0)
    assert ring.write(_ramp(15, 3, 1)) == 3
    second = ring.read(100, timeout=1)
    assert second.lost_before == 7
    assert second.start_index == 15
    np.testing.assert_array_equal(second.samples[:, 0], [15, 16, 17])


def test_read_never_spans_a_gap() -> None:
    ring = RingBuffer(100, 1)
    ring.write(_ramp(0, 5, 1))
    ring.mark_gap(3)
    ring.write(_ramp(8, 4, 1))
    a = ring.read(100, timeout=1)
    b = ring.read(100, timeout=1)
    assert (a.start_index, a.lost_before, len(a.samples)) == (0, 0, 5)
    assert (b.start_index, b.lost_before, len(b.samples)) == (8, 3, 4)


def test_close_drains_then_returns_empty() -> None:
    ring = RingBuffer(16, 1)
    ring.write(_ramp(0, 4, 1))
    ring.close()
    assert len(ring.read(100, timeout=1).samples) == 4
    end = ring.read(100, timeout=1)
    assert len(end.samples) == 0 and ring.closed


def test_threaded_producer_consumer_accounts_for_every_sample() -> None:
    ring = RingBuffer(64, 1)
    total = 20000
    received: list[np.ndarray] = []
    lost = 0
    indices_ok = True

    def consume() -> None:
        nonlocal lost, indices_ok
        expected = 0
        while True:
            res = ring.read(50, timeout=5)
            if len(res.samples) == 0 and res.lost_before == 0:
                if ring.closed:
                    return
                continue
            lost += res.lost_before
            expected += res.lost_before
            if res.start_index != expected or (len(res.samples) and res.samples[0, 0] != expected):
                indices_ok = False
            expected += len(res.samples)
            received.append(res.samples)

    consumer = threading.Thread(target=consume)
    consumer.start()
    for start in range(0, total, 37):
        ring.write(_ramp(start, min(37, total - start), 1))
    ring.close()
    consumer.join(timeout=30)
    assert not consumer.is_alive()
    n_received = sum(len(r) for r in received)
    assert n_received + lost == total
    assert lost == ring.overrun_samples
    assert indices_ok
