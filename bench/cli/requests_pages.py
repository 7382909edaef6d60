"""The seeds' get_all_hosts (course notes, "Sayfalama"), without its 0.5 s courtesy sleep,
plus the "export to CSV" step: flatten nested dicts to dotted columns, csv.DictWriter."""
import csv
import sys

import requests


def get_all_hosts(base_url, api_token):
    all_hosts = []
    page = 1
    per_page = 50
    headers = {"Authorization": f"Bearer {api_token}", "Accept": "application/json"}
    while True:
        params = {"page": page, "per_page": per_page, "status": "active"}
        response = requests.get(f"{base_url}/api/v1/hosts", headers=headers, params=params, timeout=30)
        response.raise_for_status()
        data = response.json()
        hosts = data.get("hosts", [])
        if not hosts:
            break
        all_hosts.extend(hosts)
        total_pages = data.get("total_pages", 1)
        if page >= total_pages:
            break
        page += 1
    return all_hosts


def flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


hosts = [flatten(h) for h in get_all_hosts(sys.argv[1], "bench-token")]
with open(sys.argv[2], "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(hosts[0].keys()))
    w.writeheader()
    w.writerows(hosts)
