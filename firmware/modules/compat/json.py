"""`loads` and `dumps` with the json module's defaults, without importing json on CPython.

CPython's json.decoder, json.scanner and json.encoder import re and compile their patterns at import: with
enum and re's compiler that was 97 ms of the init's start on arm64 under TCG, before it could read a manifest.
The work is done by CPython's C scanner and encoder (_json) either way; here they get the settings json's
default decoder and encoder give them. Anything unusual (a BOM, UTF-16/32 bytes, an error to report) goes
through json itself, so results and messages are json's. MicroPython (no _json) uses its own json module."""

try:
    import _json
except ImportError:  # MicroPython; a CPython built without the accelerator
    _json = None

_WS = " \t\n\r"


class _Defaults:
    """The attributes _json.make_scanner reads, as json.JSONDecoder() sets them."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__


def _not_serializable(o):
    raise TypeError("Object of type %s is not JSON serializable" % type(o).__name__)


if _json is not None:
    try:
        _scan = _json.make_scanner(_Defaults())
        _encode = _json.encode_basestring_ascii
        _make_encoder = _json.make_encoder
    except (AttributeError, TypeError):  # an interpreter whose accelerator differs: json does it all
        _json = None


def loads(s):
    """json.loads(s) for str, bytes or bytearray."""
    if _json is None:
        return _stdlib().loads(s)
    if not isinstance(s, str):
        if s[:3] == b"\xef\xbb\xbf" or b"\0" in s[:4]:  # json's encoding detection, and its BOM error
            return _stdlib().loads(s)
        s = s.decode("utf-8", "surrogatepass")
    start = len(s) - len(s.lstrip(_WS))
    try:
        obj, end = _scan(s, start)
    except StopIteration:  # no value at all: json's "Expecting value" error
        return _stdlib().loads(s)
    if s[end:].strip(_WS):  # json's "Extra data" error
        return _stdlib().loads(s)
    return obj


def dumps(obj):
    """json.dumps(obj) with its defaults (ASCII, ", " and ": ", NaN allowed, circular references refused)."""
    if _json is None:
        return _stdlib().dumps(obj)
    if isinstance(obj, str):
        return _encode(obj)
    return "".join(_make_encoder({}, _not_serializable, _encode, None, ": ", ", ", False, False, True)(obj, 0))


def _stdlib():
    """The json module itself (this one is compat.json), imported when it is needed."""
    import json

    return json
