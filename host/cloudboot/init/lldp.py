"""LLDP (IEEE 802.1AB): listen on every ethernet link in the background and announce ourselves, so plans can
branch on `lldp.*` (the switch port a machine is cabled to).

The listener keeps the first frame's values; `snapshot()` is what plan evaluation sees (all empty and
`available` false until a frame came). TLVs read: chassis id (1), port id (2), port description (4),
system name (5), system description (6), management address (8)."""

from __future__ import annotations

import _socket as socket  # not socket.py (see netstack.http)
import select
import struct
import threading
import time

from cloudboot.init.log import log

ETH_P_LLDP = 0x88CC
LLDP_MULTICAST = bytes.fromhex("0180c200000e")
FIELDS = ("chassis_id", "port_id", "system_name", "system_desc", "port_desc", "mgmt_addr")


def _id_text(kind: int, subtype: int, value: bytes) -> str:
    """Chassis (kind 1) / port (kind 2) id text: MAC and IPv4 subtypes spelled out, the rest as text."""
    mac, network = (4, 5) if kind == 1 else (3, 4)
    if subtype == mac and len(value) == 6:
        return ":".join(f"{b:02x}" for b in value)
    if subtype == network and value[:1] == b"\x01" and len(value) == 5:  # IANA address family 1: IPv4
        return socket.inet_ntoa(value[1:])
    return value.decode("utf-8", "replace")


def parse(payload: bytes) -> dict[str, str]:
    """LLDPDU TLVs -> the `lldp` fields (values a plan sees). Malformed TLVs end the parse, never raise."""
    out = dict.fromkeys(FIELDS, "")
    i = 0
    while i + 2 <= len(payload):
        head = struct.unpack_from("!H", payload, i)[0]
        kind, length = head >> 9, head & 0x1FF
        value = payload[i + 2:i + 2 + length]
        if len(value) != length or kind == 0:
            break
        if kind in (1, 2) and length >= 2:
            out["chassis_id" if kind == 1 else "port_id"] = _id_text(kind, value[0], value[1:])
        elif kind == 4:
            out["port_desc"] = value.decode("utf-8", "replace")
        elif kind == 5:
            out["system_name"] = value.decode("utf-8", "replace")
        elif kind == 6:
            out["system_desc"] = value.decode("utf-8", "replace")
        elif kind == 8 and length >= 2 and value[1] == 1 and value[0] == 5:
            out["mgmt_addr"] = socket.inet_ntoa(value[2:6])
        i += 2 + length
    return out


def _tlv(kind: int, value: bytes) -> bytes:
    return struct.pack("!H", kind << 9 | len(value)) + value


def frame_payload(mac: bytes, port: str, system_name: str, ttl: int = 120) -> bytes:
    """Our LLDPDU: chassis id = MAC, port id = interface name, TTL, system name and description, end."""
    return (_tlv(1, b"\x04" + mac) + _tlv(2, b"\x05" + port.encode()[:255]) + _tlv(3, struct.pack("!H", ttl))
            + _tlv(5, system_name.encode()[:255]) + _tlv(6, b"cloud-boot-init") + _tlv(0, b""))


class Listener:
    """Background LLDP receive (and transmit) on the given links for `wait` seconds."""

    def __init__(self, links: list[str], wait: float, transmit: bool, system_name: str) -> None:
        self.values: dict[str, str] | None = None
        self.links, self.wait, self.transmit, self.system_name = links, wait, transmit, system_name
        self._thread = threading.Thread(target=self._run, name="lldp", daemon=True)

    def start(self) -> Listener:
        if self.links and self.wait > 0:
            self._thread.start()
        return self

    def _run(self) -> None:
        socks = {}
        for name in self.links:
            try:
                s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_LLDP))
                s.bind((name, ETH_P_LLDP))
                socks[s] = name
                if self.transmit:
                    from cloudboot.init.net import mac_address

                    mac = mac_address(name)
                    s.send(LLDP_MULTICAST + mac + struct.pack("!H", ETH_P_LLDP)
                           + frame_payload(mac, name, self.system_name))
            except Exception as exc:  # noqa: BLE001 - LLDP is best effort; never stop the boot
                log(f"lldp: {name}: {exc}")
        end = time.monotonic() + self.wait
        try:
            while socks and self.values is None and time.monotonic() < end:
                ready, _, _ = select.select(list(socks), [], [], max(0.0, min(1.0, end - time.monotonic())))
                for s in ready:
                    frame = s.recv(2048)
                    if len(frame) > 14 and struct.unpack_from("!H", frame, 12)[0] == ETH_P_LLDP:
                        values = parse(frame[14:])
                        log(f"lldp: {socks[s]}: " + " ".join(f"{k}={v!r}" for k, v in values.items() if v))
                        self.values = values
                        break
        finally:
            for s in socks:
                s.close()

    def snapshot(self, settle: float = 0.0) -> dict[str, str]:
        """What a plan sees now (waiting up to `settle` seconds for a first frame)."""
        end = time.monotonic() + settle
        while self.values is None and self._thread.is_alive() and time.monotonic() < end:
            time.sleep(0.05)
        return dict(self.values) if self.values else {}
