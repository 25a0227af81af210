"""Retrieval quality of the on-device index on ACLSum: lexical, vector, hybrid, and TF-IDF.

ACLSum (PyPI ``aclsum``) holds 250 ACL papers, each with three one-sentence summaries
(challenge, approach, outcome). Each summary is a query; its paper is the one right answer:
750 queries over 250 documents. The papers (title, abstract, introduction, conclusion) are
written as text files and indexed by the real `index` skill (USE-v3 multilingual encoder on
onnxruntime, SQLite FTS5); each query is then ranked three ways by ``aios.index.search``:

* lexical: FTS5 bm25 over the chunks only;
* vector: cosine over the chunk embeddings only;
* hybrid: both, fused by reciprocal rank (what the `search` skill does);

beside a TF-IDF + cosine baseline over whole documents (scikit-learn). Reported: top-1 and
MRR@10, indexing throughput, and the `search` skill's end-to-end latency through the
orchestrator. Run from the repository root::

    python bench/search_quality.py [--json] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import err, percentile

MODES = ("lexical", "vector", "hybrid")
ENCODER = "use-v3-multilingual"


def load_aclsum() -> list[dict[str, Any]]:
    """Every paper of every split: id, title, text, and its three summaries."""
    import aclsum

    data = Path(aclsum.__file__).parent / "dataset"
    papers = []
    for split in ("train", "val", "test"):
        with open(data / f"{split}.jsonl", encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                row = json.loads(line)
                sections = row["sentences"]
                text = "\n\n".join(
                    " ".join(sections[s]) for s in ("abstract", "introduction", "conclusion")
                )
                papers.append(
                    {
                        "id": row["id"],
                        "title": row.get("title") or row["id"],
                        "text": text,
                        "summaries": [
                            row["summary"][a] for a in ("challenge", "approach", "outcome")
                        ],
                    }
                )
    return papers


def orchestrator(index_dir: str) -> Any:
    """The embedded reference config with its index in ``index_dir`` (models stay where
    they are: built image models live in the user's model dir)."""
    from aios.config.loader import load_config
    from aios.orchestrator import Orchestrator

    cfg, path = load_config(None)
    cfg = cfg.model_copy(update={"index": cfg.index.model_copy(update={"dir": index_dir})})
    return Orchestrator(cfg, config_path=path, ledger=False)


def write_corpus(papers: list[dict[str, Any]], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for p in papers:
        (folder / f"{p['id']}.txt").write_text(f"{p['title']}\n\n{p['text']}\n", encoding="utf-8")


def tfidf_ranks(papers: list[dict[str, Any]], queries: list[str]) -> np.ndarray:
    from sklearn.feature_extraction.text import TfidfVectorizer

    docs = [f"{p['title']}\n{p['text']}" for p in papers]
    vec = TfidfVectorizer(sublinear_tf=True, stop_words="english")
    d = vec.fit_transform(docs)
    q = vec.transform(queries)
    sims = (q @ d.T).toarray()
    return np.argsort(-sims, axis=1)[:, :10]


def scores(ranked: list[list[int]], gold: list[int]) -> dict[str, float]:
    top1 = np.mean([bool(r) and r[0] == g for r, g in zip(ranked, gold, strict=True)])
    rr = [1.0 / (r.index(g) + 1) if g in r[:10] else 0.0 for r, g in zip(ranked, gold, strict=True)]
    return {"top1": round(float(top1), 4), "mrr10": round(float(np.mean(rr)), 4)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N papers")
    ap.add_argument(
        "--latency-queries", type=int, default=100, help="queries timed end to end (skill)"
    )
    args = ap.parse_args()

    papers = load_aclsum()
    if args.limit:
        papers = papers[: args.limit]
    queries = [s for p in papers for s in p["summaries"]]
    gold = [i for i, p in enumerate(papers) for _ in p["summaries"]]
    err(f"ACLSum: {len(papers)} papers, {len(queries)} queries")

    with tempfile.TemporaryDirectory(prefix="aios-aclsum-") as tmp:
        from aios.index.paths import index_path
        from aios.index.search import Filters, hybrid_search
        from aios.index.store import IndexStore

        corpus = Path(tmp) / "papers"
        write_corpus(papers, corpus)
        orch = orchestrator(tmp)
        try:
            t0 = time.perf_counter()
            indexed = orch.invoke("index", {"path": str(corpus), "user": "bench"})
            index_s = time.perf_counter() - t0
            out = indexed.output
            err(
                f"indexed {out.new} papers, {out.chunks} chunks in {index_s:.1f} s "
                f"({out.new / index_s:.1f} docs/s, model load {indexed.record.load_ms:.0f} ms)"
            )
            handle = orch.load_model(ENCODER).handle
            qvecs = np.concatenate(
                [
                    handle.run({"inputs": np.asarray(queries[i : i + 64], dtype=object)})["outputs"]
                    for i in range(0, len(queries), 64)
                ]
            ).astype(np.float32)
            qvecs /= np.linalg.norm(qvecs, axis=1, keepdims=True)

            db = index_path(orch.config, orch.base_dir, "bench")
            by_path = {str(corpus / f"{p['id']}.txt"): i for i, p in enumerate(papers)}
            ranked: dict[str, list[list[int]]] = {m: [] for m in MODES}
            query_ms: dict[str, list[float]] = {m: [] for m in MODES}
            with IndexStore(db) as store:
                store.vectors()  # warm the cache once, as a long-running service has it
                for q, vec in zip(queries, qvecs, strict=True):
                    for mode in MODES:
                        text = q if mode != "vector" else ""
                        v = vec if mode != "lexical" else None
                        t = time.perf_counter()
                        hits = hybrid_search(store, text, v, Filters(), limit=10)
                        query_ms[mode].append((time.perf_counter() - t) * 1000)
                        ranked[mode].append([by_path[h.item.path] for h in hits])
            skill_ms = []
            for q in queries[: args.latency_queries]:
                t = time.perf_counter()
                orch.invoke("search", {"query": q, "user": "bench", "limit": 10})
                skill_ms.append((time.perf_counter() - t) * 1000)
        finally:
            orch.close()

    results: dict[str, Any] = {m: scores(ranked[m], gold) for m in MODES}
    tf = tfidf_ranks(papers, queries)
    results["tfidf"] = scores([list(r) for r in tf], gold)
    summary = {
        "papers": len(papers),
        "queries": len(queries),
        "chunks": out.chunks,
        "index_seconds": round(index_s, 2),
        "index_docs_per_s": round(out.new / index_s, 2),
        "quality": results,
        "ranking_ms_p50": {m: round(percentile(query_ms[m], 50), 2) for m in MODES},
        "search_skill_ms": {
            "p50": round(percentile(skill_ms, 50), 2),
            "p99": round(percentile(skill_ms, 99), 2),
        },
        "hybrid_vs_tfidf_top1": round(results["hybrid"]["top1"] / results["tfidf"]["top1"], 3),
    }
    err(f"\n{'ranking':<10} {'top-1':>7} {'MRR@10':>7} {'ms p50':>7}")
    for m in (*MODES, "tfidf"):
        ms = f"{summary['ranking_ms_p50'][m]:7.2f}" if m in MODES else f"{'-':>7}"
        err(f"{m:<10} {results[m]['top1']:7.3f} {results[m]['mrr10']:7.3f} {ms}")
    err(
        f"hybrid / TF-IDF top-1: {summary['hybrid_vs_tfidf_top1']:.3f}; search skill end to "
        f"end (embed + rank): p50 {summary['search_skill_ms']['p50']:.1f} ms, "
        f"p99 {summary['search_skill_ms']['p99']:.1f} ms"
    )
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
