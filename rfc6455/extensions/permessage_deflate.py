"""permessage-deflate (RFC 7692): negotiation and per-message compression.

Three classes:

* :class:`ServerPerMessageDeflate` -- the server's factory; picks the first
  acceptable offer of the client (RFC 7692 §5, §7.1).
* :class:`ClientPerMessageDeflate` -- the client's factory; makes one or more
  offers and checks that the server's response answers one of them (§7.1).
* :class:`PerMessageDeflate` -- the negotiated extension the engine calls for
  each message (§6, §7.2).

Defaults, and why
-----------------
Measured with ``benchmarks/bench_deflate_memory.py`` (JSON-like messages of
about 600 bytes, context takeover, zlib through CPython):

* ``compress_level=1`` (:data:`DEFAULT_COMPRESS_LEVEL`): 1.5-2.7x the speed
  of level 6 across our runs (20-32 vs 11-16 MB/s compressing) for about 20 %
  more bytes (ratio 0.31 vs 0.26 at 12 bits). A Python server runs out of CPU before
  bandwidth; pass ``compress_level=6`` (or 9) where bytes cost more than CPU.
* ``mem_level=5`` (:data:`DEFAULT_MEM_LEVEL`): same ratio as zlib's default 8
  at level 1 (0.309 vs 0.308) with an 8x smaller hash table.
* The server asks for 12-bit windows both ways (``server_max_window_bits=12``,
  ``client_max_window_bits=12``): at level 1 the ratio is unchanged (0.306 vs
  0.308 with 15 bits) while a server connection holds about 54 KiB instead of
  307 KiB (with memLevel 8 and 15 bits) once both directions compressed.
  ``None`` lifts either limit (15 bits, not announced). The client can only
  be limited when it offered ``client_max_window_bits`` (§7.1.2.2); browsers
  do.
* The client offers ``client_max_window_bits`` without a value, letting the
  server pick our window; it compresses with 15 bits when the server does not.
* zlib's raw deflate cannot use an 8-bit window, so a negotiated 8 compresses
  with 9: zlib never emits a distance beyond ``2**9 - 262`` bytes, which an
  8-bit inflater accepts (tested).
* ``threshold=128`` bytes (:data:`DEFAULT_THRESHOLD`): smaller messages go out
  uncompressed (RSV1 clear, §6), as deflate rarely shrinks them. An explicit
  ``send(..., compress=True/False)`` overrides it for one message.

Memory: zlib objects are created on the first compressed message of each
direction, never at negotiation, so a connection that never compresses costs
nothing. With ``*_no_context_takeover`` the inflater is dropped after each
message (a new one costs a few microseconds). The compressor is dropped too
when small (window + hash tables <= 64 KiB: re-creating it measured no slower
than keeping it); a larger one is kept and ended with ``Z_FULL_FLUSH``, which
forgets the history as a new compressor would (3x cheaper at 15 bits/memLevel
8 than re-creating it), at the price of its memory while idle.

Bounds: :meth:`PerMessageDeflate.decode` never returns more than the room the
engine allows (``max_length``), inflating with zlib's ``max_length`` so a
decompression bomb stops after ``max_length + 1`` bytes (close 1009); corrupt
data fails with 1007.

Final blocks (§7.2.3.4): a peer may end a message's DEFLATE data with a BFINAL
block, as in the RFC's example ``f3 48 cd c9 c9 07 00 00`` ("Hello"). Only empty
stored blocks may follow it in the message (the RFC's trailing ``00`` starts one,
which our appended tail completes); anything else fails with 1007 as soon as it
arrives. The final block ends the stream and its LZ77 window: the next message
is inflated afresh, with or without context takeover.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from ..errors import CloseCode, RemoteProtocolError
from .base import Extension, ExtensionParams, NegotiationError

__all__ = [
    "DEFAULT_COMPRESS_LEVEL",
    "DEFAULT_MEM_LEVEL",
    "DEFAULT_THRESHOLD",
    "ClientPerMessageDeflate",
    "DeflateOffer",
    "PerMessageDeflate",
    "ServerPerMessageDeflate",
]

NAME: Final = "permessage-deflate"
#: zlib level used when none is given; see the module docstring for the measurement.
DEFAULT_COMPRESS_LEVEL: Final = 1
#: zlib memLevel used when none is given.
DEFAULT_MEM_LEVEL: Final = 5
#: Messages shorter than this many bytes are sent uncompressed unless asked otherwise.
DEFAULT_THRESHOLD: Final = 128

# RFC 7692 §7.2.1: the sender removes these 4 bytes (the end of the empty
# stored block that Z_SYNC_FLUSH emits); §7.2.2: the receiver puts them back.
_TAIL: Final = b"\x00\x00\xff\xff"
# A last piece shorter than this gets the tail appended by copying it: one
# decompress() call less (about 0.3 us) is worth more than copying a few KiB.
_JOIN_TAIL_MAX: Final = 4096
_RSV1: Final = 0x40
_SYNC_FLUSH: Final = zlib.Z_SYNC_FLUSH
_FULL_FLUSH: Final = zlib.Z_FULL_FLUSH
_NO_CONTEXT = ("server_no_context_takeover", "client_no_context_takeover")
_WINDOW = ("server_max_window_bits", "client_max_window_bits")
# §7.1.2.1 / §7.1.2.2: a window value is a decimal 8..15 with no leading zero.
_WINDOW_VALUES: Final = {str(bits): bits for bits in range(8, 16)}

# Compressors at most this big (window + hash tables) are re-created rather
# than reset with Z_FULL_FLUSH under no_context_takeover (measured equal cost).
_DROP_COMPRESSOR_BYTES: Final = 64 * 1024


def _check_bits(name: str, value: int | None) -> None:
    if value is not None and (type(value) is not int or not 8 <= value <= 15):
        raise ValueError(f"{name} must be an int from 8 to 15, not {value!r}")


def _check_settings(compress_level: int, mem_level: int, threshold: int) -> None:
    if not -1 <= compress_level <= 9:
        raise ValueError(f"compress_level must be -1..9, not {compress_level}")
    if not 1 <= mem_level <= 9:
        raise ValueError(f"mem_level must be 1..9, not {mem_level}")
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, not {threshold}")


def _skip_empty_stored_blocks(data: bytes) -> bytes | None:
    """``data`` after its whole empty stored blocks; None unless all of it is such blocks.

    An empty stored block at a byte boundary (RFC 1951 §3.2.4) is a header octet
    with BFINAL 0 and BTYPE 00 (its other 5 bits are padding), then LEN 0 and NLEN
    0xffff: ``00 00 ff ff``. The returned rest (under 5 bytes) begins such a block.
    """
    pos = 0
    end = len(data)
    while pos < end:
        block = data[pos:pos + 5]
        if block[0] & 0x07 or not _TAIL.startswith(block[1:]):
            return None
        if len(block) < 5:
            return block
        pos += 5
    return b""


def _after_final_error() -> RemoteProtocolError:
    return RemoteProtocolError("data after the final deflate block",
                               CloseCode.INVALID_FRAME_PAYLOAD_DATA)


# ------------------------------------------------------------------ the extension


class PerMessageDeflate:
    """The negotiated permessage-deflate of one connection (RFC 7692 §6, §7.2).

    ``send_bits``/``recv_bits`` are the LZ77 window sizes for each direction,
    ``send_reset``/``recv_reset`` whether that direction's context is reset
    after each message (``*_no_context_takeover``).
    """

    name = NAME
    rsv_bits = _RSV1  # §6: permessage-deflate owns RSV1 ("Per-Message Compressed")

    __slots__ = ("_after_final", "_compress_level", "_compressor", "_decompressor",
                 "_drop_compressor", "_mem_level", "_send_wbits", "_threshold", "recv_bits",
                 "recv_reset", "send_bits", "send_reset")

    def __init__(
        self,
        *,
        send_bits: int = 15,
        recv_bits: int = 15,
        send_reset: bool = False,
        recv_reset: bool = False,
        compress_level: int = DEFAULT_COMPRESS_LEVEL,
        mem_level: int = DEFAULT_MEM_LEVEL,
        threshold: int = DEFAULT_THRESHOLD,
    ) -> None:
        _check_bits("send_bits", send_bits)
        _check_bits("recv_bits", recv_bits)
        _check_settings(compress_level, mem_level, threshold)
        self.send_bits = send_bits
        self.recv_bits = recv_bits
        self.send_reset = send_reset
        self.recv_reset = recv_reset
        self._compress_level = compress_level
        self._mem_level = mem_level
        self._threshold = threshold
        # zlib rejects an 8-bit raw window; 9 still never emits distances an
        # 8-bit inflater cannot follow (at most 2**9 - 262).
        self._send_wbits = max(send_bits, 9)
        # zlib's deflate state is about 2**(wbits + 2) + 2**(memLevel + 9) bytes.
        self._drop_compressor = (
            (1 << (self._send_wbits + 2)) + (1 << (mem_level + 9)) <= _DROP_COMPRESSOR_BYTES)
        # Created lazily, on the first compressed message of each direction.
        self._compressor: zlib._Compress | None = None
        self._decompressor: zlib._Decompress | None = None
        # Once the peer's message held a final block (BFINAL, §7.2.3.4): the bytes
        # after it not yet making a whole empty stored block (at most 4); else None.
        self._after_final: bytes | None = None

    def __copy__(self) -> PerMessageDeflate:
        """The same negotiated parameters and settings, with no compression state yet.

        A copy never shares a zlib object with the original (one zlib stream
        cannot serve two encoders), e.g. to compress a broadcast frame once.
        """
        return PerMessageDeflate(
            send_bits=self.send_bits, recv_bits=self.recv_bits, send_reset=self.send_reset,
            recv_reset=self.recv_reset, compress_level=self._compress_level,
            mem_level=self._mem_level, threshold=self._threshold)

    @property
    def output_settings(self) -> tuple[int, int, int, int]:
        """What decides the bytes a message compresses to from a fresh state.

        Two connections with ``send_reset`` and equal settings send any message
        as the same frame (RFC 7692 §7.1.1.1), so a broadcast can share it.
        """
        return (self.send_bits, self._compress_level, self._mem_level, self._threshold)

    def __repr__(self) -> str:
        return (f"PerMessageDeflate(send_bits={self.send_bits}, recv_bits={self.recv_bits}, "
                f"send_reset={self.send_reset}, recv_reset={self.recv_reset})")

    # ------------------------------------------------------------ incoming

    def begin_incoming(self, rsv: int) -> bool:
        # §6: RSV1 marks a compressed message; the engine only calls us when an
        # RSV bit is set, and RSV2/RSV3 are not ours.
        return rsv == _RSV1

    def decode(self, data: bytes, final: bool, max_length: int | None) -> bytes:
        """Inflate a piece of a compressed message, at most ``max_length`` bytes out."""
        if self._after_final is not None:
            # The message's DEFLATE data ended with a final block: no more output.
            self._check_after_final(self._after_final + data, final)
            return b""
        inflater = self._decompressor
        if inflater is None:
            # §7.1.2: our inflater's window is the one we negotiated for the peer;
            # a wider stream from the peer fails below with "distance too far back".
            inflater = self._decompressor = zlib.decompressobj(-self.recv_bits)
        limit = 0 if max_length is None else max_length + 1  # zlib: 0 is "no limit"
        try:
            # Ask for one byte more than allowed: getting it proves the message
            # too big, while inflation stops there (a bomb never expands).
            if not final:
                out = inflater.decompress(data, limit)
            elif len(data) < _JOIN_TAIL_MAX:
                # §7.2.2: append 00 00 ff ff after the last piece. Joined to a
                # short piece: one zlib call costs less than copying the piece.
                out = inflater.decompress(data + _TAIL, limit)
            else:
                # Fed on its own after a long piece: no copy of a large payload.
                out = inflater.decompress(data, limit)
                if not limit or len(out) < limit:
                    more = inflater.decompress(_TAIL, limit and limit - len(out))
                    if more:
                        out += more
        except zlib.error as exc:
            self._decompressor = None
            raise RemoteProtocolError(f"invalid compressed data: {exc}",
                                      CloseCode.INVALID_FRAME_PAYLOAD_DATA) from None
        if limit and len(out) >= limit:
            self._decompressor = None
            raise RemoteProtocolError(f"message exceeds {max_length} more bytes once inflated",
                                      CloseCode.MESSAGE_TOO_BIG)
        if inflater.eof:
            # §7.2.3.4: a final block ends the DEFLATE stream, and with it the LZ77
            # context: the next message starts a fresh one. What follows it in this
            # message (zlib's unused_data, with our tail in the last piece) is checked.
            self._decompressor = None
            extra = inflater.unused_data
            if final:
                if extra.endswith(_TAIL):
                    extra = extra[:-4]
                elif _TAIL.endswith(extra):
                    # The final block ended inside our tail (its last bits were zeros
                    # the sender had stripped with the tail, §7.2.1): nothing follows.
                    extra = b""
                else:  # pragma: no cover - the tail is always fed last
                    raise _after_final_error()
            self._check_after_final(extra, final)
        elif final and self.recv_reset:
            # §7.1.1: no context takeover for the peer's messages: start afresh.
            self._decompressor = None
        return out

    def _check_after_final(self, peer_bytes: bytes, final: bool) -> None:
        """Only empty stored blocks may follow a final block (§7.2.3.4's example).

        ``peer_bytes`` are the peer's, without our tail. A block cut between frames
        waits (at most 4 bytes are kept); anything else fails at once with 1007.
        """
        rest = _skip_empty_stored_blocks(peer_bytes)
        if rest is not None and final and rest:
            # The RFC's example: the last block's LEN and NLEN are our 00 00 ff ff.
            rest = _skip_empty_stored_blocks(rest + _TAIL)
            if rest:
                rest = None
        if rest is None:
            self._after_final = None
            raise _after_final_error()
        self._after_final = None if final else rest

    # ------------------------------------------------------------ outgoing

    def begin_outgoing(self, size: int | None, compress: bool | None) -> int:
        if compress is None:
            # Small whole messages rarely shrink; a message sent in parts is
            # compressed, its size being unknown (§6 lets us choose per message).
            compress = size is None or size >= self._threshold
        return _RSV1 if compress else 0

    def encode(self, data: bytes, final: bool) -> bytes:
        """Deflate a piece of a message; the last piece loses its 00 00 ff ff (§7.2.1)."""
        deflater = self._compressor
        if deflater is None:
            deflater = self._compressor = zlib.compressobj(
                self._compress_level, zlib.DEFLATED, -self._send_wbits, self._mem_level)
        if not final:
            # §7.2.1: Z_SYNC_FLUSH ends the piece on a byte boundary, so it can go
            # out in a frame at once; the tail stays (it is not the message's end).
            return deflater.compress(data) + deflater.flush(_SYNC_FLUSH)
        reset = self.send_reset
        # §7.1.1 with a kept compressor: Z_FULL_FLUSH forgets the history and ends
        # with the same empty stored block (00 00 ff ff) as Z_SYNC_FLUSH.
        keep_and_forget = reset and not self._drop_compressor
        out = deflater.compress(data) + deflater.flush(
            _FULL_FLUSH if keep_and_forget else _SYNC_FLUSH)
        if reset and self._drop_compressor:
            self._compressor = None  # §7.1.1: a fresh compressor next message
        if out.endswith(_TAIL):
            out = out[:-4]  # §7.2.1
        # §7.2.3.6: an empty final piece still needs a deflate block (an empty
        # stored block whose tail we stripped is the single byte 0x00).
        return out or b"\x00"


# ------------------------------------------------------------------ negotiation


def _parse(params: ExtensionParams, *, response: bool) -> dict[str, int | bool]:
    """Validate one parameter set (§7): known names, no repeats, values 8..15.

    Returns ``{name: True}`` for flags and value-less ``client_max_window_bits``,
    ``{name: bits}`` for windows.
    """
    seen: dict[str, int | bool] = {}
    for key, value in params:
        if key in seen:
            raise NegotiationError(f"duplicate parameter {key}")  # §7
        if key in _NO_CONTEXT:
            if value is not None:
                raise NegotiationError(f"{key} takes no value")  # §7.1.1.1, §7.1.1.2
            seen[key] = True
        elif key in _WINDOW:
            if value is None:
                # §7.1.2.2: only an offer's client_max_window_bits may have no value;
                # §7.1.2.1: server_max_window_bits always has one.
                if key == "server_max_window_bits" or response:
                    raise NegotiationError(f"{key} needs a value")
                seen[key] = True
            else:
                bits = _WINDOW_VALUES.get(value)
                if bits is None:
                    raise NegotiationError(f"{key}={value!r} is not 8..15")
                seen[key] = bits
        else:
            raise NegotiationError(f"unknown parameter {key}")  # §7
    return seen


@dataclass(frozen=True, slots=True)
class DeflateOffer:
    """One parameter set a client offers (RFC 7692 §7.1).

    ``client_max_window_bits=True`` offers the parameter without a value: "the
    server may limit my window". An int is a limit the client sets on itself.
    """

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int | None = None
    client_max_window_bits: int | bool | None = True

    def __post_init__(self) -> None:
        _check_bits("server_max_window_bits", self.server_max_window_bits)
        if not isinstance(self.client_max_window_bits, bool):
            _check_bits("client_max_window_bits", self.client_max_window_bits)

    def params(self) -> ExtensionParams:
        """The offer as extension parameters, in the RFC's order."""
        out: list[tuple[str, str | None]] = []
        if self.server_no_context_takeover:
            out.append(("server_no_context_takeover", None))
        if self.client_no_context_takeover:
            out.append(("client_no_context_takeover", None))
        if self.server_max_window_bits is not None:
            out.append(("server_max_window_bits", str(self.server_max_window_bits)))
        if self.client_max_window_bits is True:
            out.append(("client_max_window_bits", None))
        elif self.client_max_window_bits is not False and self.client_max_window_bits is not None:
            out.append(("client_max_window_bits", str(self.client_max_window_bits)))
        return tuple(out)

    def check_response(self, response: dict[str, int | bool]) -> tuple[int, int, bool, bool]:
        """(send_bits, recv_bits, send_reset, recv_reset) if ``response`` answers this offer.

        Raises NegotiationError otherwise (§7.1.1.1, §7.1.2.1, §7.1.2.2).
        """
        recv_reset = bool(response.get("server_no_context_takeover"))
        if self.server_no_context_takeover and not recv_reset:
            # §7.1.1.1: the server accepts this offer only by echoing the parameter.
            raise NegotiationError("server_no_context_takeover offered but not accepted")
        # §7.1.1.2: client_no_context_takeover in the offer is a promise we keep anyway.
        send_reset = self.client_no_context_takeover or bool(
            response.get("client_no_context_takeover"))
        server_bits = response.get("server_max_window_bits")
        if self.server_max_window_bits is not None:
            # §7.1.2.1: accepted only with the same or a smaller value.
            if server_bits is None:
                raise NegotiationError("server_max_window_bits offered but not accepted")
            if int(server_bits) > self.server_max_window_bits:
                raise NegotiationError(f"server_max_window_bits={server_bits} exceeds "
                                       f"the offered {self.server_max_window_bits}")
        recv_bits = 15 if server_bits is None else int(server_bits)
        client_bits = response.get("client_max_window_bits")
        offered = self.client_max_window_bits
        if client_bits is not None and (offered is None or offered is False):
            # §7.1.2.2: a response must not limit a window the client did not offer to limit.
            raise NegotiationError("client_max_window_bits in the response was not offered")
        send_bits = 15 if client_bits is None else int(client_bits)
        if isinstance(offered, int) and not isinstance(offered, bool):
            # Our own hint limits us whatever the server answered (§7.1.2.2).
            send_bits = min(send_bits, offered)
        return send_bits, recv_bits, send_reset, recv_reset


class ClientPerMessageDeflate:
    """Client factory: offers permessage-deflate and validates the answer (RFC 7692 §7.1).

    The keyword parameters form the preferred offer (see :class:`DeflateOffer`);
    ``fallback_offers`` are sent after it, in order, for servers that decline
    the first (§5: the server picks one). ``compress_level``, ``mem_level``
    and ``threshold`` are local settings, never negotiated.
    """

    name = NAME

    def __init__(
        self,
        *,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: int | None = None,
        client_max_window_bits: int | bool | None = True,
        fallback_offers: Sequence[DeflateOffer] = (),
        compress_level: int = DEFAULT_COMPRESS_LEVEL,
        mem_level: int = DEFAULT_MEM_LEVEL,
        threshold: int = DEFAULT_THRESHOLD,
    ) -> None:
        _check_settings(compress_level, mem_level, threshold)
        self._offers = (DeflateOffer(server_no_context_takeover, client_no_context_takeover,
                                     server_max_window_bits, client_max_window_bits),
                        *fallback_offers)
        self._compress_level = compress_level
        self._mem_level = mem_level
        self._threshold = threshold

    def offers(self) -> list[ExtensionParams]:
        return [offer.params() for offer in self._offers]

    def accept(self, params: ExtensionParams) -> Extension:
        """The extension for the server's response, or NegotiationError (engine: 1010)."""
        response = _parse(params, response=True)
        reasons = []
        for offer in self._offers:
            try:
                send_bits, recv_bits, send_reset, recv_reset = offer.check_response(response)
            except NegotiationError as exc:
                reasons.append(str(exc))
                continue
            return PerMessageDeflate(
                send_bits=send_bits, recv_bits=recv_bits, send_reset=send_reset,
                recv_reset=recv_reset, compress_level=self._compress_level,
                mem_level=self._mem_level, threshold=self._threshold)
        raise NegotiationError("the response answers none of the offers: " + "; ".join(reasons))


class ServerPerMessageDeflate:
    """Server factory: accepts the first valid offer of the client (RFC 7692 §7.1).

    * ``server_no_context_takeover`` / ``client_no_context_takeover``: always
      reset that direction's context, and say so in the response, even when
      the client did not ask (both allowed by §7.1.1.1 and §7.1.1.2).
    * ``server_max_window_bits`` (default 12): the largest window we compress
      with, announced in the response; the client's offer may lower it
      (§7.1.2.1). ``None``: 15 bits unless the client asks for less.
    * ``client_max_window_bits`` (default 12): the window we ask the client to
      use, so our inflater needs less memory. Only possible when the client
      offered the parameter (§7.1.2.2); otherwise the offer is still accepted
      and the client's messages are inflated with a 15-bit window. ``None``:
      accept the client's own hint, if any, else 15 bits.

    An offer with an unknown or repeated parameter or a value out of 8..15 is
    declined and the next one tried (§7); when none is valid, the handshake
    goes on without the extension.
    """

    name = NAME

    def __init__(
        self,
        *,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: int | None = 12,
        client_max_window_bits: int | None = 12,
        compress_level: int = DEFAULT_COMPRESS_LEVEL,
        mem_level: int = DEFAULT_MEM_LEVEL,
        threshold: int = DEFAULT_THRESHOLD,
    ) -> None:
        _check_bits("server_max_window_bits", server_max_window_bits)
        _check_bits("client_max_window_bits", client_max_window_bits)
        _check_settings(compress_level, mem_level, threshold)
        self._server_no_context_takeover = server_no_context_takeover
        self._client_no_context_takeover = client_no_context_takeover
        self._server_max_window_bits = server_max_window_bits
        self._client_max_window_bits = client_max_window_bits
        self._compress_level = compress_level
        self._mem_level = mem_level
        self._threshold = threshold

    def negotiate(self, offers: list[ExtensionParams]) -> tuple[ExtensionParams, Extension] | None:
        for params in offers:
            try:
                offer = _parse(params, response=False)
            except NegotiationError:
                continue  # §7: decline this offer, consider the next
            return self._answer(offer)
        return None

    def _answer(self, offer: dict[str, int | bool]) -> tuple[ExtensionParams, Extension]:
        response: list[tuple[str, str | None]] = []
        send_reset = self._server_no_context_takeover or "server_no_context_takeover" in offer
        if send_reset:
            response.append(("server_no_context_takeover", None))  # §7.1.1.1
        recv_reset = self._client_no_context_takeover or "client_no_context_takeover" in offer
        if recv_reset:
            # §7.1.1.2: echoing it lets us drop our inflater between messages.
            response.append(("client_no_context_takeover", None))
        send_bits = self._server_max_window_bits or 15
        offered = offer.get("server_max_window_bits")
        if offered is not None:
            send_bits = min(send_bits, int(offered))
        if offered is not None or self._server_max_window_bits is not None:
            # §7.1.2.1: an offered limit must be answered with the same or a smaller value.
            response.append(("server_max_window_bits", str(send_bits)))
        recv_bits = 15
        client_offer = offer.get("client_max_window_bits")
        if client_offer is not None:
            limit = self._client_max_window_bits
            if client_offer is not True:
                # The client's own hint: answering it lets our inflater use less memory.
                limit = int(client_offer) if limit is None else min(limit, int(client_offer))
            if limit is not None:
                recv_bits = limit
                response.append(("client_max_window_bits", str(limit)))  # §7.1.2.2
        extension = PerMessageDeflate(
            send_bits=send_bits, recv_bits=recv_bits, send_reset=send_reset,
            recv_reset=recv_reset, compress_level=self._compress_level,
            mem_level=self._mem_level, threshold=self._threshold)
        return tuple(response), extension
