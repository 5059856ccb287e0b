"""Helpers for the digest/subscriber/SMTP/archive tests: seeding the store, reading messages and
screenshots, a throw-away TLS certificate. (The SMTP server itself is ``conftest.SmtpServer``.)
"""

from __future__ import annotations

import json
import subprocess


from bot.store import save_items

NOW = "2026-11-23T06:00:00+00:00"


def paper(pmid, title, *, date="2026-11-20", themes=None, relevant=1, relevance=0.9, abstract="",
          sentence=None, authors=None, pub_types=None, journal="J Neurol", doi=None, extra=None, nct_ids=None):
    """A paper record plus its score row (themes: {name: score}; labels = themes scored ≥ 0.5)."""
    themes = themes or {"immunomodulation": 0.8}
    record = {"kind": "paper", "pmid": str(pmid), "title": title, "abstract": abstract, "pub_date": date,
              "entrez_date": date, "authors": authors or ["Dalakas MC", "Li M", "Smith J", "Brown K"],
              "journal": journal, "pub_types": pub_types or ["Journal Article"], "doi": doi,
              "extra": extra, "nct_ids": nct_ids}
    labels = [t for t, s in themes.items() if s >= 0.5]
    score = {"item_id": f"pmid:{pmid}", "relevance": relevance, "relevant": relevant,
             "themes": json.dumps(themes), "labels": json.dumps(labels), "why": f"about SPS; {', '.join(labels)}",
             "evidence": json.dumps({t: {"sentence": sentence or f"Sentence from {title}.", "terms": [t]}
                                     for t in labels})}
    return record, score


def trial(nct, title, *, date="2026-11-19", status="RECRUITING", phases=("PHASE2",), themes=None):
    themes = themes or {"immunomodulation": 0.8}
    record = {"kind": "trial", "nct_id": nct, "title": title, "abstract": "A trial summary.", "pub_date": date,
              "entrez_date": date, "extra": {"overall_status": status, "phases": list(phases)},
              "url": f"https://clinicaltrials.gov/study/{nct}"}
    labels = [t for t, s in themes.items() if s >= 0.5]
    score = {"item_id": f"nct:{nct}", "relevance": 0.95, "relevant": 1, "themes": json.dumps(themes),
             "labels": json.dumps(labels), "why": "SPS trial",
             "evidence": json.dumps({t: {"sentence": f"{title}.", "terms": []} for t in labels})}
    return record, score


def seed(db, pairs, *, source="pubmed", now=NOW):
    """Save (record, score) pairs: items through the real store, scores as the ranker writes them."""
    save_items(db, [r for r, _ in pairs], source=source, now=now)
    with db.atomic():
        db["scores"].upsert_all([s for _, s in pairs], pk="item_id", alter=True)


def parts(message) -> tuple[str, str]:
    """(text, html) bodies of a received multipart/alternative message."""
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    return text, html


def png_pixels(path) -> tuple[int, int, list[tuple]]:
    """(width, height, pixels) of an 8-bit, non-interlaced RGB/RGBA PNG, decoded with zlib only."""
    width, height, bpp, rows = _png_rows(path)
    stride = width * bpp
    pixels = [tuple(row[x:x + 3]) for row in rows for x in range(0, stride, bpp)]
    return width, height, pixels


def png_array(path):
    """The same PNG as a (height, width, 3) uint8 numpy array (fast for large screenshots)."""
    import numpy as np
    width, height, bpp, rows = _png_rows(path)
    return np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(height, width, bpp)[:, :, :3]


def _png_rows(path) -> tuple[int, int, int, list[bytes]]:
    """(width, height, bytes per pixel, unfiltered rows) of an 8-bit non-interlaced RGB/RGBA PNG."""
    import struct
    import zlib

    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and color in (2, 6) and interlace == 0, f"unsupported PNG {header}"
    bpp = 3 if color == 2 else 4
    raw, stride, rows, prev = zlib.decompress(idat), width * bpp, [], bytearray(width * bpp)
    import numpy as np

    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if kind in (0, 1, 2):  # None/Sub/Up vectorised: a 900×1400 screenshot decodes in well under a second
            arr = np.frombuffer(bytes(line), dtype=np.uint8).astype(np.int64)
            if kind == 1:
                arr = np.cumsum(arr.reshape(width, bpp), axis=0).reshape(-1)
            elif kind == 2:
                arr = arr + np.frombuffer(bytes(prev), dtype=np.uint8)
            line = bytearray((arr & 255).astype(np.uint8).tobytes())
            rows.append(bytes(line))
            prev = line
            continue
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


def self_signed_cert(directory) -> tuple[str, str]:
    """A throw-away certificate for 127.0.0.1 (openssl CLI); trust it with SSL_CERT_FILE."""
    cert, key = str(directory / "cert.pem"), str(directory / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def offline_cli_store(folder, monkeypatch, pairs):
    """A CLI database at ``folder/cli.db`` (env_isolated's SPSBOT_DB) holding ``pairs`` (see
    ``seed``), with a config that enables no source (no network), on the clock ``NOW``.
    Returns the open database."""
    from bot.store import open_db
    monkeypatch.setenv("SPSBOT_NOW", NOW)
    config = folder / "spsbot.toml"
    config.write_text("[sources.pubmed]\nenabled = false\n[sources.clinicaltrials]\nenabled = false\n",
                      encoding="utf-8")
    monkeypatch.setenv("SPSBOT_CONFIG", str(config))
    db = open_db(folder / "cli.db")
    seed(db, pairs)
    return db
