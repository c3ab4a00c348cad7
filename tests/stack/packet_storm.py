#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Malformed and hostile frames for the packet storm tests (tests/stack/packet_storm_mp_test.cc).

  packet_storm.py storm --iface IF | --pcap-dir DIR  --dst-mac M --src-mac M --dst-ip A --src-ip A
                        --port P [--scale N]
      Prints "READY classes=a,b,..." and then, for every "run" line on stdin, builds the next class
      of frames and sends them on IF (layer 2, from inside the test's network namespace) or writes
      them to DIR/<class>.pcap (for the user-veth injector); prints "SENT class=NAME tried=N".
      "quit" (or stdin's end) ends it.
  packet_storm.py echo --ip A --port P --seconds S [--reconnect-every N]
      A legitimate client (kernel sockets): request/response rounds of 64 bytes on one connection,
      a new connection every N rounds, for S seconds or until a line (or the end) on stdin; prints
      "ECHO rounds_ok= rounds_failed= connects_ok= connects_failed=".

Every class is deterministic (seeded), so a failing run can be replayed.
"""
import argparse
import os
import random
import select
import socket
import sys
import time

# scapy writes warnings on import (no default route in a fresh namespace): keep them off stdout.
import logging
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import ARP, ICMP, IP, TCP, UDP, Ether, Raw, conf, fragment, wrpcap  # noqa: E402
from scapy.layers.l2 import Dot1Q  # noqa: E402


def ip_checksum(header):
    total = sum(int.from_bytes(header[i:i + 2], "big") for i in range(0, len(header), 2))
    while total >> 16:
        total = (total & 0xffff) + (total >> 16)
    return (~total) & 0xffff


def with_options(packet, options):
    """The bytes of IPv4 `packet` with raw `options` (a multiple of 4 bytes, valid or not) inserted
    after its header; IHL, total length and header checksum fixed (scapy parses options it builds,
    so broken ones are assembled by hand). TCP/UDP checksums do not cover IP options."""
    data = bytes(packet)
    header = bytearray(data[:20] + options)
    header[0] = 0x40 | (len(header) // 4)
    header[2:4] = (len(data) + len(options)).to_bytes(2, "big")
    header[10:12] = b"\x00\x00"
    header[10:12] = ip_checksum(bytes(header)).to_bytes(2, "big")
    return bytes(header) + data[20:]


def classes(a):
    """(name, frames) for every class, in order. a: parsed arguments."""
    rnd = random.Random(8)
    eth = Ether(dst=a.dst_mac, src=a.src_mac)
    scale = a.scale
    spoofed = [".".join(a.src_ip.split(".")[:3] + [str(100 + i)]) for i in range(20)]

    def raw(frame):
        return bytes(frame)

    def tcp(flags, dport=None, sport=None, **kw):
        return eth / IP(src=a.src_ip, dst=a.dst_ip) / TCP(
            sport=sport or rnd.randint(20000, 60000), dport=dport or a.port, flags=flags,
            seq=rnd.getrandbits(32), **kw)

    out = []

    # Runts: shorter than an Ethernet header (only the user-veth path can carry these: the kernel
    # pads a packet socket's frame to the link header), then a header and a bit of IP.
    runts = []
    for _ in range(scale):
        for n in (1, 6, 12, 13, 14, 15, 20, 33):
            runts.append(raw(eth / IP(src=a.src_ip, dst=a.dst_ip) / UDP(dport=a.port))[:n])
    out.append(("runt", runts))

    # Truncated headers: IPv4 cut inside its header, IHL beyond the frame, IHL < 5, TCP and UDP
    # headers cut short, ARP cut short.
    trunc = []
    for _ in range(scale):
        full = raw(eth / IP(src=a.src_ip, dst=a.dst_ip) / TCP(dport=a.port, flags="S"))
        for n in (14 + 10, 14 + 19, 14 + 20 + 4, 14 + 20 + 12, 14 + 20 + 19):
            trunc.append(full[:n])
        trunc.append(raw(eth / IP(src=a.src_ip, dst=a.dst_ip, ihl=15) / Raw(b"x" * 8)))
        trunc.append(raw(eth / IP(src=a.src_ip, dst=a.dst_ip, ihl=2) / UDP(dport=a.port)))
        trunc.append(raw(eth / IP(src=a.src_ip, dst=a.dst_ip) / UDP(dport=a.port))[:14 + 20 + 5])
        trunc.append(raw(eth / ARP(psrc=a.src_ip, pdst=a.dst_ip))[:14 + 12])
    out.append(("truncated", trunc))

    # Wrong lengths: IP total length beyond the frame, below the header, zero; UDP length too big
    # and too small; TCP data offset beyond the segment and below 5.
    lens = []
    for _ in range(scale):
        lens.append(raw(eth / IP(src=a.src_ip, dst=a.dst_ip, len=1400) / UDP(dport=a.port) / Raw(b"a" * 10)))
        lens.append(raw(eth / IP(src=a.src_ip, dst=a.dst_ip, len=12) / UDP(dport=a.port) / Raw(b"a" * 10)))
        lens.append(raw(eth / IP(src=a.src_ip, dst=a.dst_ip, len=0) / UDP(dport=a.port) / Raw(b"a" * 10)))
        lens.append(raw(eth / IP(src=a.src_ip, dst=a.dst_ip) / UDP(dport=a.port, len=200) / Raw(b"a" * 10)))
        lens.append(raw(eth / IP(src=a.src_ip, dst=a.dst_ip) / UDP(dport=a.port, len=4) / Raw(b"a" * 10)))
        lens.append(raw(tcp("S", dataofs=15)))
        lens.append(raw(tcp("S", dataofs=3)))
        lens.append(raw(tcp("PA", dataofs=15) / Raw(b"b" * 8)))
    out.append(("bad_length", lens))

    # Wrong checksums on every layer lwIP checks.
    sums = []
    for _ in range(scale):
        sums.append(raw(eth / IP(src=a.src_ip, dst=a.dst_ip, chksum=0x1234) / UDP(dport=a.port) / Raw(b"c")))
        sums.append(raw(eth / IP(src=a.src_ip, dst=a.dst_ip) / UDP(dport=a.port, chksum=0x1234) / Raw(b"c")))
        sums.append(raw(tcp("S", chksum=0x1234)))
        sums.append(raw(eth / IP(src=a.src_ip, dst=a.dst_ip) / ICMP(chksum=0x1234) / Raw(b"ping")))
    out.append(("bad_checksum", sums))

    # IP options: valid ones (NOP, record route, timestamp), source routes, and broken ones
    # (length 0, length past the header).
    opts = []
    for _ in range(scale):
        for o in (b"\x01\x01\x01\x01", b"\x07\x07\x04" + b"\x00" * 4 + b"\x00",
                  b"\x44\x0c\x05\x00" + b"\x00" * 8, b"\x83\x07\x04\xc6\x12\x05\x09\x00",
                  b"\x94\x04\x00\x00", b"\x07\x00\x00\x00", b"\x07\x28\x04\x00"):
            syn = IP(src=a.src_ip, dst=a.dst_ip) / TCP(sport=rnd.randint(20000, 60000), dport=a.port, flags="S")
            opts.append(raw(eth) + with_options(syn, o))
            opts.append(raw(eth) + with_options(IP(src=a.src_ip, dst=a.dst_ip) / ICMP() / Raw(b"opt"), o))
    out.append(("ip_options", opts))

    # Fragments: overlapping pairs, many tiny fragments of one datagram, fragments past 64 KiB,
    # a datagram whose first fragment never comes, a first fragment too short for the ports.
    frags = []
    for i in range(scale):
        ident = 1000 + i
        payload = bytes(rnd.getrandbits(8) for _ in range(64))
        frags.append(raw(eth / IP(src=a.src_ip, dst=a.dst_ip, id=ident, flags="MF", frag=0, proto=17) /
                         Raw(b"\x1f\x40" + a.port.to_bytes(2, "big") + b"\x00\x50\x00\x00" + payload[:32])))
        frags.append(raw(eth / IP(src=a.src_ip, dst=a.dst_ip, id=ident, flags="MF", frag=2, proto=17) /
                         Raw(payload[:32])))  # overlaps the first
        frags.append(raw(eth / IP(src=a.src_ip, dst=a.dst_ip, id=ident, frag=4, proto=17) / Raw(payload[:16])))
        for k in range(24):  # too many fragments for one datagram
            frags.append(raw(eth / IP(src=a.src_ip, dst=a.dst_ip, id=ident + 5000, flags="MF", frag=k, proto=1) /
                             Raw(payload[:8])))
        frags.append(raw(eth / IP(src=a.src_ip, dst=a.dst_ip, id=ident + 9000, frag=8189, proto=17) /
                         Raw(payload[:64])))  # ends past 65535
        frags.append(raw(eth / IP(src=a.src_ip, dst=a.dst_ip, id=ident + 12000, flags="MF", frag=10, proto=6) /
                         Raw(payload[:16])))  # no first fragment ever
        frags.append(raw(eth / IP(src=a.src_ip, dst=a.dst_ip, id=ident + 15000, flags="MF", frag=0, proto=6) /
                         Raw(b"\x4e")))  # first fragment: one byte of TCP header
    # A real fragmented ping that must reassemble (and be answered).
    for f in fragment(IP(src=a.src_ip, dst=a.dst_ip, id=30000) / ICMP(id=7, seq=1) / Raw(b"z" * 3000), fragsize=800):
        frags.append(raw(eth / f))
    out.append(("fragments", frags))

    # TCP flag combinations nothing legitimate sends, to the listener and to a closed port.
    flags = []
    for _ in range(scale):
        for f in ("SF", "", "FPU", "SR", "SRAFPUEC", "SFPU", "F", "U"):
            flags.append(raw(tcp(f)))
            flags.append(raw(tcp(f, dport=a.port + 1)))
    out.append(("tcp_flags", flags))

    # Zero windows: SYNs and stray ACKs announcing window 0.
    zero = []
    for _ in range(scale):
        zero.append(raw(tcp("S", window=0)))
        zero.append(raw(tcp("A", window=0, ack=rnd.getrandbits(32))))
        zero.append(raw(tcp("PA", window=0, ack=rnd.getrandbits(32)) / Raw(b"d" * 100)))
    out.append(("zero_window", zero))

    # RST flood, random sequence numbers from ports 20000-31999: the real client's connections
    # use the kernel's ephemeral ports (32768+), so no RST can land in their window.
    rsts = [raw(tcp("R", sport=rnd.randint(20000, 31999))) for _ in range(20 * scale)]
    rsts += [raw(tcp("RA", sport=rnd.randint(20000, 31999))) for _ in range(10 * scale)]
    out.append(("rst_flood", rsts))

    # SYN flood: from the peer's own address (its kernel resets our SYN-ACKs) and from spoofed
    # neighbours that never answer ARP (their half-open connections wait for lwIP's timeout).
    syns = [raw(tcp("S", sport=rnd.randint(20000, 31999))) for _ in range(20 * scale)]
    syns += [raw(eth / IP(src=spoofed[i % len(spoofed)], dst=a.dst_ip) /
                 TCP(sport=rnd.randint(20000, 31999), dport=a.port, flags="S", seq=rnd.getrandbits(32)))
             for i in range(2 * scale)]
    # The land attack: a SYN from our own address and port to themselves.
    syns.append(raw(eth / IP(src=a.dst_ip, dst=a.dst_ip) / TCP(sport=a.port, dport=a.port, flags="S")))
    out.append(("syn_flood", syns))

    # ARP oddities: gratuitous announcements of other addresses, one claiming our own address,
    # wrong hardware / protocol lengths and types, requests for other addresses, unknown opcodes,
    # unsolicited replies.
    arps = []
    bcast = Ether(dst="ff:ff:ff:ff:ff:ff", src=a.src_mac)
    for i in range(scale):
        other = spoofed[i % len(spoofed)]
        arps.append(raw(bcast / ARP(op=1, hwsrc="02:aa:00:00:00:%02x" % (i % 256), psrc=other, pdst=other)))
        arps.append(raw(bcast / ARP(op=2, hwsrc="02:aa:00:00:00:01", psrc=a.dst_ip, pdst=a.dst_ip)))
        arps.append(raw(bcast / ARP(op=1, hwlen=8, psrc=a.src_ip, pdst=a.dst_ip)))
        arps.append(raw(bcast / ARP(op=1, plen=16, psrc=a.src_ip, pdst=a.dst_ip)))
        arps.append(raw(bcast / ARP(op=1, hwtype=6, psrc=a.src_ip, pdst=a.dst_ip)))
        arps.append(raw(bcast / ARP(op=1, ptype=0x86dd, psrc=a.src_ip, pdst=a.dst_ip)))
        arps.append(raw(bcast / ARP(op=1, hwsrc=a.src_mac, psrc=a.src_ip, pdst=other)))
        arps.append(raw(bcast / ARP(op=7, psrc=a.src_ip, pdst=a.dst_ip)))
        arps.append(raw(eth / ARP(op=2, hwsrc="02:aa:00:00:01:%02x" % (i % 256), psrc=other, pdst=a.dst_ip)))
    out.append(("arp", arps))

    # Oversize frames: beyond the 1500-byte MTU (UDP to the echo port, TCP to the listener).
    big = []
    for i in range(scale):
        n = (1600, 2000, 4000, 9000)[i % 4]
        big.append(raw(eth / IP(src=a.src_ip, dst=a.dst_ip) / UDP(dport=a.port) / Raw(b"o" * (n - 42))))
        big.append(raw(tcp("PA", ack=rnd.getrandbits(32)) / Raw(b"o" * (n - 54))))
    out.append(("oversize", [f for f in big if len(f) <= a.max_frame]))

    # Other ethertypes and odd IPv4 headers: IPv6, VLAN, unknown types; version 6 in an IPv4
    # ethertype, TTL 0, broadcast and multicast sources, an unknown protocol.
    misc = []
    for _ in range(scale):
        misc.append(raw(Ether(dst=a.dst_mac, src=a.src_mac, type=0x86dd) / Raw(b"\x60" + b"\x00" * 60)))
        misc.append(raw(Ether(dst=a.dst_mac, src=a.src_mac) / Dot1Q(vlan=5) / IP(src=a.src_ip, dst=a.dst_ip) / ICMP()))
        misc.append(raw(Ether(dst=a.dst_mac, src=a.src_mac, type=0xffff) / Raw(b"\x00" * 50)))
        misc.append(raw(eth / IP(src=a.src_ip, dst=a.dst_ip, version=6) / UDP(dport=a.port)))
        misc.append(raw(eth / IP(src=a.src_ip, dst=a.dst_ip, ttl=0) / ICMP()))
        misc.append(raw(eth / IP(src="255.255.255.255", dst=a.dst_ip) / UDP(dport=a.port)))
        misc.append(raw(eth / IP(src="224.0.0.1", dst=a.dst_ip) / TCP(dport=a.port, flags="S")))
        misc.append(raw(eth / IP(src=a.src_ip, dst=a.dst_ip, proto=253) / Raw(b"x" * 20)))
    out.append(("misc", misc))
    return out


def storm(a):
    all_classes = classes(a)
    print("READY classes=" + ",".join(name for name, _ in all_classes), flush=True)
    sock = conf.L2socket(iface=a.iface) if a.iface else None
    for name, frames in all_classes:
        line = sys.stdin.readline()
        if line.strip() != "run":
            break
        errors = 0
        if sock is not None:
            for f in frames:
                try:
                    sock.send(f)
                except OSError:
                    errors += 1  # counted, not hidden: the test prints it
        else:
            wrpcap(os.path.join(a.pcap_dir, name + ".pcap"), [Raw(f) for f in frames], linktype=1)
        print("SENT class=%s tried=%d send_errors=%d" % (name, len(frames), errors), flush=True)
    if sock is not None:
        sock.close()
    print("DONE", flush=True)


def stop_requested():
    """A line (or the end) on stdin ends the echo client early."""
    readable, _, _ = select.select([sys.stdin], [], [], 0)
    return bool(readable)


def echo(a):
    end = time.monotonic() + a.seconds
    ok = failed = connects_ok = connects_failed = 0
    conn = None
    rounds_on_conn = 0
    while time.monotonic() < end and not stop_requested():
        if conn is None or rounds_on_conn >= a.reconnect_every:
            if conn is not None:
                conn.close()
            try:
                conn = socket.create_connection((a.ip, a.port), timeout=5)
                connects_ok += 1
            except OSError:
                connects_failed += 1
                conn = None
                time.sleep(0.1)
                continue
            rounds_on_conn = 0
        msg = os.urandom(32).hex().encode()
        try:
            conn.sendall(msg)
            back = b""
            while len(back) < len(msg):
                chunk = conn.recv(len(msg) - len(back))
                if not chunk:
                    raise OSError("closed")
                back += chunk
            if back == msg:
                ok += 1
            else:
                failed += 1
        except OSError:
            failed += 1
            conn.close()
            conn = None
        rounds_on_conn += 1
        time.sleep(0.005)
    if conn is not None:
        conn.close()
    print("ECHO rounds_ok=%d rounds_failed=%d connects_ok=%d connects_failed=%d" %
          (ok, failed, connects_ok, connects_failed), flush=True)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("storm")
    s.add_argument("--iface")
    s.add_argument("--pcap-dir")
    s.add_argument("--dst-mac", required=True)
    s.add_argument("--src-mac", required=True)
    s.add_argument("--dst-ip", required=True)
    s.add_argument("--src-ip", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--scale", type=int, default=10)
    s.add_argument("--max-frame", type=int, default=9014)
    e = sub.add_parser("echo")
    e.add_argument("--ip", required=True)
    e.add_argument("--port", type=int, required=True)
    e.add_argument("--seconds", type=float, required=True)
    e.add_argument("--reconnect-every", type=int, default=50)
    a = p.parse_args()
    if a.mode == "storm":
        if not a.iface and not a.pcap_dir:
            p.error("storm needs --iface or --pcap-dir")
        storm(a)
    else:
        echo(a)


if __name__ == "__main__":
    main()
