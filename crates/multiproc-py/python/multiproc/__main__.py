"""The ``multiproc`` command (installed by pip; also ``python -m multiproc``):

- ``multiproc ls [--json] [--kind K]``: the named objects multiproc created
  (shared-memory segments, FIFOs, message queues, System V objects, socket
  files), their owner and whether it is alive;
- ``multiproc clean [--all] [--dry-run] [--kind K]``: remove those whose
  owner is dead (``--all``: every one);
- ``multiproc bench [...]``: ``python -m multiproc.bench``;
- ``multiproc worker --redis URL --queue NAME [--processes N]``: a pool of
  local worker processes serving the tasks that ``multiproc.redis.Pool``
  (or ``multiproc.Pool.redis``) submits to the Redis queue ``NAME``, from
  any machine; the authkey comes from ``--authkey-file`` or the
  ``MULTIPROC_REDIS_AUTHKEY`` environment variable and must be the
  submitters'.

The listing and the removal are the Rust CLI's own (``multiproc ls`` and
``multiproc clean`` of ``cargo run -p multiproc-cli``), through the native
module.
"""

import argparse
import json
import os
import signal
import sys

from ._multiproc import named_objects_list, remove_named_object

KINDS = "shm, fifo, posix-mq, sysv-msg, sysv-sem, sysv-shm, socket"


def _ls(args):
    objs = named_objects_list(args.kind)
    if args.json:
        print(json.dumps({"objects": objs}))
        return 0
    print(f"{'kind':<9} {'name':<40} {'size':>12} {'owner':>10} {'alive':>8}")
    for o in objs:
        size = "-" if o["size"] is None else str(o["size"])
        owner = "?" if o["owner_pid"] == 0 else str(o["owner_pid"])
        alive = "invalid" if not o["valid"] else ("yes" if o["owner_alive"] else "no")
        print(f"{o['kind']:<9} {o['name']:<40} {size:>12} {owner:>10} {alive:>8}")
    if not objs:
        print("(no named multiproc objects)")
    return 0


def _clean(args):
    removed = 0
    failed = False
    for o in named_objects_list(args.kind):
        if o["owner_alive"] and not args.all:
            continue
        if args.dry_run:
            print(f"would remove {o['kind']} {o['name']} (owner {o['owner_pid']} dead)")
            continue
        try:
            if remove_named_object(o["kind"], o["name"]):
                print(f"removed {o['name']} (owner {o['owner_pid']} dead)")
                removed += 1
        except OSError as e:
            print(f"could not remove {o['kind']} {o['name']}: {e}", file=sys.stderr)
            failed = True
    if not args.dry_run:
        print(f"{removed} removed")
    return 1 if failed else 0


def _worker(args):
    from . import redis

    if args.authkey_file:
        with open(args.authkey_file, "rb") as f:
            authkey = f.read().rstrip(b"\n")
    elif os.environ.get("MULTIPROC_REDIS_AUTHKEY"):
        authkey = os.environ["MULTIPROC_REDIS_AUTHKEY"].encode()
    else:
        print("multiproc worker: give the submitters' authkey (--authkey-file FILE or "
              "MULTIPROC_REDIS_AUTHKEY)", file=sys.stderr)
        return 2
    import threading

    stop = threading.Event()
    # SIGTERM stops taking tasks; those running finish and are answered.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"multiproc worker: serving {args.queue!r} at {args.redis}", flush=True)
    try:
        redis.serve(args.redis, args.queue, args.processes, authkey=authkey, stop=stop)
    except KeyboardInterrupt:
        return 130
    return 0


def main(argv=None):
    """Entry point of the ``multiproc`` command."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:
        from . import bench

        return bench.main(argv[1:])
    ap = argparse.ArgumentParser(prog="multiproc", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("ls", help="list the named objects multiproc created")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.add_argument("--kind", help=f"only objects of this kind ({KINDS})")
    clean = sub.add_parser("clean", help="remove named objects whose owner is dead")
    clean.add_argument("--all", action="store_true", help="every named object, live owner or not")
    clean.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    clean.add_argument("--kind", help=f"only objects of this kind ({KINDS})")
    sub.add_parser("bench", help="python -m multiproc.bench (its own options follow)")
    worker = sub.add_parser("worker", help="serve a Redis task queue with a pool of local workers")
    worker.add_argument("--redis", required=True, metavar="URL", help="redis://host:port/db")
    worker.add_argument("--queue", required=True, metavar="NAME", help="the task queue's name")
    worker.add_argument("--processes", type=int, default=None, help="local workers (default: CPUs)")
    worker.add_argument("--authkey-file", metavar="FILE", help="the submitters' authkey")
    args = ap.parse_args(argv)
    if args.command == "worker":
        return _worker(args)
    try:
        return _ls(args) if args.command == "ls" else _clean(args)
    except ValueError as e:
        print(f"multiproc: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
