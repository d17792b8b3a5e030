"""The app that writes while fireshift follows: Google's own Python Firestore client
(google-cloud-firestore, installed by scripts/services), talking to the emulator through
FIRESTORE_EMULATOR_HOST exactly as an app would talk to production.

    writer.py PROJECT churn --groups users,replies --seconds 4 --seed 7 [--new-root NAME]
    writer.py PROJECT orphan PATH          # one document in a subcollection nothing names

`churn` picks existing documents of the given collection groups and, for the given time,
applies a steady mix of what apps do: full sets, merges of a string field, increments,
server timestamps, array unions, clones (creates) and deletes — deletes of documents the
copy has already read included, and writes into existing subcollections (the groups may
be subcollections). `--new-root NAME` also creates a root collection halfway through.
It prints one JSON line with what it did, by kind.
"""
import argparse, json, random, sys, time

from google.cloud import firestore


def existing(db, groups):
    refs = []
    for g in groups:
        for snap in db.collection_group(g).stream():
            refs.append(snap.reference)
    refs.sort(key=lambda r: r.path)
    return refs


def pick_field(data, want):
    keys = sorted(k for k, v in data.items() if want(k, v))
    return keys[0] if keys else None


def is_plain_string(k, v):
    # Reference-like strings (userId, authorId) are left alone: a made-up id would be
    # a dangling reference, which the mappings may refuse.
    return isinstance(v, str) and not k.lower().endswith("id") and not k.startswith("_")


def churn(db, args):
    rng = random.Random(args.seed)
    refs = existing(db, args.groups.split(","))
    if not refs:
        sys.exit("no documents in the groups " + args.groups)
    done = {}
    deleted = set()
    end = time.time() + args.seconds
    halfway = time.time() + args.seconds / 2
    made_root = False
    n = 0
    while time.time() < end:
        n += 1
        if args.new_root and not made_root and time.time() >= halfway:
            db.collection(args.new_root).document("r1").set({"n": 1, "made": "while following"})
            db.collection(args.new_root).document("r2").set({"n": 2})
            made_root = True
            done["new_root"] = 2
            continue
        ref = rng.choice(refs)
        if ref.path in deleted:
            continue
        snap = ref.get()
        if not snap.exists:
            continue
        data = snap.to_dict()
        kind = rng.choice(["set", "merge", "increment", "timestamp", "union", "clone", "delete"])
        if kind == "set":
            data2 = dict(data)
            f = pick_field(data2, is_plain_string)
            if f:
                data2[f] = f"set {n}"
            ref.set(data2)
        elif kind == "merge":
            f = pick_field(data, is_plain_string)
            if not f:
                continue
            ref.set({f: f"merged {n}"}, merge=True)
        elif kind == "increment":
            f = pick_field(data, lambda k, v: isinstance(v, int) and not isinstance(v, bool))
            if not f:
                continue
            ref.update({f: firestore.Increment(1)})
        elif kind == "timestamp":
            f = pick_field(data, lambda k, v: hasattr(v, "timestamp") and hasattr(v, "nanosecond"))
            if not f:
                continue
            ref.update({f: firestore.SERVER_TIMESTAMP})
        elif kind == "union":
            f = pick_field(data, lambda k, v: isinstance(v, list) and all(isinstance(x, str) for x in v) and not k.lower().endswith("ids"))
            if not f:
                continue
            ref.update({f: firestore.ArrayUnion([f"u{n}"])})
        elif kind == "clone":
            # A new document, as an app makes one: its own values for the strings that
            # may identify it (a user's username and email are unique in the mappings).
            new = ref.parent.document(f"{ref.id}-c{n}")
            new.set({k: f"{v} c{n}" if is_plain_string(k, v) else v for k, v in data.items()})
            refs.append(new)
        elif kind == "delete":
            ref.delete()
            deleted.add(ref.path)
        done[kind] = done.get(kind, 0) + 1
        if args.pause:
            time.sleep(args.pause)
    print(json.dumps(done), flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("project")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("churn")
    c.add_argument("--groups", required=True)
    c.add_argument("--seconds", type=float, default=3)
    c.add_argument("--seed", type=int, default=1)
    c.add_argument("--pause", type=float, default=0.0)
    c.add_argument("--new-root")
    o = sub.add_parser("orphan")
    o.add_argument("path")
    args = p.parse_args()
    db = firestore.Client(project=args.project)
    if args.cmd == "churn":
        churn(db, args)
    else:
        db.document(args.path).set({"made": "while following", "n": 1})
        print(json.dumps({"orphan": args.path}))


if __name__ == "__main__":
    main()
