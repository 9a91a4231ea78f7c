"""The request body of a write, read and inflated within a size limit.

Telegraf streams its bodies (chunked transfer encoding, no Content-Length). Django's WSGI request reads nothing
without a Content-Length, so such a body is read from the server's input stream directly when the server says
it ends there (`wsgi.input_terminated`, set by gunicorn). Either way at most `limit` + 1 bytes are read, and a
gzip body is inflated at most to `limit` + 1 bytes, so neither a huge body nor a zip bomb is ever held whole.
"""

from __future__ import annotations

import zlib

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest

GZIP_ENCODINGS = frozenset({"gzip", "x-gzip"})
IDENTITY_ENCODINGS = frozenset({"", "identity"})
# zlib's window bits for "gzip header and trailer expected".
_GZIP_WBITS = 16 + zlib.MAX_WBITS


class BodyTooLarge(Exception):
    pass


class BadBody(Exception):
    pass


class UnsupportedEncoding(Exception):
    pass


def read_body(request: HttpRequest, *, limit: int) -> bytes:
    """The line protocol text of a request as bytes: read, and inflated when Content-Encoding says gzip."""
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in GZIP_ENCODINGS and encoding not in IDENTITY_ENCODINGS:
        raise UnsupportedEncoding(encoding)
    raw = _read_raw(request, limit=limit)
    return inflate_gzip(raw, limit=limit) if encoding in GZIP_ENCODINGS else raw


def _read_raw(request: HttpRequest, *, limit: int) -> bytes:
    declared = request.META.get("CONTENT_LENGTH")
    if declared:
        try:
            length = int(declared)
        except ValueError:
            raise BadBody("Content-Length is not a number") from None
        if length > limit:
            raise BodyTooLarge
        try:
            return request.body
        except RequestDataTooBig:  # DATA_UPLOAD_MAX_MEMORY_SIZE is below our limit
            raise BodyTooLarge from None
    if not request.META.get("wsgi.input_terminated"):
        return b""
    raw = request.META["wsgi.input"].read(limit + 1)
    if len(raw) > limit:
        raise BodyTooLarge
    return raw


def inflate_gzip(raw: bytes, *, limit: int) -> bytes:
    """Inflate a gzip body (one member or several, as gzip allows), refusing it once it passes `limit` bytes."""
    parts: list[bytes] = []
    size = 0
    remaining = raw
    while remaining:
        inflater = zlib.decompressobj(_GZIP_WBITS)
        try:
            part = inflater.decompress(remaining, limit + 1 - size)
        except zlib.error as exc:
            raise BadBody(f"the body is not valid gzip ({exc})") from None
        size += len(part)
        if size > limit or inflater.unconsumed_tail:
            raise BodyTooLarge
        if not inflater.eof:
            raise BadBody("the gzip body is truncated")
        parts.append(part)
        remaining = inflater.unused_data
    return b"".join(parts)
