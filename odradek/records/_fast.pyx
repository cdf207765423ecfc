# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The compiled record codec: odradek.records._pure in C, byte for byte.

The producer encodes every record it sends and the consumer decodes every record it
reads; in Python that per-record work (varints, slicing, concatenation) is most of a
client's CPU. Here a batch's records go into one growing C buffer. Values outside the
64-bit range that the pure code accepts (Python ints are unbounded) are handed back to
the pure varint code, so the two never disagree on bytes, only on speed."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.string cimport memcpy, memmove

import struct

import crc32c

from odradek.records.batch import InvalidRecordError
from odradek.records.record import Record
from odradek.records.varint import decode_varint as _py_decode_varint
from odradek.records.varint import varint_bytes as _py_varint_bytes


cdef extern from "Python.h":
    bint PyBytes_CheckExact(object o)
    bint PyUnicode_CheckExact(object o)
    bint PyObject_CheckBuffer(object o)
    bint PyIndex_Check(object o)
    const char* PyUnicode_AsUTF8AndSize(object o, Py_ssize_t* size) except NULL
    object PyUnicode_DecodeUTF8(const char* s, Py_ssize_t size, const char* errors)
    long long PyLong_AsLongLongAndOverflow(object o, int* overflow) except? -1
    Py_ssize_t PY_SSIZE_T_MAX

cdef enum:
    HEADER_SIZE = 61
    LOG_OVERHEAD = 12
    CRC_START = 21
    MAGIC = 2
    # Room left before a record for its length varint, which is known only once the
    # record is written (a Py_ssize_t's zigzag varint is at most 10 bytes).
    LENGTH_ROOM = 10

cdef long long LLONG_MAX = 0x7FFFFFFFFFFFFFFF
cdef long long LLONG_MIN = -LLONG_MAX - 1


# -- varints ------------------------------------------------------------------------------

cdef inline unsigned long long _zigzag(long long v) noexcept nogil:
    return (<unsigned long long>v << 1) ^ <unsigned long long>(v >> 63)


cdef inline int _varint_size(unsigned long long z) noexcept nogil:
    cdef int n = 1
    while z >= 0x80:
        z >>= 7
        n += 1
    return n


cdef inline int _put_varint(unsigned char* out, unsigned long long z) noexcept nogil:
    cdef int n = 0
    while z >= 0x80:
        out[n] = <unsigned char>((z & 0x7F) | 0x80)
        z >>= 7
        n += 1
    out[n] = <unsigned char>z
    return n + 1


cdef int _get_varint(const unsigned char* b, Py_ssize_t size, Py_ssize_t* pos,
                     unsigned long long* out) except -1:
    """Reads the raw (still zigzagged) varint at pos[0]; returns 1 when it holds more than
    64 bits (the caller decides what that means), else 0. Raises as the pure decoder."""
    cdef Py_ssize_t p = pos[0]
    cdef unsigned long long result = 0
    cdef int shift = 0
    cdef int wide = 0
    cdef unsigned char byte
    while True:
        if p >= size:
            raise IndexError("index out of range")
        byte = b[p]
        p += 1
        if shift == 63 and (byte & 0x7F) > 1:
            wide = 1
        result |= (<unsigned long long>(byte & 0x7F)) << shift
        if not byte & 0x80:
            break
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")
    pos[0] = p
    out[0] = result
    return wide


cdef inline long long _unzigzag(unsigned long long z) noexcept nogil:
    return <long long>((z >> 1) ^ (0 - (z & 1)))


cdef long long _get_length(const unsigned char* b, Py_ssize_t size, Py_ssize_t* pos) except? -2:
    """A length or count: one wider than 64 bits saturates, which the pure code's checks
    treat the same way (any negative length is null, a huge one runs past the end)."""
    cdef unsigned long long z
    if _get_varint(b, size, pos, &z):
        return LLONG_MIN if z & 1 else LLONG_MAX
    return _unzigzag(z)


