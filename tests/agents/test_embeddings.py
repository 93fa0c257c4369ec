"""The offline hashing embedding: shape, stability across processes, and real relevance."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from inftd.agents.embeddings import (
    LocalEmbedder,
    hash_embedding,
    pack,
    stem,
    unpack,
    vector_tag,
    words,
)
from tests.support.memories import LABELLED_MEMORIES, LABELLED_QUERIES

PROBE = "A watercolor lighthouse at dawn, painted twice"


async def test_vectors_are_unit_float32_of_the_configured_length() -> None:
    embedder = LocalEmbedder(128)
    vectors = await embedder.embed(["one text", "another, longer text about painting"])
    assert [len(v) for v in vectors] == [128, 128]
    for vector in vectors:
        assert float(np.linalg.norm(vector)) == pytest.approx(1.0, abs=1e-6)
    assert embedder.name == "local-hash-v1/128"


def test_a_text_without_words_is_the_zero_vector() -> None:
    assert not hash_embedding("!!! ... the of and", 64).any()


def test_the_same_text_gives_the_same_vector_in_another_process() -> None:
    here = pack(hash_embedding(PROBE, 256)).hex()
    code = (
        "from inftd.agents.embeddings import hash_embedding, pack;"
        f"print(pack(hash_embedding({PROBE!r}, 256)).hex())"
    )
    for seed in ("1", "2"):  # Python's own str hash differs with the seed; ours must not
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == here


def test_vectors_survive_storage() -> None:
    vector = hash_embedding(PROBE, 32)
    assert len(pack(vector)) == 32 * 4
    assert np.array_equal(unpack(pack(vector)), vector)
    assert vector_tag("local-hash-v1/32", 32) == "local-hash-v1/32@32"


def test_words_drop_stopwords_and_stems_cut_suffixes() -> None:
    assert words("The Owner's CAT and the 3 dogs") == ["owner", "cat", "3", "dogs"]
    assert {stem(w) for w in ("painting", "painted", "paints", "paint")} == {"paint"}
    assert {stem(w) for w in ("image", "images")} == {"imag"}
    assert stem("sky") == "sky"  # too short to cut


def cosine(a: str, b: str, dimensions: int = 256) -> float:
    return float(hash_embedding(a, dimensions) @ hash_embedding(b, dimensions))


def test_related_texts_are_closer_than_unrelated_ones() -> None:
    assert cosine("painting a lighthouse", "the lighthouse was painted") > 0.4
    assert cosine("painting a lighthouse", "quarterly budget report") < 0.15
    # Character n-grams: a spelling variant shares most of its word's.
    assert cosine("watercolour", "watercolor") > cosine("watercolour", "budget") + 0.2


@pytest.mark.parametrize("dimensions", [256, 512, 1024])
def test_on_the_labelled_set_the_relevant_memory_is_nearest(dimensions: int) -> None:
    matrix = np.stack([hash_embedding(t, dimensions) for t in LABELLED_MEMORIES])
    for query, expected in LABELLED_QUERIES.items():
        assert int(np.argmax(matrix @ hash_embedding(query, dimensions))) == expected, query
