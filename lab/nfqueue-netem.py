#!/usr/bin/env python3
"""
netem in user space, for kernels built without sch_netem (this project's machines: `tc qdisc add
... netem` answers "Specified qdisc kind is unknown"). Packets that an iptables rule sends to an
NFQUEUE are held here and accepted after a fixed delay, or dropped with a given probability
(seeded, so a run can be repeated). Standard library only: nfnetlink_queue spoken over a raw
netlink socket.

    python3 lab/nfqueue-netem.py --queue 7 --delay-ms 50 --loss 0.02 --seed 1
    iptables -A OUTPUT -o lo -p udp -j NFQUEUE --queue-num 7 --queue-bypass

It prints one JSON line {"ready": true} once the queue is bound; on SIGTERM, SIGINT or the end of
stdin it accepts everything it still holds and prints {"packets", "dropped", "delayed"}. Remove
the iptables rule before stopping it (with --queue-bypass, packets pass untouched while no
program holds the queue). Needs root (CAP_NET_ADMIN) in the network namespace.
"""
import argparse
import heapq
import json
import os
import random
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN = 1, 2, 3
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
NF_DROP, NF_ACCEPT = 0, 1


def attr(kind: int, payload: bytes) -> bytes:
    header = struct.pack('=HH', 4 + len(payload), kind)
    return header + payload + b'\0' * (-len(payload) % 4)


class Queue:
    def __init__(self, number: int):
        self.number = number
        self.seq = 0
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((0, 0))

    def send(self, msg_type: int, body: bytes, flags: int = NLM_F_REQUEST) -> None:
        self.seq += 1
        nfgen = struct.pack('=BBH', socket.AF_UNSPEC, 0, socket.htons(self.number))
        payload = nfgen + body
        header = struct.pack('=IHHII', 16 + len(payload), (NFNL_SUBSYS_QUEUE << 8) | msg_type, flags, self.seq, 0)
        self.sock.send(header + payload)

    def configure(self, body: bytes) -> None:
        self.send(NFQNL_MSG_CONFIG, body, NLM_F_REQUEST | NLM_F_ACK)
        for msg_type, payload in self.messages(self.sock.recv(65536)):
            if msg_type == NLMSG_ERROR:
                (error,) = struct.unpack_from('=i', payload)
                if error != 0:
                    raise OSError(-error, f'nfqueue config: {os.strerror(-error)}')

    def bind(self) -> None:
        self.configure(attr(NFQA_CFG_CMD, struct.pack('=BBH', NFQNL_CFG_CMD_BIND, 0, 0)))
        self.configure(attr(NFQA_CFG_PARAMS, struct.pack('>IB', 0xFFFF, NFQNL_COPY_META)) + attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack('>I', 16384)))

    def verdict(self, packet_id: int, verdict: int) -> None:
        self.send(NFQNL_MSG_VERDICT, attr(NFQA_VERDICT_HDR, struct.pack('>II', verdict, packet_id)))

    @staticmethod
    def messages(data: bytes):
        offset = 0
        while offset + 16 <= len(data):
            length, msg_type = struct.unpack_from('=IH', data, offset)
            if length < 16:
                break
            yield msg_type & 0xFF if msg_type >> 8 == NFNL_SUBSYS_QUEUE else msg_type, data[offset + 16:offset + length]
            offset += (length + 3) & ~3

    @staticmethod
    def packet_id(payload: bytes):
        offset = 4  # after nfgenmsg
        while offset + 4 <= len(payload):
            length, kind = struct.unpack_from('=HH', payload, offset)
            if length < 4:
                return None
            if kind & 0x7FFF == NFQA_PACKET_HDR:
                return struct.unpack_from('>I', payload, offset + 4)[0]
            offset += (length + 3) & ~3
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--queue', type=int, default=7)
    parser.add_argument('--delay-ms', type=float, default=50)
    parser.add_argument('--loss', type=float, default=0.0, help='probability of dropping a packet')
    parser.add_argument('--seed', type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    queue = Queue(args.queue)
    queue.bind()
    held: list = []  # (due time, arrival order, packet id)
    stats = {'packets': 0, 'dropped': 0, 'delayed': 0}
    stopping = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.append(True))
    print(json.dumps({'ready': True}), flush=True)
    order = 0
    while not stopping:
        timeout = max(0.0, held[0][0] - time.monotonic()) if held else 0.5
        try:
            readable, _, _ = select.select([queue.sock, sys.stdin], [], [], timeout)
        except InterruptedError:
            continue
        if sys.stdin in readable and not sys.stdin.buffer.read1(4096):
            break  # whoever started us is gone
        if queue.sock in readable:
            try:
                data = queue.sock.recv(1 << 20)
            except OSError:
                data = b''  # ENOBUFS: the kernel dropped queued packets; keep serving
            for msg_type, payload in Queue.messages(data):
                if msg_type != NFQNL_MSG_PACKET:
                    continue
                packet_id = Queue.packet_id(payload)
                if packet_id is None:
                    continue
                stats['packets'] += 1
                if rng.random() < args.loss:
                    stats['dropped'] += 1
                    queue.verdict(packet_id, NF_DROP)
                else:
                    order += 1
                    heapq.heappush(held, (time.monotonic() + args.delay_ms / 1000, order, packet_id))
        now = time.monotonic()
        while held and held[0][0] <= now:
            queue.verdict(heapq.heappop(held)[2], NF_ACCEPT)
            stats['delayed'] += 1
    while held:
        queue.verdict(heapq.heappop(held)[2], NF_ACCEPT)
    print(json.dumps(stats), flush=True)


if __name__ == '__main__':
    main()