cdef object _get_int(object body, const unsigned char* b, Py_ssize_t size, Py_ssize_t* pos):
    """A delta as a Python int, exact at any width (the pure decoder's result)."""
    cdef Py_ssize_t start = pos[0]
    cdef unsigned long long z
    if _get_varint(b, size, pos, &z):
        return _py_decode_varint(body, start)[0]
    return _unzigzag(z)


# -- encoding -----------------------------------------------------------------------------

cdef inline object _as_bytes(object data):
    if data is None or PyBytes_CheckExact(data):
        return data
    if PyObject_CheckBuffer(data):
        return bytes(data)
    raise TypeError(f"can't concat {type(data).__name__} to bytearray")


cdef class RecordsBuffer:
    """The encoded records of one batch so far (offsets 0..n-1, timestamps as deltas
    from the first record's)."""

    cdef unsigned char* _buf
    cdef Py_ssize_t _size
    cdef Py_ssize_t _cap
    cdef Py_ssize_t _count
    cdef object _base_ts
    cdef object _max_ts

    def __cinit__(self):
        self._buf = NULL
        self._size = 0
        self._cap = 0
        self._count = 0
        self._base_ts = 0
        self._max_ts = -1

    def __dealloc__(self):
        PyMem_Free(self._buf)

    def __len__(self):
        return self._count

    @property
    def size_estimate(self):
        """Uncompressed batch size so far: an upper bound for deciding when it is full."""
        return HEADER_SIZE + self._size

    @property
    def base_timestamp(self):
        return self._base_ts

    @property
    def max_timestamp(self):
        return self._max_ts

    cdef int _reserve(self, Py_ssize_t extra) except -1:
        cdef Py_ssize_t need = self._size + extra
        cdef Py_ssize_t cap
        cdef unsigned char* grown
        if need <= self._cap:
            return 0
        cap = self._cap * 2 if self._cap else 1024
        if cap < need:
            cap = need
        grown = <unsigned char*>PyMem_Realloc(self._buf, cap)
        if grown == NULL:
            raise MemoryError()
        self._buf = grown
        self._cap = cap
        return 0

    cdef inline void _put(self, const void* data, Py_ssize_t n) noexcept:
        memcpy(self._buf + self._size, data, n)
        self._size += n

    cdef int _put_int(self, object value) except -1:
        """A delta's varint (in the room reserved for it, unless it is wider than 64
        bits: then the pure encoder's bytes, however many)."""
        cdef int overflow = 0
        cdef long long v = PyLong_AsLongLongAndOverflow(value, &overflow)
        cdef bytes wide
        if overflow:
            wide = _py_varint_bytes(value)
            self._reserve(PyBytes_GET_SIZE(wide))
            self._put(PyBytes_AS_STRING(wide), PyBytes_GET_SIZE(wide))
        else:
            self._reserve(10)
            self._size += _put_varint(self._buf + self._size, _zigzag(v))
        return 0

    cdef int _put_blob(self, const char* data, Py_ssize_t n) except -1:
        """A length-prefixed field; n < 0 is null."""
        self._reserve(10 + (n if n > 0 else 0))
        if n < 0:
            self._buf[self._size] = 1  # zigzag(-1)
            self._size += 1
            return 0
        self._size += _put_varint(self._buf + self._size, _zigzag(n))
        self._put(data, n)
        return 0

    cdef int _put_bytes(self, object data) except -1:
        if data is None:
            return self._put_blob(NULL, -1)
        return self._put_blob(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))

    cdef int _encode(self, object timestamp_delta, object offset_delta, object key,
                     object value, object headers) except -1:
        cdef Py_ssize_t start = self._size
        cdef Py_ssize_t body, n
        cdef const char* name_utf8
        cdef Py_ssize_t name_len
        key = _as_bytes(key)
        value = _as_bytes(value)
        try:
            self._reserve(LENGTH_ROOM + 1)
            self._size += LENGTH_ROOM
            self._buf[self._size] = 0  # record attributes: unused
            self._size += 1
            self._put_int(timestamp_delta)
            self._put_int(offset_delta)
            self._put_bytes(key)
            self._put_bytes(value)
            if headers:
                self._reserve(10)
                self._size += _put_varint(self._buf + self._size, _zigzag(len(headers)))
                for name, hvalue in headers:
                    if PyUnicode_CheckExact(name):
                        name_utf8 = PyUnicode_AsUTF8AndSize(name, &name_len)
                        self._put_blob(name_utf8, name_len)
                    else:
                        self._put_bytes(_as_bytes(name.encode()))
                    self._put_bytes(_as_bytes(hvalue))
            else:
                self._reserve(1)
                self._buf[self._size] = 0
                self._size += 1
        except BaseException:
            self._size = start
            raise
        body = self._size - start - LENGTH_ROOM
        n = _varint_size(_zigzag(body))
        memmove(self._buf + start + n, self._buf + start + LENGTH_ROOM, body)
        _put_varint(self._buf + start, _zigzag(body))
        self._size = start + n + body
        return 0

    def append(self, timestamp, key, value, headers=()):
        if self._count == 0:
            self._base_ts = timestamp
            self._max_ts = timestamp
        elif timestamp > self._max_ts:
            self._max_ts = timestamp
        self._encode(timestamp - self._base_ts, self._count, key, value, headers)
        self._count += 1

    def append_raw(self, timestamp_delta, offset_delta, key, value, headers=()):
        """A record with its deltas given (a rebuilt batch keeps its records' offsets);
        counts it, leaves the timestamps alone."""
        self._encode(timestamp_delta, offset_delta, key, value, headers)
        self._count += 1

    def body(self):
        return PyBytes_FromStringAndSize(<char*>self._buf, self._size)


