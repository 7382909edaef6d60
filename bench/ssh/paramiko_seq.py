"""`uptime` on every target, one after another, the way the seeds write it (their reusable
SSHClient class) -- except that the host key is pre-trusted from a known_hosts file
(RejectPolicy) instead of AutoAddPolicy."""

import sys
from typing import Tuple

import paramiko


class SSHClient:
    def __init__(self, hostname, username, key_file, port, known_hosts):
        self.hostname = hostname
        self.username = username
        self.key_file = key_file
        self.port = port
        self.known_hosts = known_hosts
        self.client = None

    def connect(self):
        self.client = paramiko.SSHClient()
        self.client.load_host_keys(self.known_hosts)
        self.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        self.client.connect(hostname=self.hostname, username=self.username,
                            port=self.port, key_filename=self.key_file)

    def run(self, command: str, timeout: int = 30) -> Tuple[str, str, int]:
        stdin, stdout, stderr = self.client.exec_command(command, timeout=timeout)
        exit_code = stdout.channel.recv_exit_status()
        return stdout.read().decode().strip(), stderr.read().decode().strip(), exit_code

    def close(self):
        if self.client:
            self.client.close()

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc):
        self.close()


def main():
    user, key, known_hosts = sys.argv[1:4]
    ports = [int(p) for p in sys.argv[4:]]
    failures = 0
    for port in ports:
        with SSHClient("127.0.0.1", user, key, port, known_hosts) as ssh:
            out, err, code = ssh.run("uptime")
            failures += code != 0
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
