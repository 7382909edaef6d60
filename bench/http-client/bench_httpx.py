"""The httpx.AsyncClient side of bench/http-client.

usage: bench_httpx.py BASE gets N C | pages PER_PAGE
Prints the elapsed seconds.
"""
import asyncio
import sys
import time

import httpx


async def gets(base, n, c):
    limits = httpx.Limits(max_connections=c, max_keepalive_connections=c)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits,
                                 headers={"Accept": "application/json"}) as client:
        sem = asyncio.Semaphore(c)

        async def one(i):
            async with sem:
                r = await client.get(f"/items/{i}")
                r.raise_for_status()
                return r.json()

        results = await asyncio.gather(*(one(i) for i in range(n)))
        assert all("id" in r for r in results)


async def pages(base, per):
    async with httpx.AsyncClient(base_url=base, timeout=30,
                                 headers={"Accept": "application/json"}) as client:
        items, page = [], 1
        while True:
            r = await client.get("/pages", params={"page": page, "per_page": per})
            r.raise_for_status()
            data = r.json().get("data", [])
            if not data:
                break
            items.extend(data)
            if len(data) < per:
                break
            page += 1
        assert len(items) == 5000, len(items)


def main():
    base, job = sys.argv[1], sys.argv[2]
    start = time.perf_counter()
    if job == "gets":
        asyncio.run(gets(base, int(sys.argv[3]), int(sys.argv[4])))
    elif job == "pages":
        asyncio.run(pages(base, int(sys.argv[3])))
    else:
        raise SystemExit(__doc__)
    print(f"{time.perf_counter() - start:.4f}")


if __name__ == "__main__":
    main()
