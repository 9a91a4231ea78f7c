"""Reading a write's body within its size limit: plain, gzip, streamed without Content-Length, and zip bombs."""

from __future__ import annotations

import gzip
import io
import tracemalloc
import zlib

import pytest
from django.test import RequestFactory

from apps.influx.body import BadBody, BodyTooLarge, UnsupportedEncoding, inflate_gzip, read_body

LIMIT = 64 * 1024


class UnreadableStream(io.RawIOBase):
    """A request body that fails the test if anything reads it."""

    def read(self, size=-1):
        raise AssertionError("the body was read")

    readline = read


def request(body: bytes = b"", *, encoding: str | None = None, **meta):
    headers = {"HTTP_CONTENT_ENCODING": encoding} if encoding else {}
    return RequestFactory().generic("POST", "/api/v2/write", body, content_type="text/plain", **headers, **meta)


def test_a_plain_body_is_read_as_it_is():
    assert read_body(request(b"m f=1\n"), limit=LIMIT) == b"m f=1\n"


def test_a_gzip_body_is_inflated():
    assert read_body(request(gzip.compress(b"m f=1\n"), encoding="gzip"), limit=LIMIT) == b"m f=1\n"


def test_a_gzip_body_of_several_members_is_inflated_whole():
    assert inflate_gzip(gzip.compress(b"m f=1\n") + gzip.compress(b"m f=2\n"), limit=LIMIT) == b"m f=1\nm f=2\n"


def test_a_body_of_exactly_the_limit_is_taken_and_one_byte_more_is_not():
    exact = b"x" * LIMIT
    assert read_body(request(exact), limit=LIMIT) == exact
    assert inflate_gzip(gzip.compress(exact), limit=LIMIT) == exact
    with pytest.raises(BodyTooLarge):
        read_body(request(exact + b"x"), limit=LIMIT)
    with pytest.raises(BodyTooLarge):
        inflate_gzip(gzip.compress(exact + b"x"), limit=LIMIT)


def test_a_declared_length_above_the_limit_is_refused_before_reading():
    big = request(CONTENT_LENGTH=str(LIMIT + 1))
    big.META["wsgi.input"] = UnreadableStream()
    with pytest.raises(BodyTooLarge):
        read_body(big, limit=LIMIT)


def test_a_zip_bomb_is_refused_without_being_inflated_whole():
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(1024 * 1024)
    bomb = b"".join(compressor.compress(chunk) for _ in range(256)) + compressor.flush()  # 256 MiB of zeros
    assert len(bomb) < 512 * 1024

    tracemalloc.start()
    try:
        with pytest.raises(BodyTooLarge):
            inflate_gzip(bomb, limit=LIMIT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024  # what inflating it whole would hold: 256 MiB


@pytest.mark.parametrize("body", [b"not gzip at all", gzip.compress(b"m f=1\n")[:-6]])
def test_a_body_that_is_not_complete_gzip_is_bad(body):
    with pytest.raises(BadBody):
        read_body(request(body, encoding="gzip"), limit=LIMIT)


def test_other_content_encodings_are_unsupported():
    with pytest.raises(UnsupportedEncoding):
        read_body(request(b"m f=1", encoding="br"), limit=LIMIT)


def test_a_streamed_body_without_content_length_is_read_when_the_server_terminates_the_input():
    streamed = request()
    streamed.META.pop("CONTENT_LENGTH", None)
    streamed.META.update({"wsgi.input": io.BytesIO(b"m f=1\n"), "wsgi.input_terminated": True})
    assert read_body(streamed, limit=LIMIT) == b"m f=1\n"

    too_long = request()
    too_long.META.pop("CONTENT_LENGTH", None)
    too_long.META.update({"wsgi.input": io.BytesIO(b"x" * (LIMIT + 1)), "wsgi.input_terminated": True})
    with pytest.raises(BodyTooLarge):
        read_body(too_long, limit=LIMIT)


def test_without_content_length_or_a_terminated_input_there_is_no_body():
    bare = request()
    bare.META.pop("CONTENT_LENGTH", None)
    bare.META["wsgi.input"] = UnreadableStream()
    assert read_body(bare, limit=LIMIT) == b""
