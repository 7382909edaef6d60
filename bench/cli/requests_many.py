"""The seeds' health check of several APIs: one requests.Session (connections reused, as the
seeds recommend), one GET per URL in turn with a timeout, the response time measured, one JSON
line per URL."""
import json
import sys
import time

import requests


def check(session, url, timeout=10):
    start = time.time()
    try:
        response = session.get(url, timeout=timeout)
        return {
            "url": url,
            "status": response.status_code,
            "latency_ms": round((time.time() - start) * 1000, 3),
            "size": len(response.content),
            "error": None,
        }
    except requests.exceptions.RequestException as e:
        return {"url": url, "status": None, "latency_ms": None, "size": None, "error": str(e)}


with requests.Session() as session:
    with open(sys.argv[1]) as f:
        for line in f:
            url = line.strip()
            if not url or url.startswith("#"):
                continue
            print(json.dumps(check(session, url)), flush=True)
