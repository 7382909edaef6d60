#!/usr/bin/env python3
"""The seeds' raw-socket file sender (thepythoncode.com style: a text header, then sendall of
fixed-size reads), plus a SHA-256 in the header so the receiver can verify, as opskit does.

usage: python_send.py FILE HOST PORT [BUFFER_SIZE] [nohash]   (default 4096, as in the seeds;
`nohash` sends no checksum, exactly like the seeds)
"""
import hashlib
import os
import socket
import sys

SEPARATOR = "<SEPARATOR>"


def main():
    path, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    buffer_size = int(sys.argv[4]) if len(sys.argv) > 4 else 4096
    nohash = len(sys.argv) > 5 and sys.argv[5] == "nohash"
    filesize = os.path.getsize(path)
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        if nohash:
            f.seek(0, 2)
        while True:
            block = f.read(1 << 20)
            if not block:
                break
            sha.update(block)
    s = socket.socket()
    s.connect((host, port))
    digest = "-" if nohash else sha.hexdigest()
    header = f"{os.path.basename(path)}{SEPARATOR}{filesize}{SEPARATOR}{digest}\n"
    s.sendall(header.encode())
    with open(path, "rb") as f:
        while True:
            bytes_read = f.read(buffer_size)
            if not bytes_read:
                break
            s.sendall(bytes_read)
    s.shutdown(socket.SHUT_WR)
    reply = s.recv(1024).decode()
    s.close()
    if reply.strip() != "OK":
        sys.exit(f"receiver said: {reply!r}")


if __name__ == "__main__":
    main()
