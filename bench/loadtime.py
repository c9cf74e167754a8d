"""One cassette load, timed, in a fresh process (the orchestrator kills it when it overruns its budget).

    python bench/loadtime.py LOADER PATH      # prints one JSON line: {"seconds": ..., "items": ...}

LOADER:
  csafe         PyYAML's CSafeLoader: list(yaml.load_all(text)) on the same file
  gwsvcr        gwsvcr.cassette.load(PATH) with the cache directory from $GWSVCR_CACHE_DIR (empty: cold)
  gwsvcr-nocache  gwsvcr.cassette.load(PATH, use_cache=False)
  vcr           VCR.py: vcr.cassette.Cassette.load(path=PATH, record_mode="none") on its own format
  prime         fill gwsvcr's parse cache for PATH with the documents CSafeLoader parsed (what load() itself
                stores after parsing), for warm runs at sizes where a cold load does not finish in the budget;
                its "seconds" is the CSafeLoader parse alone (the same work as the csafe loader)
Each timing includes reading the file.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from pathlib import Path


def _peak_mb() -> float:
    m = re.search(r"^VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    return int(m.group(1)) / 1024 if m else 0.0


def main() -> None:
    loader, path = sys.argv[1], sys.argv[2]
    import yaml

    from gwsvcr import cassette

    if loader == "prime":  # "seconds" is the CSafeLoader parse alone, timed as the csafe loader is
        t0 = time.perf_counter()
        with open(path, encoding="utf-8") as fh:
            docs = list(yaml.load_all(fh.read(), Loader=yaml.CSafeLoader))
        seconds = time.perf_counter() - t0
        put = getattr(cassette, "_cache_put", None)
        if put is not None:
            put(hashlib.sha256(Path(path).read_bytes()).hexdigest(), docs)
        else:  # the private helper is gone: fill the cache the slow way, with a real cold load
            cassette.load(path)
        print(json.dumps({"seconds": seconds, "items": len(docs), "peak_rss_mb": _peak_mb()}))
        return
    if loader == "vcr":
        import vcr.cassette
    t0 = time.perf_counter()
    if loader == "csafe":
        with open(path, encoding="utf-8") as fh:
            items = len(list(yaml.load_all(fh.read(), Loader=yaml.CSafeLoader)))
    elif loader == "gwsvcr":
        items = len(cassette.load(path).exchanges)
    elif loader == "gwsvcr-nocache":
        items = len(cassette.load(path, use_cache=False).exchanges)
    elif loader == "vcr":
        items = len(vcr.cassette.Cassette.load(path=path, record_mode="none"))
    else:
        raise SystemExit(f"unknown loader {loader}")
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "items": items, "peak_rss_mb": _peak_mb()}))


if __name__ == "__main__":
    main()
