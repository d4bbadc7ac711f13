"""The site's pseudonym key when none is configured: a random key per home, made on first use.

Pseudonyms are keyed HMACs of hospital IDs (``tasks.ingest.pseudonym``). A fixed default key would let anyone
with the code confirm or brute-force an MRN from its pseudonym, so with ``PETCAP_PSEUDONYM_KEY`` unset the
first stage that needs the key (normally ingestion) draws 256 random bits and stores them in
``<home>/secrets/pseudonym.key`` (folder 0700, file 0600, created atomically so two workers agree on one
key). Every later run on the same home reads the same key, so pseudonyms stay stable. A warning names the file
once per process, never the key: back the file up with the store, because a lost key means new deliveries get
new pseudonyms and no longer link to earlier studies of the same patient.

``HomeKey`` is the ``SecretStr`` that ``Settings.pseudonym_key`` holds in that case: reading it loads (or
creates) the file; printing, dumping or logging it shows ``**********`` and touches nothing.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

from pydantic import SecretStr

from data_contracts.errors import PrerequisiteError

log = logging.getLogger(__name__)

KEY_FILE = Path("secrets") / "pseudonym.key"
_warned: set[str] = set()


def key_path(home: Path | str) -> Path:
    return Path(home) / KEY_FILE


def load_or_create(home: Path | str, create: bool = True) -> str:
    """The home's pseudonym key, generated (and the once-per-process warning given) when absent; with
    ``create`` false a missing file is an error (a worker must never make a second key)."""
    path = key_path(home).resolve()
    if not path.is_file():
        if not create:
            raise PrerequisiteError("the generated pseudonym key is not on this machine", path=str(path),
                                    reason="missing_pseudonym_key",
                                    hint="share the home with the workers or set PETCAP_PSEUDONYM_KEY")
        _create(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        os.chmod(path, 0o600)  # someone widened it: owner-only again
    key = path.read_text(encoding="ascii").strip()
    if len(key) < 32:
        raise ValueError(f"{path}: pseudonym key file is damaged (too short); restore it from the backup")
    if str(path) not in _warned:
        _warned.add(str(path))
        log.warning("PETCAP_PSEUDONYM_KEY is not set: pseudonyms use the generated site key in %s "
                    "(owner-only). Back this file up: pseudonyms of later deliveries depend on it.", path)
    return key


def _create(path: Path) -> None:
    """Write a fresh key next to its final name, then hard-link it there: the first writer wins, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_hex(32) + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
    finally:
        tmp.unlink(missing_ok=True)


class HomeKey(SecretStr):
    """A ``SecretStr`` whose value is the home's generated key, loaded (or created) when first read."""

    def __init__(self, home: Path | str):  # noqa: super().__init__ would store a value; ours is lazy
        self._home = str(Path(home).resolve())
        self._loaded: str | None = None
        self._may_create = True

    @property
    def _secret_value(self) -> str:  # read by SecretStr.get_secret_value, __eq__ and __hash__
        if self._loaded is None:
            self._loaded = load_or_create(self._home, create=self._may_create)
        return self._loaded

    def _display(self) -> str:
        return "**********"

    def __len__(self) -> int:
        return 64

    def __getstate__(self) -> dict:
        # The key never goes into a pickle (Prefect may persist one): the other side reloads the file, and
        # fails rather than generate a second key where the home's file is missing.
        return {"_home": self._home, "_loaded": None, "_may_create": False}
