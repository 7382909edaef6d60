"""The seeds' health-check loop, as the seeds write it, adapted only to read its URLs from a file.

The seeds poll a service with `requests.get(url, timeout=5)` and call it up when the status is 200
(`wait_for_service` in the French Python notes), one URL after another, timing each call; this is
that loop over a list. Prints how many were up and exits 1 when any was down.

Usage: python3 seeds_loop.py URLS_FILE
"""

import sys
import time

import requests


def check(url):
    start = time.time()
    try:
        response = requests.get(url, timeout=5)
        elapsed_ms = (time.time() - start) * 1000
        return response.status_code == 200, elapsed_ms
    except requests.exceptions.RequestException as e:
        print(f"[ERROR] {url}: {e}", file=sys.stderr)
        return False, None


def main():
    with open(sys.argv[1]) as f:
        urls = [line.strip() for line in f if line.strip()]
    results = {url: check(url) for url in urls}
    down = [u for u, (ok, _) in results.items() if not ok]
    print(f"{len(urls) - len(down)} up, {len(down)} down")
    return 1 if down else 0


if __name__ == "__main__":
    sys.exit(main())
