"""Pub/sub engines: the boundary between this process's fan-out and
whatever carries messages further (SPEC-PubSub.md section 6).

Owns: what an engine is (``EngineLike``; ``Engine``, the base class), the
two built-in ones (``ProcessEngine``: this process; ``ClusterEngine``: every
process of this server, sequenced by the master), and the one way a message
enters this process's fan-out (``publish_local``, with an id when a
sequencer gave one). The Redis engine is iodine_py/redis_engine.py; the
management (attach, default, the live channel set) is iodine_py/pubsub.py.

Must never: block or raise into the server from subscribe/unsubscribe
(the contract), or import pubsub.py (which imports this).
"""
from __future__ import annotations

from typing import Any, Literal, Optional, Protocol, Tuple, Union

from ._native import ffi, lib
from .log import logger

Message = Union[str, bytes]


def _name(channel: Union[str, bytes]) -> bytes:
    if type(channel) is str:
        return channel.encode("utf-8", "surrogateescape")
    if isinstance(channel, (bytes, bytearray, memoryview)):
        return bytes(channel)
    raise TypeError(f"channel must be str or bytes, not {type(channel).__name__}")


def _payload(message: Any) -> Tuple[bytes, int]:
    if type(message) is str:
        return message.encode("utf-8"), 1
    if isinstance(message, (bytes, bytearray, memoryview)):
        return bytes(message), 0
    raise TypeError(f"message must be str or bytes, not {type(message).__name__}")


def parse_id(text: Union[str, bytes]) -> Optional[Any]:
    """A ``ps_id *`` for a canonical "ms-seq" id, or None."""
    raw = text.encode("latin-1", "replace") if isinstance(text, str) else bytes(text)
    out = ffi.new("ps_id *")
    if lib.ps_id_parse(raw, len(raw), out) != 0:
        return None
    return out


def format_id(ms: int, seq: int) -> Optional[str]:
    """"ms-seq", or None for the "no id" value 0-0."""
    return f"{ms}-{seq}" if ms or seq else None


class EngineLike(Protocol):
    """What the server needs of an engine (subclassing Engine is optional):
    it calls subscribe/unsubscribe with (channel, pattern) and publish with
    (channel, message); their results are not used."""

    def subscribe(self, __channel: str, __pattern: bool) -> Any: ...

    def unsubscribe(self, __channel: str, __pattern: bool) -> Any: ...

    def publish(self, __channel: str, __message: Message) -> Any: ...


#: ``engine=`` of publish: an engine, None (the default engine) or False
#: (this process only).
EngineArg = Union[EngineLike, None, Literal[False]]


_NO_ID = ffi.new("ps_id *")[0]


def publish_local(channel: Union[str, bytes], message: Message,
                  id: Optional[str] = None) -> bool:
    """Deliver to this process's subscribers only: with no id (this
    process alone is not the deployment's sequencer), or with the `id` an
    engine's sequencer gave the message (then it is kept in history)."""
    name = _name(channel)
    data, text = _payload(message)
    if id is None:
        pid = _NO_ID
    else:
        parsed = parse_id(id)
        if parsed is None:
            raise ValueError(f"a message id is 'ms-seq' (decimal), not {id!r}")
        pid = parsed[0]
    lib.srv_init()
    rc: int = lib.ps_publish_id(name, len(name), data, len(data), text, pid)
    return rc >= 0


class Engine:
    """Base class for pub/sub engines: override what you need.

    ``subscribe``/``unsubscribe`` are told of this process's channels (never
    raise from them); ``publish`` sends a message to wherever the engine
    reaches. ``deliver`` is the way back in for messages the engine
    receives."""

    def subscribe(self, channel: str, pattern: bool = False) -> bool:
        return True

    def unsubscribe(self, channel: str, pattern: bool = False) -> bool:
        return True

    def publish(self, channel: str, message: Message) -> bool:
        raise NotImplementedError

    @staticmethod
    def deliver(channel: Union[str, bytes], message: Message, id: Optional[str] = None) -> bool:
        """Hand a received message to every subscriber in this process;
        `id` ("ms-seq"): the id the engine's sequencer gave it."""
        return publish_local(channel, message, id)

    @staticmethod
    def deliver_to(subscription: Union[str, bytes], pattern: bool,
                   channel: Union[str, bytes], message: Message) -> bool:
        """Hand a received message only to the subscribers of one channel
        or pattern: for brokers that, like Redis, report a message once per
        matching subscription (so a client subscribed to a channel and a
        pattern that both match gets it once per subscription, as locally)."""
        sub = _name(subscription)
        name = _name(channel)
        data, text = _payload(message)
        rc: int = lib.ps_deliver(sub, len(sub), int(bool(pattern)), name, len(name),
                                 data, len(data), text)
        return rc >= 0


class ProcessEngine(Engine):
    """This process only."""

    def publish(self, channel: str, message: Message) -> bool:
        return publish_local(channel, message)

    def __repr__(self) -> str:
        return "<iodine PubSub.PROCESS>"


class ClusterEngine(Engine):
    """Every process of this server: the workers and the master.

    The master is the sequencer: a worker's publish goes to the master,
    which stamps its id and relays it to every worker, the publisher
    included (ext/cluster.c); each delivers it on receipt, so every worker
    sees one order and one id. In a single process, this process stamps
    the id and delivers at once."""

    def publish(self, channel: str, message: Message) -> bool:
        name = _name(channel)
        data, text = _payload(message)
        lib.srv_init()
        rc = lib.cl_publish(name, len(name), data, len(data), text)
        if rc == -1:  # no cluster: this process is the sequencer
            lib.ps_publish(name, len(name), data, len(data), text)
            return True
        if rc == -2:
            # not delivered anywhere, this process included
            logger.warning("pub/sub: a %d-byte message to %r could not be relayed through "
                           "the master (too large, the relay is backed up, or the master "
                           "is gone)", len(data), channel)
            return False
        return True

    def __repr__(self) -> str:
        return "<iodine PubSub.CLUSTER>"
