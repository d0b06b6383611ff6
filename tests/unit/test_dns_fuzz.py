"""oci.srv's answer decoder on untrusted bytes (CPython, hypothesis): only DnsError, never another exception or a
hang, on random messages and on mutations of answers our test DNS server writes (an independent encoder)."""

from __future__ import annotations

import os
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oci.srv import DnsError, decode_answer, encode_query, order
from tests.dnsserver import build_answer

NAME = "_oci._tcp.fuzz.test"
FUZZ = settings(max_examples=int(os.environ.get("DNS_FUZZ_EXAMPLES", "400")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


SEED = build_answer(encode_query(NAME, 77), {NAME: [(10, 5, 5000, "reg1.fuzz.test"), (20, 0, 443, "reg2.fuzz.test")]},
                    {})


def _check(msg: bytes) -> None:
    try:
        records, addresses, _ = decode_answer(msg, 77, NAME)
    except DnsError as exc:
        assert str(exc).startswith("DNS")
        return
    for prio, weight, port, target in records:
        assert 0 <= prio < 65536 and 0 <= weight < 65536 and 0 <= port < 65536 and len(target) <= 255
    order(records)


def test_seed_decodes() -> None:
    assert decode_answer(SEED, 77, NAME)[0] == [(10, 5, 5000, "reg1.fuzz.test"), (20, 0, 443, "reg2.fuzz.test")]


@FUZZ
@given(st.binary(max_size=600))
def test_random_messages(data: bytes) -> None:
    _check(struct.pack(">H", 77) + data)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(SEED) - 1), st.integers(0, 255)), min_size=1, max_size=8),
       st.integers(0, len(SEED)))
def test_mutated_answers(flips: list[tuple[int, int]], cut: int) -> None:
    msg = bytearray(SEED)
    for i, b in flips:
        msg[i] = b
    _check(bytes(msg[:max(cut, 2)]))
