"""Helpers of scripts/bench-follow (read its header first): the writer, the emulator's
own Listen delivery, the MongoDB poller, the follower's RSS, the figures.

    bench_follow.py seed    --project P --collections C1,C2 [--mode M] [--docs K]
    bench_follow.py run     --project P --collection C --rate R --seconds S [--mode M]
                            [--docs K] --mongo-db DB --follower-pid PID [--metrics URL]
                            [--listen group|collection] [--drain-timeout T]
                            [--payload BYTES] --out FILE
    bench_follow.py listen  --project P --collection C [--mode M] [--docs K] [--listen ...]
    bench_follow.py poll    --mongo-db DB --collection C [--mode M] [--docs K]
    bench_follow.py report  [--json FILE] [--meta JSON] RUN.json...
    bench_follow.py count   --mongo-db DB [--collection C]
    bench_follow.py drop    DB...
    bench_follow.py free-port

`run` starts `listen` and `poll` as child processes (no shared interpreter lock: a
listener busy with a full resend must not delay the poller's clock), waits until both
are ready, then makes write k = 1, 2, ... (field n = k) at a steady rate with Google's
client, recording each write's commit time (WriteResult.update_time): in `update` mode
(default) a full set of document k mod K of a ring of K documents that `seed` made; in
`create` mode a create of document C/k (zero-padded). It then tells both children how
many writes there were; each prints, as one JSON line, the local time it first saw
each write's n. Every process runs on this machine: one clock for the emulator, the
follower, MongoDB and these helpers.

Google's client (google-cloud-firestore) talks to the emulator through
FIRESTORE_EMULATOR_HOST; pymongo to MongoDB through MONGODB_URI.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

ID_WIDTH = 9


def doc_id(n):
    return str(n).zfill(ID_WIDTH)


def firestore_client(project):
    from google.cloud import firestore

    return firestore.Client(project=project)


def mongo_db(name):
    import pymongo

    uri = os.environ["MONGODB_URI"]
    return pymongo.MongoClient(uri, serverSelectionTimeoutMS=10000)[name]


def pb_nanos(ts):
    """A DatetimeWithNanoseconds (what the client returns) as ns since the epoch."""
    pb = ts.timestamp_pb()
    return pb.seconds * 1_000_000_000 + pb.nanos


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def read_expect(deadline_box):
    """Blocks on stdin for `expect N T` (N documents, T seconds of drain timeout)."""
    line = sys.stdin.readline()
    if not line:
        return None
    _, n, t = line.split()
    deadline_box.append(time.time() + float(t))
    return int(n)


# --- modes ------------------------------------------------------------------------
#
# Write k (k = 1, 2, ...) sets the field n = k. In `create` mode it creates document
# doc_id(k); in `update` mode it sets document doc_id((k - 1) % K + 1) of a ring of K
# documents made before the copy, so the collection group keeps K documents. The
# listener and the poller key what they see by n.


def target_id(mode, docs, k):
    return doc_id(k) if mode == "create" else doc_id((k - 1) % docs + 1)


def must_see(mode, docs, total):
    """The writes that must become visible: all of them when each has its own document;
    with a ring, the last write of each document (an earlier one may be overwritten
    before anyone reads it)."""
    if mode == "create":
        return set(range(1, total + 1))
    return set(range(max(1, total - docs + 1), total + 1))


# --- seed ---------------------------------------------------------------------------


def cmd_seed(args):
    db = firestore_client(args.project)
    for c in args.collections.split(","):
        # Made before the copy, so the follower listens to the collection from the
        # start (a root collection made later is found by discovery, every 30 s, and
        # read in full once). Document 0 in create mode; the ring in update mode.
        ids = [doc_id(0)] if args.mode == "create" else [doc_id(k) for k in range(1, args.docs + 1)]
        for i in range(0, len(ids), 400):
            batch = db.batch()
            for d in ids[i : i + 400]:
                batch.set(db.collection(c).document(d), {"n": 0, "seed": True, "payload": "x" * args.payload})
            batch.commit()
    emit({"seeded": args.collections.split(","), "docs_each": len(ids)})


# --- the emulator's own Listen delivery -----------------------------------------------


def cmd_listen(args):
    db = firestore_client(args.project)
    if args.listen == "group":
        query = db.collection_group(args.collection)
    else:
        query = db.collection(args.collection)
    seen = {}  # n -> local time first delivered
    snapshots = [0]
    ready = threading.Event()
    lock = threading.Lock()

    def on_snapshot(docs, changes, read_time):
        now = time.time()
        with lock:
            snapshots[0] += 1
            for ch in changes:
                try:
                    n = ch.document.get("n")
                except KeyError:
                    continue
                if isinstance(n, int) and n > 0 and n not in seen:
                    seen[n] = now
        ready.set()

    watch = query.on_snapshot(on_snapshot)
    if not ready.wait(60):
        sys.exit("listen: no first snapshot within 60 s")
    emit({"ready": True})
    box = []
    total = read_expect(box)
    if total is None:
        watch.unsubscribe()
        return
    want = must_see(args.mode, args.docs, total)
    while time.time() < box[0]:
        with lock:
            if want.issubset(seen):
                break
        time.sleep(0.05)
    watch.unsubscribe()
    with lock:
        emit({"seen": {str(n): t for n, t in seen.items() if n <= total}, "snapshots": snapshots[0]})


# --- MongoDB: first visible -----------------------------------------------------------


def cmd_poll(args):
    coll = mongo_db(args.mongo_db)[args.collection]
    seen = {}  # n -> [local time first seen, _fs_updated]
    ids = set()
    polls = 0
    lowest = 1  # create mode: the smallest document number not seen yet
    expect = []  # [total] once known
    box = []

    def reader():
        total = read_expect(box)
        expect.append(total if total is not None else -1)

    threading.Thread(target=reader, daemon=True).start()
    coll.find_one({"_id": doc_id(0)})  # connect before saying ready
    emit({"ready": True})
    interval = args.interval_ms / 1000.0
    want = None
    while True:
        t0 = time.time()
        if args.mode == "create":
            # From the lowest missing id: a document that lands after a later one is
            # still found, and what is already seen is mostly not read again.
            query = {"_id": {"$gte": doc_id(lowest)}}
        else:
            query = {"_id": {"$gte": doc_id(1), "$lte": doc_id(args.docs)}}
        for d in coll.find(query, {"n": 1, "_fs_updated": 1}):
            n = d.get("n")
            if isinstance(n, int) and n > 0 and n not in seen:
                seen[n] = [time.time(), d.get("_fs_updated")]
                ids.add(d["_id"])
        polls += 1
        if args.mode == "create":
            while doc_id(lowest) in ids:
                lowest += 1
        if expect:
            if expect[0] < 0 or time.time() >= box[0]:
                break
            if want is None:
                want = must_see(args.mode, args.docs, expect[0])
            if want.issubset(seen):
                break
        left = interval - (time.time() - t0)
        if left > 0:
            time.sleep(left)
    total = max(expect[0], 0)
    emit({"seen": {str(n): v for n, v in seen.items() if n <= total}, "polls": polls})


# --- the run ----------------------------------------------------------------------------


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def metrics(url):
    """fireshift's Prometheus text as {name{labels}: value}; {} without a URL."""
    if not url:
        return {}
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
    except OSError as e:
        print(f"bench_follow: metrics not read from {url}: {e}", file=sys.stderr)
        return {}
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        k, _, v = line.rpartition(" ")
        try:
            out[k] = float(v)
        except ValueError:
            pass
    return out


