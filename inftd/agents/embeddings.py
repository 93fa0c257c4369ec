"""Text embeddings: the ``Embedder`` interface and the offline ``LocalEmbedder``.

``LocalEmbedder`` is feature hashing (the "hashing trick"): word unigrams, word bigrams and
character n-grams of each word are hashed into ``dimensions`` signed buckets, weighted by
sublinear term frequency (``1 + ln tf``), each family normalised on its own and then
blended, and the result L2-normalised. Stopwords are dropped and words cut to a crude stem
(a few English suffixes), so "painted" and "painting" share their word feature; character
n-grams catch what the stemmer misses (compounds, typos, other languages). It needs no
model and no network, and it is the same in every process: the hash is BLAKE2b, not
Python's salted ``hash``.

Vectors are stored as little-endian float32 bytes (``pack``/``unpack``). A stored vector
is tagged with ``vector_tag`` (the embedder's name and the vector's length), and vectors
with different tags are never compared.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Protocol

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]

LOCAL_NAME = "local-hash-v1"  # bump the version whenever the features change
WORD_WEIGHT = 1.0  # topical overlap is the main signal
BIGRAM_WEIGHT = 0.3  # word pairs ("dark mode") refine it; more drowns single-word matches
CHAR_WEIGHT = 0.8  # morphology: shared stems across inflections, compounds and typos
CHAR_NGRAMS = (3, 4, 5)  # n-gram lengths inside each word, padded with "<" and ">"
HASH_CACHE = 1 << 16  # feature -> (bucket, sign) results kept, per process
STORED_DTYPE = np.dtype("<f4")  # the byte layout of a stored vector
MIN_STEM = 3  # a suffix is cut only if this many letters remain
# Longest first: "ations" before "ation" before "s".
SUFFIXES = (
    "ations",
    "ation",
    "ings",
    "ing",
    "edly",
    "ers",
    "ies",
    "ed",
    "es",
    "er",
    "ly",
    "s",
    "e",
)

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# Function words carry no topic; dropping them keeps them from dominating short texts.
_STOPWORD_TEXT = """
    a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for
    from further had has have having he her here hers herself him himself his how i if in
    into is it its itself just me more most my myself no nor not now of off on once only or
    other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up
    very was we were what when where which while who whom why will with would you your
    yours yourself yourselves
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


class Embedder(Protocol):
    """Turns texts into vectors of one fixed length; ``name`` identifies the model."""

    name: str

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


def vector_tag(name: str, dimensions: int) -> str:
    """What ``Memory.embedder`` stores: vectors compare only when their tags are equal."""
    return f"{name}@{dimensions}"


def pack(vector: Sequence[float] | Vector) -> bytes:
    return np.asarray(vector, dtype=STORED_DTYPE).tobytes()


def unpack(data: bytes) -> Vector:
    return np.frombuffer(data, dtype=STORED_DTYPE).astype(np.float32)


def normalise(vector: Vector) -> Vector:
    """``vector`` scaled to unit length (a zero vector stays zero)."""
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def words(text: str) -> list[str]:
    """Lower-cased words of ``text`` without stopwords and stray letters (the "s" of "'s")."""
    found = _WORD.findall(text.casefold())
    return [w for w in found if w not in STOPWORDS and (len(w) > 1 or w.isdigit())]


def stem(word: str) -> str:
    """``word`` without its first matching suffix (a crude, language-blind stemmer)."""
    for suffix in SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= MIN_STEM:
            return word[: -len(suffix)]
    return word


@lru_cache(maxsize=HASH_CACHE)
def _slot(feature: str, dimensions: int) -> tuple[int, float]:
    """The bucket and sign of a feature: one BLAKE2b digest, stable across processes."""
    digest = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
    return (digest >> 1) % dimensions, 1.0 if digest & 1 else -1.0


def _char_ngrams(tokens: Iterable[str]) -> Iterable[str]:
    for token in tokens:
        padded = f"<{token}>"
        for n in CHAR_NGRAMS:
            for start in range(len(padded) - n + 1):
                yield "c:" + padded[start : start + n]


def _hashed(features: Iterable[str], dimensions: int) -> Vector:
    """Sublinear-tf signed hashing of one feature family, L2-normalised."""
    vector = np.zeros(dimensions, dtype=np.float32)
    for feature, count in Counter(features).items():
        bucket, sign = _slot(feature, dimensions)
        vector[bucket] += sign * (1.0 + math.log(count))
    return normalise(vector)


def hash_embedding(text: str, dimensions: int) -> Vector:
    """The local embedding of one text (unit length, or zero for a text without words)."""
    tokens = words(text)
    stems = [stem(t) for t in tokens]
    bigrams = (f"b:{a} {b}" for a, b in itertools.pairwise(stems))
    blended = (
        WORD_WEIGHT * _hashed((f"w:{t}" for t in stems), dimensions)
        + BIGRAM_WEIGHT * _hashed(bigrams, dimensions)
        + CHAR_WEIGHT * _hashed(_char_ngrams(tokens), dimensions)
    )
    return normalise(blended.astype(np.float32))


class LocalEmbedder:
    """The offline default: feature hashing into ``dimensions`` buckets."""

    def __init__(self, dimensions: int = 256) -> None:
        if dimensions < 1:
            raise ValueError(f"dimensions must be positive, got {dimensions}")
        self.dimensions = dimensions
        self.name = f"{LOCAL_NAME}/{dimensions}"

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [hash_embedding(text, self.dimensions).tolist() for text in texts]
