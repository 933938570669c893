"""The history's run-list filters: model, prompt text and keyset pages (the dashboard's)."""

from __future__ import annotations

from pathlib import Path

from cc_executor._store import Query, RunRecord, open_store


def test_model_text_and_keyset_pages(cc_home: Path, history_backend: str) -> None:
    store = open_store()
    try:
        for n in range(25):
            store.start(
                RunRecord(
                    id=f"run-{n:02d}",
                    kind="run",
                    status="ok",
                    # Pairs of runs share a start time: the id breaks the tie.
                    started_at=1000.0 + n // 2,
                    model=("opus", "sonnet")[n % 2],
                    prompt_preview=f"fix bug_{n} 100%",
                )
            )
        assert {r.model for r in store.query(Query(model="opus"))} == {"opus"}
        assert [r.id for r in store.query(Query(text="BUG_7 "))] == ["run-07"]
        # LIKE's wildcards are plain characters in the text searched for.
        assert store.query(Query(text="bug%")) == []
        assert len(store.query(Query(text="100%"))) == 25
        pages: list[list[str]] = []
        before = None
        for _ in range(5):  # three pages, then an empty one; more would be a loop
            page = store.query(Query(before=before, limit=10))
            if not page:
                break
            pages.append([r.id for r in page])
            before = (page[-1].started_at, page[-1].id)
        seen = [run_id for page in pages for run_id in page]
        assert seen == [f"run-{n:02d}" for n in reversed(range(25))]
        assert [len(p) for p in pages] == [10, 10, 5]
    finally:
        store.close()