def child(kind, extra):
    cmd = [sys.executable, os.path.abspath(__file__), kind] + extra
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if not line or not json.loads(line).get("ready"):
        p.kill()
        sys.exit(f"bench_follow: the {kind} helper did not start")
    return p


def finish_child(p, total, timeout, kind):
    """Tells a helper how many writes there were; returns what it saw."""
    try:
        p.stdin.write(f"expect {total} {timeout}\n")
        p.stdin.flush()
    except BrokenPipeError:
        pass
    line = p.stdout.readline()
    p.wait(timeout=30)
    if not line:
        sys.exit(f"bench_follow: the {kind} helper ended without its figures (status {p.returncode})")
    return json.loads(line)


def cmd_run(args):
    db = firestore_client(args.project)
    coll = db.collection(args.collection)
    mode = ["--mode", args.mode, "--docs", str(args.docs), "--collection", args.collection]
    listener = child("listen", ["--project", args.project, "--listen", args.listen] + mode)
    poller = child("poll", ["--mongo-db", args.mongo_db] + mode)
    helpers = [listener, poller]

    rss = []  # [local time, KiB]
    stop_rss = threading.Event()

    def sample_rss():
        while True:
            k = rss_kib(args.follower_pid)
            if k is not None:
                rss.append([time.time(), k])
            if stop_rss.wait(1.0):
                return

    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    m0 = metrics(args.metrics)

    payload = "x" * args.payload
    total = int(round(args.rate * args.seconds))
    writes = []  # [n, local send time, commit ns, local time acknowledged]
    start = time.time()
    t_perf = time.perf_counter()
    late = 0
    try:
        for k in range(1, total + 1):
            due = t_perf + (k - 1) / args.rate
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            elif wait < -0.5 / args.rate:
                late += 1
            ref = coll.document(target_id(args.mode, args.docs, k))
            data = {"n": k, "rate": args.rate, "payload": payload}
            sent = time.time()
            res = ref.create(data) if args.mode == "create" else ref.set(data)
            writes.append([k, sent, pb_nanos(res.update_time), time.time()])
    except BaseException:
        for p in helpers:
            p.kill()
        raise
    write_end = time.time()

    seen_listen = finish_child(listener, total, args.drain_timeout, "listen")
    seen_mongo = finish_child(poller, total, args.drain_timeout, "poll")
    time.sleep(1.5)  # the follower saves its record (and metrics) every second
    m1 = metrics(args.metrics)
    stop_rss.set()
    sampler.join()

    result = {
        "collection": args.collection,
        "mode": args.mode,
        "docs": args.docs,
        "listen_target": args.listen,
        "rate": args.rate,
        "seconds": args.seconds,
        "payload": args.payload,
        "write_start": start,
        "write_end": write_end,
        "late_writes": late,
        "writes": writes,
        "listen": seen_listen,
        "mongo": seen_mongo,
        "rss": rss,
        "metrics_before": m0,
        "metrics_after": m1,
    }
    with open(args.out, "w") as f:
        json.dump(result, f)
    want = must_see(args.mode, args.docs, total)
    missing = [n for n in want if str(n) not in seen_mongo["seen"]]
    print(
        f"bench_follow: {args.collection}: {total} writes, {len(seen_listen['seen'])} delivered by Listen, "
        f"{len(seen_mongo['seen'])} seen in MongoDB",
        file=sys.stderr,
    )
    if missing:
        # A step failed: the follower did not land every write within the timeout.
        sys.exit(
            f"bench_follow: {len(missing)} of the {len(want)} final writes not visible in MongoDB "
            f"{args.drain_timeout:g} s after the writer ended"
        )


