#!/usr/bin/env python3
"""The seeds' raw-socket file receiver: accept one connection, read the text header, then
recv(BUFFER_SIZE) in a loop into the file; plus SHA-256 verification (skipped when the sender
sends `-` as the digest) and an OK/ERR reply.

usage: python_recv.py PORT_FILE DIR [BUFFER_SIZE]  (binds 127.0.0.1:0, writes the port to PORT_FILE)
"""
import hashlib
import os
import socket
import sys

SEPARATOR = "<SEPARATOR>"


def main():
    port_file, out_dir = sys.argv[1], sys.argv[2]
    buffer_size = int(sys.argv[3]) if len(sys.argv) > 3 else 4096
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(5)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(s.getsockname()[1]))
    os.rename(port_file + ".tmp", port_file)
    client, _ = s.accept()
    # Read the header line (the seeds read one recv and split; we read up to the newline).
    head = b""
    while not head.endswith(b"\n"):
        c = client.recv(1)
        if not c:
            sys.exit("connection closed in the header")
        head += c
    filename, filesize, digest = head.decode().strip().split(SEPARATOR)
    filename = os.path.basename(filename)
    filesize = int(filesize)
    sha = hashlib.sha256()
    received = 0
    with open(os.path.join(out_dir, filename), "wb") as f:
        while received < filesize:
            bytes_read = client.recv(buffer_size)
            if not bytes_read:
                break
            f.write(bytes_read)
            if digest != "-":
                sha.update(bytes_read)
            received += len(bytes_read)
    ok = received == filesize and (digest == "-" or sha.hexdigest() == digest)
    client.sendall(b"OK\n" if ok else b"ERR\n")
    client.close()
    s.close()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
