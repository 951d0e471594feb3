"""`dedup`: signatures identical to datasketch's, LSH candidates identical to datasketch's,
planted near-duplicates merged with their representative named, quality against exact Jaccard,
determinism, and the stage end to end."""

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from builder.errors import StageError
from builder.pipeline.folder_input import python_corpus
from builder.pipeline.rows import Drop
from builder.stages.dedup import NearDuplicateIndex, shingle_hash, shingles, signatures
from builder.stages.dedup import sketch as signatures_module
from builder.stages.dedup.quality import ShingleSets, evaluate, plant_near_duplicates, similar_pairs
from builder.stages.dedup.stage import DedupParams, DedupStage
from builder.stages.extract import extract_functions
from builder.store import open_store
from tests.helpers import TINY, export_rows, run_cli


@pytest.fixture(scope="module")
def stdlib_functions():
    """Distinct documented functions of a slice of the standard library, in a fixed order."""
    texts, seen = [], set()
    for _, path, _ in python_corpus("stdlib").files:
        if len(texts) >= 700:
            break
        try:
            functions = extract_functions(path.read_text(encoding="utf-8"))
        except (SyntaxError, ValueError, UnicodeDecodeError):
            continue
        for f in functions:
            if f["content_hash"] not in seen:
                seen.add(f["content_hash"])
                texts.append(f["function"])
    assert len(texts) >= 700
    return texts


def test_signatures_are_datasketchs(stdlib_functions, monkeypatch):
    from datasketch import MinHash

    texts = stdlib_functions[:40] + ["", "x", "def f(): pass", "naïve = café + 1  # ünïcode"]
    monkeypatch.setattr(signatures_module, "_BLOCK", 64)  # many blocks, documents cut across none
    ours = signatures(texts, num_perm=128, ngram=3, seed=7)
    for text, row in zip(texts, ours):
        expected = MinHash(num_perm=128, seed=7, hashfunc=shingle_hash)
        for shingle in shingles(text, 3):
            expected.update(shingle)
        assert np.array_equal(row, expected.hashvalues)
    # A text's signature does not depend on the batch it is computed in.
    assert np.array_equal(signatures(texts[5:9], 128, 3, 7), ours[5:9])


def test_index_candidates_are_datasketchs_lsh(stdlib_functions):
    from datasketch import LeanMinHash, MinHashLSH

    corpus, _ = plant_near_duplicates(
        stdlib_functions[:150], bases=40, variants=2, max_edits=4, seed=3
    )
    sigs = signatures(corpus, 128, 5)
    index = NearDuplicateIndex(0.5, 128)
    lsh = MinHashLSH(threshold=0.5, num_perm=128)
    keys = index.band_keys(sigs).tolist()
    for i, sig in enumerate(sigs):
        index.add(sig, keys[i])
        lsh.insert(i, LeanMinHash(seed=1, hashvalues=sig, scheme="affine32"))
    for i, sig in enumerate(sigs):
        lean = LeanMinHash(seed=1, hashvalues=sig, scheme="affine32")
        assert index.candidates(keys[i]) == set(lsh.query(lean))


def function(
    name: str, extra: str = "", doc: str = "Parse one record and return its fields."
) -> str:
    template = textwrap.dedent(f'''\
        def {name}(line, separator=","):
            """{doc}"""
            fields = [field.strip() for field in line.split(separator)]
            if not fields or not fields[0]:
                raise ValueError("empty record: %r" % line)
            identifier, rest = fields[0], fields[1:]
            values = {{"id": identifier, "count": len(rest)}}
            for position, field in enumerate(rest):
                values["field_%d" % position] = field
            #EXTRA
            return values
        ''')
    return template.replace("    #EXTRA\n", extra)


DISTINCT = [
    (
        'def mean(values):\n    """Arithmetic mean."""\n    total = 0\n    for v in values:\n        total += v\n'
        "    return total / len(values)\n"
    ),
    'def clamp(value, low, high):\n    """Clamp a value."""\n    return max(low, min(high, value))\n',
    (
        'async def fetch(session, url):\n    """Fetch a URL."""\n    async with session.get(url) as response:\n'
        "        return await response.text()\n"
    ),
]


def rows_of(texts):
    return [{"id": f"id{i:03d}", "function": text, "name": f"f{i}"} for i, text in enumerate(texts)]


