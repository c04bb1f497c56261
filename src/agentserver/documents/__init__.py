"""Documents: users upload files, a durable job extracts, chunks and embeds them, the agent searches them.

POST /api/v1/files ─► upload.py (streamed, size-limited multipart) ─► types.py (content sniffing)
    ─► storage.py (bytes by generated id) + files row + `documents.ingest` job, one transaction
worker ─► jobs.py: extract.py (per format) ─► chunking.py (token-aware) ─► embedder ─► chunks + vectors
agent  ─► tool.py `search_documents` ─► search.py (vector + full-text, reciprocal rank fusion)
"""
