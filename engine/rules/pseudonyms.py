"""Pseudonymisation of customer ids: a keyed, deterministic, collision-free stand-in.

A customer id becomes `HMAC-SHA256(key, id)`, truncated to 128 bits and written as 32
hex characters: the same id always gets the same pseudonym under one key (joins keep
working), nobody without the key can recompute it from a list of candidate ids (an
unkeyed hash can be reversed that way), and 128 bits make a collision among even a
billion ids vanishingly unlikely (an 8-hex unkeyed prefix collides about 29 times
among 500,000 ids). Missing ids stay missing.

The key comes from `ENGINE_PSEUDONYM_KEY` or from the file named by
`ENGINE_PSEUDONYM_KEY_FILE`, which must be readable by its owner only (0600 or
stricter). Without a key the engine refuses: it never falls back to an unkeyed hash.
"""

from __future__ import annotations

import hmac
import os
import secrets
import stat
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import ConfigurationError

KEY_ENV = "ENGINE_PSEUDONYM_KEY"
KEY_FILE_ENV = "ENGINE_PSEUDONYM_KEY_FILE"
MIN_KEY_BYTES = 16
PSEUDONYM_BYTES = 16


def load_key(environ: dict | None = None) -> bytes:
    """The pseudonymisation key, from the environment or a private key file."""
    env = os.environ if environ is None else environ
    if env.get(KEY_ENV):
        key = env[KEY_ENV].encode("utf-8")
        source = KEY_ENV
    elif env.get(KEY_FILE_ENV):
        path = Path(env[KEY_FILE_ENV])
        try:
            mode = path.stat().st_mode
            key = path.read_bytes().strip()
        except OSError as error:
            raise ConfigurationError(f"{path}: cannot read the pseudonymisation key ({error.strerror})") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigurationError(f"{path}: the key file is readable by others ({stat.filemode(mode)}); "
                                     f"make it private: chmod 600 {path}")
        source = str(path)
    else:
        raise ConfigurationError(f"no pseudonymisation key: set {KEY_ENV}, or {KEY_FILE_ENV} to a file only "
                                 "you can read; customer ids are never hashed without a key")
    if len(key) < MIN_KEY_BYTES:
        raise ConfigurationError(f"{source}: the pseudonymisation key must be at least {MIN_KEY_BYTES} bytes")
    return key


class SecretKey:
    """The key as it travels to the processes that pseudonymise (Dask workers).

    It crosses the wire inside the task that uses it, never as a task name or a stored
    result, and its repr is a placeholder: a failing task that a worker logs with its
    arguments does not print the key.
    """

    __slots__ = ("_key", "_token")

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._token = secrets.token_hex(16)

    def __dask_tokenize__(self) -> str:
        # Dask names tasks after a hash of their arguments: never let that hash see the key.
        return self._token

    def reveal(self) -> bytes:
        return self._key

    def __repr__(self) -> str:
        return "SecretKey(<hidden>)"

    __str__ = __repr__

    def __reduce__(self) -> tuple:
        return (SecretKey, (self._key,))


def pseudonym(key: bytes, customer_id: str) -> str:
    """The pseudonym of one customer id."""
    return hmac.digest(key, customer_id.encode("utf-8"), "sha256")[:PSEUDONYM_BYTES].hex()


def pseudonymize(ids: pa.Array | pa.ChunkedArray, key: bytes) -> pa.Array:
    """Pseudonyms for a column of ids: each distinct id is hashed once; a missing cell
    (null, empty or only whitespace) stays null."""
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks() if ids.num_chunks else pa.array([], pa.string())
    encoded = pc.dictionary_encode(pc.cast(ids, pa.string()))
    keyed = hmac.new(key, digestmod="sha256")  # copying a keyed HMAC skips the key set-up per id

    def one(customer_id: str) -> str:
        mac = keyed.copy()
        mac.update(customer_id.encode("utf-8"))
        return mac.digest()[:PSEUDONYM_BYTES].hex()

    distinct = encoded.dictionary.to_pylist()
    pseudonyms = [one(v) if v is not None and v.strip(" \t") else None for v in distinct]
    return pc.take(pa.array(pseudonyms, pa.string()), encoded.indices)