# -- framing ------------------------------------------------------------------------------

cdef long long _field(object value, long long low, long long high) except? -1:
    """A header field, refused as struct refuses it in the pure code."""
    cdef int overflow = 0
    cdef long long v
    if not PyIndex_Check(value):
        raise struct.error("required argument is not an integer")
    v = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow or v < low or v > high:
        raise struct.error(f"argument out of range: {value}")
    return v


cdef inline void _be(unsigned char* out, unsigned long long v, int width) noexcept nogil:
    cdef int i
    for i in range(width):
        out[width - 1 - i] = <unsigned char>(v & 0xFF)
        v >>= 8


def frame_batch(base_offset, leader_epoch, attributes, last_offset_delta, base_timestamp,
                max_timestamp, producer_id, producer_epoch, base_sequence, record_count,
                bytes payload):
    """The whole batch: the 61-byte header (with its CRC-32C) before payload."""
    cdef long long i32_min = -0x80000000, i32_max = 0x7FFFFFFF
    cdef Py_ssize_t n = PyBytes_GET_SIZE(payload)
    cdef long long length = HEADER_SIZE - LOG_OVERHEAD + n
    if length > i32_max:
        raise struct.error(f"argument out of range: {length}")
    cdef bytes out = PyBytes_FromStringAndSize(NULL, HEADER_SIZE + n)
    cdef unsigned char* b = <unsigned char*>PyBytes_AS_STRING(out)
    _be(b, <unsigned long long>_field(base_offset, LLONG_MIN, LLONG_MAX), 8)
    _be(b + 8, <unsigned long long>length, 4)
    _be(b + 12, <unsigned long long>_field(leader_epoch, i32_min, i32_max), 4)
    b[16] = MAGIC
    _be(b + 21, <unsigned long long>_field(attributes, -0x8000, 0x7FFF), 2)
    _be(b + 23, <unsigned long long>_field(last_offset_delta, i32_min, i32_max), 4)
    _be(b + 27, <unsigned long long>_field(base_timestamp, LLONG_MIN, LLONG_MAX), 8)
    _be(b + 35, <unsigned long long>_field(max_timestamp, LLONG_MIN, LLONG_MAX), 8)
    _be(b + 43, <unsigned long long>_field(producer_id, LLONG_MIN, LLONG_MAX), 8)
    _be(b + 51, <unsigned long long>_field(producer_epoch, -0x8000, 0x7FFF), 2)
    _be(b + 53, <unsigned long long>_field(base_sequence, i32_min, i32_max), 4)
    _be(b + 57, <unsigned long long>_field(record_count, i32_min, i32_max), 4)
    memcpy(b + HEADER_SIZE, PyBytes_AS_STRING(payload), n)
    # crc32c is already C (with the CPU's CRC instruction where there is one).
    cdef unsigned long long crc = crc32c.crc32c(memoryview(out)[CRC_START:])
    _be(b + 17, crc, 4)
    return out


