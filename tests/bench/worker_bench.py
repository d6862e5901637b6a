#!/usr/bin/env python3
"""Worker benchmark: latency from commit to first upload byte, and 1,000 concurrent jobs.

Run by tests/bench/worker_bench.sh, which starts a throwaway cluster and the local provider.
Prints figures; it asserts nothing, since a benchmark must not fail on a slow machine.
"""
import json
import statistics
import subprocess
import sys
import time
import urllib.request

PSQL, MOCK, POLL_S, N_JOBS, WATCH_S = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])


def sql(query):
    """Run one statement with psql and return its unaligned output."""
    return subprocess.run(PSQL.split() + ["-XAtq", "-c", query], check=True, capture_output=True, text=True).stdout.strip()


def requests():
    """Every request the provider has seen, oldest first."""
    with urllib.request.urlopen(MOCK + "/_mock/requests") as r:
        return json.load(r)["requests"]


def make_avatars(n, prefix):
    """n eligible avatars of 20 examples each (the provider wants 10 in the training split); returns their ids."""
    sql(f"""SELECT count(*) FROM (SELECT ft_create_avatar('{prefix}' || i, provider => 'bench',
              settings => '{{"min_examples": 12, "quality_threshold": 0}}') AS a FROM generate_series(1, {n}) i) x""")
    sql(f"""INSERT INTO ft_examples (avatar_id, messages)
            SELECT a.id, jsonb_build_array(jsonb_build_object('role', 'user', 'content', 'Question ' || i || ' about shoes?'),
                                           jsonb_build_object('role', 'assistant', 'content', 'Answer ' || i || ': yes, we have them in stock. Shall I reserve a pair?'))
              FROM ft_avatars a, generate_series(1, 20) i WHERE a.name LIKE '{prefix}%'""")
    return sql(f"SELECT string_agg(id::text, ' ' ORDER BY name) FROM ft_avatars WHERE name LIKE '{prefix}%'").split()


def worker_proc():
    """(pid, cpu seconds, private memory kB) of this database's worker.

    VmRSS would also count the shared-buffer pages the worker touches as it writes events, which
    grows with the data, not with leaks; RssAnon is the process's own memory.
    """
    pid = int(sql("SELECT pid FROM ft_worker_status"))
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / 100.0
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("RssAnon"))
    return pid, cpu, rss


def latency(samples):
    """Commit of ft_create_job to the first byte of its upload, one job at a time."""
    out = []
    for avatar in make_avatars(samples, "latency"):
        seen = sum(1 for r in requests() if r["path"] == "/v1/files")
        # clock_timestamp() runs just before COMMIT, so the figure slightly overstates the latency
        job, t_commit = sql(f"SELECT j, extract(epoch FROM clock_timestamp()) FROM ft_create_job('{avatar}') j").split("|")
        for _ in range(500):
            uploads = [r for r in requests() if r["path"] == "/v1/files"]
            if len(uploads) > seen:
                out.append((uploads[seen]["ts"] - float(t_commit)) * 1000)
                break
            time.sleep(0.01)
        # both files of this job must be uploaded before the next job's first upload is looked for
        while sql(f"SELECT status IN ('pending', 'preparing', 'uploading') FROM ft_jobs WHERE id = '{job}'") == "t":
            time.sleep(0.01)
    return out


def concurrent(n, watch_s):
    """n jobs at once; samples worker CPU and memory, and the gaps between polls of each job."""
    avatars = make_avatars(n, "load")
    sql("SELECT count(ft_create_job(id)) FROM ft_avatars WHERE name LIKE 'load%'")
    t0 = time.time()
    samples = []
    while time.time() - t0 < watch_s:
        time.sleep(5)
        _, cpu, rss = worker_proc()
        live = int(sql("SELECT count(*) FROM ft_jobs WHERE status NOT IN ('succeeded', 'failed', 'cancelled')"))
        samples.append((time.time() - t0, cpu, rss, live))
    polls = {}
    for r in requests():
        path = r["path"].split("?")[0]
        if r["method"] == "GET" and path.startswith("/v1/fine_tuning/jobs/") and path.count("/") == 4 and r["ts"] >= t0:
            polls.setdefault(path, []).append(r["ts"])
    gaps = [b - a for ts in polls.values() for a, b in zip(ts, ts[1:])]
    return len(avatars), samples, gaps


def main():
    lat = latency(30)
    print(f"commit -> first upload byte, {len(lat)} jobs one at a time: median {statistics.median(lat):.1f} ms, "
          f"p90 {statistics.quantiles(lat, n=10)[-1]:.1f} ms, max {max(lat):.1f} ms (target: median < 100 ms)")
    n, samples, gaps = concurrent(N_JOBS, WATCH_S)
    print(f"\n{n} concurrent jobs, poll interval {POLL_S:.0f} s, watched {WATCH_S} s")
    print("   t(s)  worker CPU(s)  CPU%  private(kB)  live jobs")
    prev = None
    for t, cpu, rss, live in samples:
        pct = "" if prev is None else f"{100 * (cpu - prev[1]) / (t - prev[0]):5.1f}"
        print(f"{t:7.0f} {cpu:14.2f} {pct:>5} {rss:11d} {live:10d}")
        prev = (t, cpu)
    gaps.sort()
    within = sum(1 for g in gaps if g <= POLL_S * 1.5)
    print(f"gaps between polls of one job: {len(gaps)} gaps, median {statistics.median(gaps):.2f} s, "
          f"p99 {gaps[int(len(gaps) * 0.99) - 1]:.2f} s, max {gaps[-1]:.2f} s; "
          f"{100 * within / len(gaps):.1f}% within 1.5x the interval")
    print(f"worker private memory (RssAnon) first/last sample: {samples[0][2]} kB / {samples[-1][2]} kB")
    print("jobs by status:", sql("SELECT string_agg(status || coalesce(' (' || error_code || ')', '') || ': ' || n, ', ') "
                                 "FROM (SELECT status, error_code, count(*) n FROM ft_jobs GROUP BY 1, 2) s"))


main()
