from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StoreGetRequest(_message.Message):
    __slots__ = ("application_id", "store", "key", "partition")
    APPLICATION_ID_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    application_id: str
    store: str
    key: bytes
    partition: int
    def __init__(self, application_id: _Optional[str] = ..., store: _Optional[str] = ..., key: _Optional[bytes] = ..., partition: _Optional[int] = ...) -> None: ...

class StoreGetResponse(_message.Message):
    __slots__ = ("found", "value")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    found: bool
    value: bytes
    def __init__(self, found: _Optional[bool] = ..., value: _Optional[bytes] = ...) -> None: ...

class StoreRangeRequest(_message.Message):
    __slots__ = ("application_id", "store", "lo", "hi")
    APPLICATION_ID_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    LO_FIELD_NUMBER: _ClassVar[int]
    HI_FIELD_NUMBER: _ClassVar[int]
    application_id: str
    store: str
    lo: bytes
    hi: bytes
    def __init__(self, application_id: _Optional[str] = ..., store: _Optional[str] = ..., lo: _Optional[bytes] = ..., hi: _Optional[bytes] = ...) -> None: ...

class StoreKeyValue(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: bytes
    value: bytes
    def __init__(self, key: _Optional[bytes] = ..., value: _Optional[bytes] = ...) -> None: ...

class StoreRangeResponse(_message.Message):
    __slots__ = ("pairs",)
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    pairs: _containers.RepeatedCompositeFieldContainer[StoreKeyValue]
    def __init__(self, pairs: _Optional[_Iterable[_Union[StoreKeyValue, _Mapping]]] = ...) -> None: ...
