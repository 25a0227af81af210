"""The on-device search index: one SQLite database per profile and the folder indexer.

``store`` holds items, chunks, their FTS5 terms and float16 vectors (``vectors`` keeps them in
memory as one matrix for search, ``geo`` filters by distance); ``indexer`` walks a folder
incrementally and fills the store; ``extract``/``photos`` read untrusted files safely;
``textseg`` segments text (CJK bigrams) so FTS5 matches Chinese; ``chunking`` splits bodies.
"""