# --- figures -----------------------------------------------------------------------------


def pct(xs, p):
    """Nearest-rank percentile of a non-empty list."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def dist(xs):
    if not xs:
        return None
    return {"n": len(xs), "p50": pct(xs, 50), "p99": pct(xs, 99), "max": max(xs), "mean": statistics.fmean(xs)}


def metric_delta(before, after, key):
    if key not in after:
        return None
    return after[key] - before.get(key, 0.0)


def figures(r):
    writes = r["writes"]
    commit = {str(n): c / 1e9 for n, _, c, _ in writes}
    order = [str(n) for n, _, _, _ in writes]
    mongo = r["mongo"]["seen"]
    listen = r["listen"]["seen"]
    lag = [mongo[i][0] - commit[i] for i in order if i in mongo]
    lis = [listen[i] - commit[i] for i in order if i in listen]
    # Same write, both seen: how much later MongoDB had it than Listen delivered it.
    behind = [mongo[i][0] - listen[i] for i in order if i in mongo and i in listen]
    fs_exact = sum(1 for n, _, c, _ in writes if str(n) in mongo and mongo[str(n)][1] == c)
    # The emulator's clock against ours: the commit time falls between send and ack.
    skew = [c / 1e9 - s for _, s, c, _ in writes]
    ack = [a - s for _, s, _, a in writes]
    first_commit = min(commit.values()) if commit else None
    last_visible = max((v[0] for v in mongo.values()), default=None)
    elapsed_write = r["write_end"] - r["write_start"]
    thirds = []
    if lag:
        k = max(1, len(lag) // 3)
        thirds = [pct(lag[:k], 50), pct(lag[k : len(lag) - k] or lag, 50), pct(lag[len(lag) - k :], 50)]
    rss = [k for _, k in r["rss"]]
    before, after = r["metrics_before"], r["metrics_after"]
    kinds = {}
    for kind in ("upsert", "unchanged", "delete"):
        d = metric_delta(before, after, f'fireshift_follow_changes_total{{kind="{kind}"}}')
        if d is not None:
            kinds[kind] = d
    return {
        "collection": r["collection"],
        "mode": r["mode"],
        "group_docs": r["docs"] if r["mode"] == "update" else None,
        "listen_target": r["listen_target"],
        "rate_asked": r["rate"],
        "seconds": r["seconds"],
        "writes": len(writes),
        "late_writes": r["late_writes"],
        "writes_per_sec": len(writes) / elapsed_write if elapsed_write > 0 else None,
        "write_ack_ms": dist([a * 1000 for a in ack]),
        "commit_minus_send_ms": dist([x * 1000 for x in skew]),
        "visible_in_mongo": len(mongo),
        "delivered_by_listen": len(listen),
        "applied_per_sec": (len(mongo) / (last_visible - first_commit))
        if last_visible and first_commit and last_visible > first_commit
        else None,
        "last_visible_after_first_commit_s": (last_visible - first_commit)
        if last_visible and first_commit
        else None,
        "lag_ms": dist([x * 1000 for x in lag]),
        "lag_p50_first_third_ms": thirds[0] * 1000 if thirds else None,
        "lag_p50_middle_third_ms": thirds[1] * 1000 if thirds else None,
        "lag_p50_last_third_ms": thirds[2] * 1000 if thirds else None,
        "listen_ms": dist([x * 1000 for x in lis]),
        "mongo_after_listen_ms": dist([x * 1000 for x in behind]),
        "fs_updated_equals_commit": fs_exact,
        "listen_snapshots": r["listen"].get("snapshots"),
        "mongo_polls": r["mongo"].get("polls"),
        "rss_mib_start": rss[0] / 1024 if rss else None,
        "rss_mib_end": rss[-1] / 1024 if rss else None,
        "rss_mib_peak": max(rss) / 1024 if rss else None,
        "follower_changes": kinds,
        "follower_resets": metric_delta(before, after, "fireshift_follow_resets_total"),
        "follower_resyncs": metric_delta(before, after, "fireshift_follow_resyncs_total"),
        "follower_restarts": metric_delta(before, after, "fireshift_follow_stream_restarts_total"),
    }


def fmt(v, spec=".1f", none="-"):
    return none if v is None else format(v, spec)


ROW = "  %6s %8s %9s  %7s %7s %7s  %7s %7s %7s  %6s  %18s  %6s %6s %6s"


def cmd_report(args):
    meta = json.loads(args.meta) if args.meta else {}
    runs = []
    for path in args.runs:
        with open(path) as f:
            runs.append(figures(json.load(f)))
    p = print
    p()
    first = runs[0] if runs else {}
    if first.get("mode") == "update":
        what = (f"updates (full sets) of a ring of {first['group_docs']} documents per rate: "
                f"the collection group keeps its size (steady state)")
    else:
        what = "creates of new documents: the collection group grows with every write"
    p(f"fireshift bench-follow: migrate --follow after copying {meta.get('docs_copied', '?')} "
      f"documents (the demo data of {meta.get('users', '?')} users and the bench collections); "
      f"each rate writes its own root collection")
    p(f"  writes: {what}; reference: Google's client, on_snapshot on a "
      f"{first.get('listen_target', '?')} query")
    p()
    p(ROW % ("rate", "writes", "applied", "lag", "", "", "Listen", "", "", "lag /", "lag p50 ms by", "RSS", "", ""))
    p(ROW % ("/s", "/s", "/s", "p50 ms", "p99", "max", "p50 ms", "p99", "max", "Listen", "third of the run", "start", "end", "peak"))
    for f in runs:
        lag, lis = f["lag_ms"] or {}, f["listen_ms"] or {}
        ratio = (lag["p50"] / lis["p50"]) if lag and lis and lis["p50"] > 0 else None
        p(ROW % (
            fmt(f["rate_asked"], "g"), fmt(f["writes_per_sec"]), fmt(f["applied_per_sec"]),
            fmt(lag.get("p50"), ".0f"), fmt(lag.get("p99"), ".0f"), fmt(lag.get("max"), ".0f"),
            fmt(lis.get("p50"), ".0f"), fmt(lis.get("p99"), ".0f"), fmt(lis.get("max"), ".0f"),
            fmt(ratio, ".1f") + ("x" if ratio is not None else ""),
            " / ".join(fmt(f[k], ".0f") for k in ("lag_p50_first_third_ms", "lag_p50_middle_third_ms", "lag_p50_last_third_ms")),
            fmt(f["rss_mib_start"]), fmt(f["rss_mib_end"]), fmt(f["rss_mib_peak"])))
    p()
    p("  lag = first seen in MongoDB (polled every 10 ms) - commit time (WriteResult.update_time);")
    p("  Listen = delivered to the on_snapshot listener - commit time; applied/s = writes seen in")
    p("  MongoDB / (last seen - first commit); lag p50 by third: over the first, middle and last")
    p("  third of the writes (growth = falling behind the rate); RSS of the follower in MiB.")
    for f in runs:
        ch = f["follower_changes"]
        p()
        p(f"  {f['collection']} at {fmt(f['rate_asked'], 'g')}/s: {f['writes']} writes ({f['late_writes']} started late), "
          f"{f['visible_in_mongo']} seen in MongoDB, {f['delivered_by_listen']} delivered by Listen "
          f"in {f['listen_snapshots']} snapshots")
        p(f"    write acknowledged p50 {fmt((f['write_ack_ms'] or {}).get('p50'))} ms; "
          f"commit - send p50 {fmt((f['commit_minus_send_ms'] or {}).get('p50'))} ms (one clock: >= 0); "
          f"_fs_updated == commit time for {f['fs_updated_equals_commit']} of {f['visible_in_mongo']}")
        if f["mongo_after_listen_ms"]:
            d = f["mongo_after_listen_ms"]
            p(f"    MongoDB after Listen, same write: p50 {fmt(d['p50'], '.0f')} ms, p99 {fmt(d['p99'], '.0f')} ms")
        if ch or f["follower_resets"] is not None:
            p(f"    follower (metrics): {int(ch.get('upsert', 0))} upserts, {int(ch.get('unchanged', 0))} unchanged "
              f"(resent as held), {int(ch.get('delete', 0))} deletes; {fmt(f['follower_resets'], '.0f')} resets, "
              f"{fmt(f['follower_resyncs'], '.0f')} resyncs, {fmt(f['follower_restarts'], '.0f')} stream restarts")
            if ch and f["writes"]:
                handled = ch.get("upsert", 0) + ch.get("unchanged", 0)
                per = handled / f["writes"]
                span = f["last_visible_after_first_commit_s"]
                rate = f", {handled / span:.0f} per second" if span else ""
                p(f"    documents handled: {per:.1f} per write{rate}")
    p()
    p("  The emulator answers every change to a Listen target with a RESET and a resend of the")
    p("  whole result set (production sends the change alone): the follower and the reference")
    p("  listener both handle the group's size in documents per write. The Listen figures include")
    p("  Google's client's own work (a snapshot of the whole group per write, in Python).")
    if meta:
        groups = meta.get("group_docs") or {}
        if groups:
            p("  documents per bench collection group at the end (MongoDB): "
              + ", ".join(f"{k} {v}" for k, v in groups.items()))
        p(f"  follower RSS: {fmt(meta.get('rss_mib_copy_done'))} MiB once the copy was done, "
          f"{fmt(meta.get('rss_mib_end'))} MiB at the end")
        p(f"  one machine: the emulator, MongoDB, the follower and these helpers share "
          f"{os.cpu_count()} cores; load average after the runs: {meta.get('load', '?')}")
    p()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "runs": runs}, f, indent=1)


# --- odds and ends ------------------------------------------------------------------------


def cmd_count(args):
    db = mongo_db(args.mongo_db)
    if args.collection:
        print(db[args.collection].count_documents({}))
    else:
        # Every data collection (fireshift's own start with an underscore).
        print(sum(db[c].count_documents({}) for c in db.list_collection_names() if not c.startswith("_")))


def cmd_drop(args):
    import pymongo

    client = pymongo.MongoClient(os.environ["MONGODB_URI"], serverSelectionTimeoutMS=10000)
    have = set(client.list_database_names())
    for name in args.databases:
        if name in have:
            client.drop_database(name)
            print(f"bench_follow: dropped MongoDB database {name}", file=sys.stderr)


def cmd_free_port(_args):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("seed")
    s.add_argument("--project", required=True)
    s.add_argument("--collections", required=True)
    s.add_argument("--mode", choices=["create", "update"], default="update")
    s.add_argument("--docs", type=int, default=50)
    s.add_argument("--payload", type=int, default=200)
    r = sub.add_parser("run")
    r.add_argument("--project", required=True)
    r.add_argument("--collection", required=True)
    r.add_argument("--mode", choices=["create", "update"], default="update")
    r.add_argument("--docs", type=int, default=50)
    r.add_argument("--rate", type=float, required=True)
    r.add_argument("--seconds", type=float, required=True)
    r.add_argument("--mongo-db", required=True)
    r.add_argument("--follower-pid", type=int, required=True)
    r.add_argument("--metrics", default="")
    r.add_argument("--listen", choices=["group", "collection"], default="group")
    r.add_argument("--drain-timeout", type=float, default=120)
    r.add_argument("--payload", type=int, default=200)
    r.add_argument("--out", required=True)
    li = sub.add_parser("listen")
    li.add_argument("--project", required=True)
    li.add_argument("--collection", required=True)
    li.add_argument("--mode", choices=["create", "update"], default="update")
    li.add_argument("--docs", type=int, default=50)
    li.add_argument("--listen", choices=["group", "collection"], default="group")
    po = sub.add_parser("poll")
    po.add_argument("--mongo-db", required=True)
    po.add_argument("--collection", required=True)
    po.add_argument("--mode", choices=["create", "update"], default="update")
    po.add_argument("--docs", type=int, default=50)
    po.add_argument("--interval-ms", type=float, default=10)
    rep = sub.add_parser("report")
    rep.add_argument("--json")
    rep.add_argument("--meta", help="JSON object: facts of the whole run")
    rep.add_argument("runs", nargs="+")
    c = sub.add_parser("count")
    c.add_argument("--mongo-db", required=True)
    c.add_argument("--collection", help="default: every data collection")
    d = sub.add_parser("drop")
    d.add_argument("databases", nargs="+")
    sub.add_parser("free-port")
    args = p.parse_args()
    {
        "seed": cmd_seed,
        "run": cmd_run,
        "listen": cmd_listen,
        "poll": cmd_poll,
        "report": cmd_report,
        "count": cmd_count,
        "drop": cmd_drop,
        "free-port": cmd_free_port,
    }[args.cmd](args)


if __name__ == "__main__":
    main()