# -- decoding -----------------------------------------------------------------------------

# A frozen dataclass's __init__ is a Python function that sets each field through
# object.__setattr__: most of the cost of a decoded record. Its slots' own descriptors set
# the same fields from C, and the result is the same Record (the tests compare them).
_new_record = object.__new__
_set_offset, _set_timestamp, _set_key, _set_value, _set_headers = (
    Record.__dict__[name].__set__ for name in ("offset", "timestamp", "key", "value", "headers"))


cdef inline object _record(object offset, object timestamp, object key, object value,
                           object headers):
    record = _new_record(Record)
    _set_offset(record, offset)
    _set_timestamp(record, timestamp)
    _set_key(record, key)
    _set_value(record, value)
    _set_headers(record, headers)
    return record


cdef object _add(long long base, object delta):
    """base + delta as the pure code computes it (exact, any width)."""
    cdef long long d
    cdef int overflow = 0
    d = PyLong_AsLongLongAndOverflow(delta, &overflow)
    if overflow or (d > 0 and base > LLONG_MAX - d) or (d < 0 and base < LLONG_MIN - d):
        return base + delta
    return base + d


cdef object _get_blob(const unsigned char* b, Py_ssize_t size, Py_ssize_t* pos):
    cdef long long n = _get_length(b, size, pos)
    cdef Py_ssize_t p = pos[0]
    if n < 0:
        return None
    if n > size - p:
        raise IndexError("field runs past the end of the batch")
    pos[0] = p + n
    return PyBytes_FromStringAndSize(<const char*>b + p, n)


def decode_records(body, long long count, long long base_offset, long long base_timestamp,
                   append_time):
    """The count records of an uncompressed batch body. append_time, when not None, is
    every record's timestamp (a LogAppendTime batch). Raises InvalidRecordError
    (CORRUPT_RECORD) on a record that does not decode."""
    cdef const unsigned char[::1] view = memoryview(body).cast("B")
    cdef Py_ssize_t size = view.shape[0]
    cdef const unsigned char* b = &view[0] if size else NULL
    cdef Py_ssize_t p = 0, start
    cdef long long length, nheaders, i, h, name_len
    cdef list out = []
    cdef list headers
    try:
        for i in range(count):
            length = _get_length(b, size, &p)
            start = p
            p += 1  # record attributes
            ts_delta = _get_int(body, b, size, &p)
            off_delta = _get_int(body, b, size, &p)
            key = _get_blob(b, size, &p)
            value = _get_blob(b, size, &p)
            nheaders = _get_length(b, size, &p)
            headers = []
            for h in range(nheaders):
                name_len = _get_length(b, size, &p)
                if name_len > size - p:
                    raise IndexError("field runs past the end of the batch")
                if name_len > 0:
                    name = PyUnicode_DecodeUTF8(<const char*>b + p, name_len, NULL)
                    p += name_len
                else:
                    name = ""
                headers.append((name, _get_blob(b, size, &p)))
            if p - start != length:
                raise InvalidRecordError("CORRUPT_RECORD", "record length is off")
            timestamp = (append_time if append_time is not None
                         else _add(base_timestamp, ts_delta))
            out.append(_record(_add(base_offset, off_delta), timestamp, key, value,
                               tuple(headers)))
    except (IndexError, ValueError) as exc:
        if isinstance(exc, InvalidRecordError):
            raise
        raise InvalidRecordError("CORRUPT_RECORD", f"undecodable record: {exc}") from exc
    return out