def run_stage(stage, rows, chunk):
    kept = []
    for start in range(0, len(rows), chunk):
        kept += stage.process(rows[start : start + chunk]).kept
    return list(stage.finalize(kept))


def test_planted_near_duplicates_are_merged_naming_their_representative():
    texts = [
        function("parse_record"),
        *DISTINCT,
        function("parse_record", doc="Parse a record; return its fields."),
        function("parse_record", extra="    values['raw'] = line\n"),
    ]
    stage = DedupStage(DedupParams())
    out = run_stage(stage, rows_of(texts), chunk=2)
    kept = [o for o in out if not isinstance(o, Drop)]
    dropped = [o for o in out if isinstance(o, Drop)]
    assert [r["id"] for r in kept] == ["id000", "id001", "id002", "id003"]
    assert all(r["cluster_id"] == r["id"] and "minhash" not in r for r in kept)
    assert [d.row["id"] for d in dropped] == ["id004", "id005"]
    for drop in dropped:
        assert drop.reason == "near_duplicate"
        assert drop.row["duplicate_of"] == drop.row["cluster_id"] == "id000"
        assert 0.5 <= drop.row["jaccard_estimate"] <= 1.0 and "minhash" not in drop.row
        assert drop.detail.startswith("near-duplicate of id000 (f0), estimated Jaccard 0.")
    notes = stage.card_notes()
    assert "256 permutations" in notes and "shingles of 5 consecutive word tokens" in notes
    assert "42 bands of 6 rows" in notes and "the largest has 3 functions (kept: `id000`" in notes


def test_same_kept_set_whatever_the_chunk_size(stdlib_functions):
    corpus, _ = plant_near_duplicates(
        stdlib_functions[:200], bases=50, variants=2, max_edits=3, seed=5
    )
    rows = rows_of(corpus)
    outcomes = []
    for chunk in (7, 64, 2000):
        out = run_stage(DedupStage(DedupParams()), rows, chunk)
        outcomes.append(
            [
                (o.row["id"], o.row["duplicate_of"]) if isinstance(o, Drop) else (o["id"], None)
                for o in out
            ]
        )
    assert outcomes[0] == outcomes[1] == outcomes[2]
    assert sum(dup is not None for _, dup in outcomes[0]) > 50


def test_quality_against_exact_jaccard(stdlib_functions):
    """The benchmark script's quality check, smaller: recall >= 0.95 on pairs with exact
    Jaccard >= 0.7, and no merged pair below 0.3."""
    corpus, origin = plant_near_duplicates(
        stdlib_functions[:600], bases=150, variants=3, max_edits=8, seed=11
    )
    sets = ShingleSets(corpus, 5)
    truth = similar_pairs(sets, 0.7)
    found = {(i, j) for i, j, _ in truth}
    planted = {(min(i, o), max(i, o)) for i, o in enumerate(origin) if o >= 0}
    assert {p for p in planted if sets.jaccard(*p) >= 0.7} <= found  # the reference misses none
    out = run_stage(DedupStage(DedupParams()), rows_of(corpus), chunk=500)
    merged_into = [int(o.row["duplicate_of"][2:]) if isinstance(o, Drop) else None for o in out]
    quality = evaluate(sets, merged_into, truth)
    assert quality["pairs"] > 150 and quality["recall"] >= 0.95
    assert quality["merged_pairs"] > 150 and quality["merged_below_0.3"] == 0


def test_a_duplicate_goes_to_its_most_similar_kept_row_not_the_first():
    """C is a near-duplicate of both A and B, which are kept (Jaccard 0.43 with each other);
    A comes first (0.64 with C), B is closer (0.77; exact Jaccard on single-token shingles)."""
    q, p, r = ([f"{k}{i}" for i in range(n)] for k, n in (("q", 60), ("p", 40), ("r", 40)))
    a, b, c = q + p, q + r, q + r + p[:30]
    exact = lambda x, y: len(set(x) & set(y)) / len(set(x) | set(y))  # noqa: E731
    assert exact(a, b) < 0.5 <= exact(c, a) < exact(c, b)
    out = run_stage(DedupStage(DedupParams(ngram=1)), rows_of([" ".join(t) for t in (a, b, c)]), 3)
    assert [o["id"] for o in out if not isinstance(o, Drop)] == ["id000", "id001"]
    (drop,) = [o for o in out if isinstance(o, Drop)]
    assert drop.row["duplicate_of"] == "id001"


