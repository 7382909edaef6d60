"""The requests side of bench/http-client, written the way the seeds write it:
one requests.Session with default headers, timeout=30, raise_for_status(), .json().

usage: bench_requests.py BASE gets N            (sequential, as in the seeds)
       bench_requests.py BASE gets-threads N C  (a ThreadPoolExecutor of C threads, for reference)
       bench_requests.py BASE pages PER_PAGE    (the seeds' paginate() generator)
Prints the elapsed seconds.
"""
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from requests.adapters import HTTPAdapter


class APIClient:
    def __init__(self, base_url, pool=10):
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.session.headers.update({"Accept": "application/json"})
        adapter = HTTPAdapter(pool_connections=pool, pool_maxsize=pool)
        self.session.mount("http://", adapter)

    def get(self, endpoint, params=None):
        url = f"{self.base_url}/{endpoint.lstrip('/')}"
        response = self.session.get(url, params=params, timeout=30)
        response.raise_for_status()
        return response.json()


def paginate(client, endpoint, params=None, page_key="page", limit_key="per_page", limit=100):
    params = params or {}
    params[limit_key] = limit
    page = 1
    while True:
        params[page_key] = page
        response = client.get(endpoint, params=params)
        items = response.get("data", [])
        if not items:
            break
        yield from items
        if len(items) < limit:
            break
        page += 1


def main():
    base, job = sys.argv[1], sys.argv[2]
    start = time.perf_counter()
    if job == "gets":
        n = int(sys.argv[3])
        client = APIClient(base)
        ok = sum(1 for i in range(n) if "id" in client.get(f"/items/{i}"))
        assert ok == n, ok
    elif job == "gets-threads":
        n, c = int(sys.argv[3]), int(sys.argv[4])
        client = APIClient(base, pool=c)
        with ThreadPoolExecutor(max_workers=c) as pool:
            ok = sum(1 for r in pool.map(lambda i: client.get(f"/items/{i}"), range(n)) if "id" in r)
        assert ok == n, ok
    elif job == "pages":
        per = int(sys.argv[3])
        client = APIClient(base)
        items = list(paginate(client, "/pages", limit=per))
        assert len(items) == 5000, len(items)
    else:
        raise SystemExit(__doc__)
    print(f"{time.perf_counter() - start:.4f}")


if __name__ == "__main__":
    main()
