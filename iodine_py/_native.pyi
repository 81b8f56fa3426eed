"""Types of the cffi-generated extension ``iodine_py._native``.

cffi writes no stubs. ``lib`` holds the C functions and constants declared by
the cdef in ``_build.py`` (cffi pointers and ints: typed loosely); ``ffi``
has the few methods this package calls, with ``def_extern`` typed so the
functions it registers keep their signatures.
"""
from typing import Any, Callable, TypeVar

_F = TypeVar("_F", bound=Callable[..., Any])

class FFI:
    NULL: Any
    def def_extern(self, name: str = ..., onerror: Any = ...,
                   error: Any = ...) -> Callable[[_F], _F]: ...
    def cast(self, cdecl: str, value: Any) -> Any: ...
    def new(self, cdecl: str, init: Any = ...) -> Any: ...
    def unpack(self, cdata: Any, length: int) -> Any: ...
    def string(self, cdata: Any, maxlen: int = ...) -> Any: ...
    def __getattr__(self, name: str) -> Any: ...

ffi: FFI
lib: Any