def test_every_dropped_row_names_the_most_similar_kept_row(stdlib_functions):
    corpus, _ = plant_near_duplicates(
        stdlib_functions[:300], bases=80, variants=3, max_edits=6, seed=3
    )
    params = DedupParams()
    out = run_stage(DedupStage(params), rows_of(corpus), chunk=100)
    sigs = signatures(corpus, params.num_perm, params.ngram, params.seed)
    kept = [int(o["id"][2:]) for o in out if not isinstance(o, Drop)]
    dropped = [o.row for o in out if isinstance(o, Drop)]
    assert len(dropped) > 80
    for row in dropped:
        me = int(row["id"][2:])
        earlier = [k for k in kept if k < me]  # what was kept when this row was seen
        estimates = (sigs[earlier] == sigs[me]).mean(axis=1)
        best = max(estimates)
        assert row["jaccard_estimate"] == round(float(best), 4)
        assert row["duplicate_of"] == f"id{earlier[int(np.argmax(estimates))]:03d}"


def write_corpus(folder: Path) -> Path:
    files = {
        "a/records.py": function("parse_record"),
        "b/records_copy.py": function("parse_record", doc="Parse a record; return its fields."),
        "c/records_more.py": function("parse_record", extra="    values['raw'] = line\n"),
        "d/other.py": "\n\n".join(DISTINCT),
    }
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


@pytest.mark.slow
def test_end_to_end_with_one_and_two_processes(tmp_path, monkeypatch):
    corpus = write_corpus(tmp_path / "corpus")
    kept_sets = []
    for procs in (1, 2):
        # One chunk with one process; three chunks of two rows shared by two workers.
        monkeypatch.setattr(DedupStage, "chunk_size", 2000 if procs == 1 else 2)
        store = f"local:{tmp_path}/s{procs}"
        args = [
            "--only",
            "extract,dedup",
            "--set",
            f"hub.store={store}",
            "--set",
            f"work_dir={tmp_path}/w{procs}",
            "--set",
            f"stages.extract.source={corpus}",
            "--set",
            "stages.extract.num_proc=1",
            "--set",
            "stages.dedup.input=extract",
            "--set",
            f"stages.dedup.num_proc={procs}",
        ]
        assert run_cli("run", TINY, *args) == 0
        manifest = json.loads(
            open_store(store).read_text("local/tiny-dedup", "main", "manifest.json")
        )
        assert manifest["rows_in"] == 6 and manifest["rows_out"] == 4
        assert manifest["drops"] == {"near_duplicate": 2}
        assert (
            "minhash" not in manifest["columns"]["train"]
            and "cluster_id" in manifest["columns"]["train"]
        )
        kept = export_rows(store, "local/tiny-dedup", tmp_path / f"e{procs}")
        rejected = export_rows(store, "local/tiny-dedup", tmp_path / f"e{procs}", split="rejected")
        representative = next(r for r in kept if r["path"] == "a/records.py")
        assert {r["path"] for r in rejected} == {"b/records_copy.py", "c/records_more.py"}
        assert {r["duplicate_of"] for r in rejected} == {representative["id"]}
        kept_sets.append(sorted(r["id"] for r in kept))
    assert kept_sets[0] == kept_sets[1]


def test_bad_parameters_and_rows(caplog):
    assert run_cli("run", TINY, "--set", "stages.dedup.threshold=1.5") == 2
    assert "stages.dedup.threshold must be in (0, 1]" in caplog.text
    with pytest.raises(StageError, match="row 'x' has no function text"):
        DedupStage(DedupParams()).process([{"id": "x", "function": None}])


# -- mode: reference (text-dedup's clustering, as the published pipeline) ------------------------


def test_reference_shingles_and_hashes_are_the_tools():
    from builder.stages.dedup import reference

    # Split on every non-word character: "(", ", " and "):" leave empty tokens, which count.
    assert reference.shingles("def F(a, b):", 5) == {b"def f a  b", b"f a  b ", b"a  b  "}
    assert reference.shingles("x = 1", 5) == set()  # under 5 tokens: not clustered at all
    assert reference.shingle_hash(b"hello world") == 896314922  # text-dedup's sha1_hash(.., 32)
    a, b = reference.permutations(250, 42)
    assert a.dtype == np.uint64 and a.min() >= 1 and (a < (1 << 61) - 1).all() and b.min() >= 0


