"""Lateness and missed checks as the target server saw them (bench/monitor part a).

Reads nginx's access log written with `log_format stamp '$msec $uri $status'` and judges each
monitor (one URI per monitor) on its own: its checks should arrive every INTERVAL seconds on a
fixed grid. The grid's phase is unknown from outside (the daemon picks a random first offset), so
each request's lateness is measured against the monitor's least-late request:
    offset_k = t_k - k * INTERVAL,   lateness_k = offset_k - min(offset)
which is a lower bound of the true lateness, and exact when the least-late check started on time.
A gap longer than 1.5 intervals between two requests of one monitor is a missed check.

Usage: python3 lateness.py LOG INTERVAL_S STEADY_FROM_EPOCH STEADY_TO_EPOCH MONITORS
Prints one line of key=value pairs.
"""

import sys
from collections import defaultdict


def quantile(sorted_values, q):
    if not sorted_values:
        return float("nan")
    i = round((len(sorted_values) - 1) * q)
    return sorted_values[min(i, len(sorted_values) - 1)]


def main():
    log, interval, t_from, t_to, monitors = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    times = defaultdict(list)
    non_2xx = 0
    with open(log) as f:
        for line in f:
            parts = line.split()
            if len(parts) != 3 or not parts[1].startswith("/m/"):
                continue
            times[parts[1]].append(float(parts[0]))
            if not parts[2].startswith("2"):
                non_2xx += 1
    lateness = []
    gaps = 0
    per_monitor = []
    for uri, ts in times.items():
        ts.sort()
        t0 = ts[0]
        offsets = [t - round((t - t0) / interval) * interval for t in ts]
        base = min(offsets)
        for t, o in zip(ts, offsets):
            if t_from <= t <= t_to:
                lateness.append(o - base)
        gaps += sum(1 for a, b in zip(ts, ts[1:]) if b - a > 1.5 * interval)
        per_monitor.append(sum(1 for t in ts if t_from <= t <= t_to))
    lateness.sort()
    expected = int((t_to - t_from) // interval)
    short = sum(1 for n in per_monitor if n < expected) + (monitors - len(times))
    print(
        f"requests={sum(len(v) for v in times.values())} monitors_seen={len(times)} non_2xx={non_2xx} "
        f"steady_requests={len(lateness)} p50_ms={quantile(lateness, 0.5) * 1000:.1f} "
        f"p99_ms={quantile(lateness, 0.99) * 1000:.1f} max_ms={(lateness[-1] if lateness else float('nan')) * 1000:.1f} "
        f"gaps_over_1.5_intervals={gaps} monitors_below_{expected}_checks_in_window={short}"
    )


if __name__ == "__main__":
    main()