def test_reference_clusters_through_shared_buckets_transitively():
    from builder.stages.dedup import reference

    keys = [[b"k1", b"a"], [b"k1", b"k2"], [b"b", b"k2"], [b"c", b"d"], None, [b"e", b"d"]]
    # 0-1 share band 0 and 1-2 band 1: one cluster; 3-5 share band 1. As in text-dedup, each
    # member is united with the bucket's smallest (`union(member, smallest)`, the first
    # argument's root winning a tie of ranks), so a pair keeps its later text.
    assert reference.cluster(keys) == [1, 1, 1, 5, 4, 5]


def _chain():
    """A, then B (A's first 40 of 200 tokens replaced), then C (B's last 40 replaced): A~B and
    B~C are similar (about 0.63), A and C are not (about 0.42)."""
    base = [f"w{i}" for i in range(200)]
    b = [f"b{i}" for i in range(40)] + base[40:]
    c = b[:160] + [f"c{i}" for i in range(40)]
    return [" ".join(t) for t in (base, b, c)]


def test_reference_mode_drops_a_chain_that_verified_mode_keeps():
    rows = rows_of(_chain())
    settings = {"num_perm": 250, "seed": 42, "threshold": 0.5}
    verified = run_stage(DedupStage(DedupParams(**settings)), rows, 10)
    stage = DedupStage(DedupParams(mode="reference", **settings))
    reference = run_stage(stage, rows, 10)
    assert [o.row["id"] if isinstance(o, Drop) else None for o in verified] == [None, "id001", None]
    dropped = [o for o in reference if isinstance(o, Drop)]
    assert len(dropped) == 2  # A, B and C in one cluster (A and C through B), one kept
    kept = next(o for o in reference if not isinstance(o, Drop))
    assert all(d.row["cluster_id"] == d.row["duplicate_of"] == kept["id"] for d in dropped)
    assert {kept["id"], *(d.row["id"] for d in dropped)} == {"id000", "id001", "id002"}
    assert dropped[0].detail.startswith(f"in the cluster of {kept['id']} ")
    notes = stage.card_notes()
    assert "without checking their similarity" in notes and "41 bands of 6 rows" in notes


def test_reference_mode_matches_text_dedup_itself(stdlib_functions):
    """Where text-dedup is installed (not in CI: `pip install --no-deps text-dedup
    click-option-group`), its own signatures and clustering on 700 stdlib functions."""
    pytest.importorskip("text_dedup")
    import text_dedup.minhash as tool
    from text_dedup.utils import UnionFind, optimal_param, sha1_hash

    from builder.stages.dedup import reference

    bands, rows = optimal_param(0.5, 250)
    ranges = [(i * rows, (i + 1) * rows) for i in range(bands)]
    perms = reference.permutations(250, 42)
    tables = [dict() for _ in range(bands)]
    for index, text in enumerate(stdlib_functions):
        out = tool.embed_func(
            text, index, num_perm=250, ngram_size=5, min_length=5, hashranges=ranges,
            permutations=perms, hash_func=lambda d: sha1_hash(d, d=32), dtype=np.uint64,
            max_hash=np.uint32((1 << 32) - 1), modulo_prime=np.uint64((1 << 61) - 1),
        )  # fmt: skip
        for table, key in zip(tables, out[tool.SIGNATURE_COLUMN]):
            table.setdefault(key, set()).add(index)
    found = UnionFind()
    for table in tables:
        for members in table.values():
            if len(members) > 1:
                for member in members:
                    found.union(member, min(members))
    theirs = {i for i in range(len(stdlib_functions)) if found.find(i) != i}
    out = run_stage(
        DedupStage(DedupParams(mode="reference", num_perm=250, seed=42)),
        rows_of(stdlib_functions), 64,
    )  # fmt: skip
    ours = {int(o.row["id"][2:]) for o in out if isinstance(o, Drop)}
    assert ours == theirs and len(ours) > 5
