/* Optional accelerator for rfc6455: masking (RFC 6455 §5.3), the parser's fast path
 * for whole small frames (§5.2), UTF-8 text events (§8.1) and the engine's
 * per-message methods.
 *
 * mask(data, key) -> bytes         same contract as rfc6455._mask.mask_python
 * mask_inplace(buffer, key) -> None  XOR a writable buffer (bytearray, memoryview) in place
 * read_frame(buf, pos, client, limit) -> (event, stop) | None
 *     the parser's fast path for one whole small data frame (see below)
 * next_frame(connection) -> event | None
 *     the same on an engine's own buffer, moving its position
 * text_event(data) -> Text | None    a Text event from UTF-8 bytes, None if invalid
 * masked_frame(first, payload, key) -> bytes   a whole client frame in one allocation
 * engine_type(open_state, fallbacks, docs, key_pool, new_key) -> type
 *     the engine's base class: its state as declared members, and the methods
 *     adapters call per message (deliver_messages, send, receive_data, next_event,
 *     data_to_send_parts; state, input_pending, buffered_bytes, has_data_to_send)
 *     doing their common case in C, the Python engine (_core.PythonEngine) the rest
 * FutureWait(driver, future)    awaits a future (the asyncio reader's wait for a message)
 *
 * Masking is a XOR with the 4-byte key repeated, so it is its own inverse. The
 * loop works on 16- or 32-byte vectors (GCC/Clang vector extensions: SSE2 on
 * every x86-64, AVX2 picked at run time when the CPU has it, NEON on arm64) and
 * falls back to 8-byte words elsewhere. Building this module is optional:
 * setup.py tolerates a failure and rfc6455 then uses the pure-Python code.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define RFC6455_VECTORS 1
typedef uint8_t v16u8 __attribute__((vector_size(16)));
#endif

#if defined(RFC6455_VECTORS) && (defined(__x86_64__) || defined(__i386__)) \
    && !defined(__INTEL_COMPILER)
#define RFC6455_AVX2 1
#include <immintrin.h>
typedef uint8_t v32u8 __attribute__((vector_size(32)));
#endif

/* The key rotated so that byte 0 applies to the first byte of the buffer. */
static void
fill_key(uint8_t *pattern, size_t pattern_size, const uint8_t *key)
{
    for (size_t i = 0; i < pattern_size; i++) {
        pattern[i] = key[i & 3];
    }
}

/* Tail and fallback: 8-byte words, then single bytes. Vector widths are
 * multiples of 4, so the key phase is still 0 when this runs. */
static void
xor_words(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t *key)
{
    uint8_t pattern[8];
    uint64_t word, key64;
    size_t i = 0;

    fill_key(pattern, 8, key);
    memcpy(&key64, pattern, 8);
    for (; i + 8 <= n; i += 8) {
        memcpy(&word, src + i, 8);
        word ^= key64;
        memcpy(dst + i, &word, 8);
    }
    for (; i < n; i++) {
        dst[i] = src[i] ^ key[i & 3];
    }
}

#ifdef RFC6455_VECTORS
static void
xor_v16(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t *key)
{
    uint8_t pattern[16];
    v16u8 k, a, b;
    size_t i = 0;

    fill_key(pattern, 16, key);
    memcpy(&k, pattern, 16);
    /* Two vectors per iteration keep both load ports busy. memcpy compiles to
     * unaligned vector loads and stores. */
    for (; i + 32 <= n; i += 32) {
        memcpy(&a, src + i, 16);
        memcpy(&b, src + i + 16, 16);
        a ^= k;
        b ^= k;
        memcpy(dst + i, &a, 16);
        memcpy(dst + i + 16, &b, 16);
    }
    for (; i + 16 <= n; i += 16) {
        memcpy(&a, src + i, 16);
        a ^= k;
        memcpy(dst + i, &a, 16);
    }
    xor_words(dst + i, src + i, n - i, key);
}
#endif

#ifdef RFC6455_AVX2
__attribute__((target("avx2"))) static void
xor_v32(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t *key)
{
    uint8_t pattern[32];
    v32u8 k, a, b;
    size_t i = 0;

    fill_key(pattern, 32, key);
    memcpy(&k, pattern, 32);
    for (; i + 64 <= n; i += 64) {
        memcpy(&a, src + i, 32);
        memcpy(&b, src + i + 32, 32);
        a ^= k;
        b ^= k;
        memcpy(dst + i, &a, 32);
        memcpy(dst + i + 32, &b, 32);
    }
    for (; i + 32 <= n; i += 32) {
        memcpy(&a, src + i, 32);
        a ^= k;
        memcpy(dst + i, &a, 32);
    }
    /* Clear the upper halves of the YMM registers before leaving AVX code. GCC
     * omits its own vzeroupper before the tail call below, and dirty upper
     * state slows every later SSE instruction of the process (zlib's, among
     * others): measured 13-15 % slower deflate after masking until cleared. */
    _mm256_zeroupper();
    xor_v16(dst + i, src + i, n - i, key);
}

static int have_avx2 = 0;
#endif

static void
xor_key(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t *key)
{
#ifdef RFC6455_AVX2
    if (have_avx2 && n >= 64) {
        xor_v32(dst, src, n, key);
        return;
    }
#endif
#ifdef RFC6455_VECTORS
    xor_v16(dst, src, n, key);
#else
    xor_words(dst, src, n, key);
#endif
}

/* Payloads at least this large are masked with the GIL released: the loop
 * touches no Python object, and other threads can run meanwhile. */
#define RELEASE_GIL_THRESHOLD (512 * 1024)

/* xor_key for a buffer the caller owns, with the GIL released when it is large. */
static void
xor_key_unlocked(uint8_t *dst, const uint8_t *src, Py_ssize_t n, const uint8_t *key)
{
    if (n >= RELEASE_GIL_THRESHOLD) {
        Py_BEGIN_ALLOW_THREADS
        xor_key(dst, src, (size_t)n, key);
        Py_END_ALLOW_THREADS
    }
    else if (n > 0) {
        xor_key(dst, src, (size_t)n, key);
    }
}

static int
get_key(PyObject *obj, uint8_t key[4])
{
    Py_buffer view;

    if (PyObject_GetBuffer(obj, &view, PyBUF_SIMPLE) < 0) {
        return -1;
    }
    if (view.len != 4) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "the masking key must be 4 bytes");
        return -1;
    }
    memcpy(key, view.buf, 4);
    PyBuffer_Release(&view);
    return 0;
}

PyDoc_STRVAR(mask_doc,
"mask(data, key, /)\n--\n\n"
"Return ``data`` XORed with the 4-byte ``key`` repeated (RFC 6455 section 5.3).\n"
"``data`` is any bytes-like object; the result is a new ``bytes``.");

static PyObject *
speedups_mask(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer data;
    uint8_t key[4];
    PyObject *result;

    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "mask() takes exactly 2 arguments");
        return NULL;
    }
    if (get_key(args[1], key) < 0) {
        return NULL;
    }
    /* Contiguous buffers only, like bytes(data) would require in the fallback. */
    if (PyObject_GetBuffer(args[0], &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    result = PyBytes_FromStringAndSize(NULL, data.len);
    if (result != NULL) {
        xor_key_unlocked((uint8_t *)PyBytes_AS_STRING(result), (const uint8_t *)data.buf,
                         data.len, key);
    }
    PyBuffer_Release(&data);
    return result;
}

/* A whole frame in one new bytes object: the first byte, the §5.2 minimal
 * length encoding, then the payload as is, or -- with a ``key`` (a client,
 * §5.3) -- the key and the payload masked with it. */
static PyObject *
new_frame(uint8_t first, const uint8_t *payload, Py_ssize_t length, const uint8_t *key)
{
    Py_ssize_t header = length < 126 ? 2 : length < 65536 ? 4 : 10;
    uint8_t mask_bit = key != NULL ? 0x80 : 0;
    PyObject *result = PyBytes_FromStringAndSize(NULL, header + (key ? 4 : 0) + length);
    uint8_t *dst;

    if (result == NULL) {
        return NULL;
    }
    dst = (uint8_t *)PyBytes_AS_STRING(result);
    dst[0] = first;
    if (header == 2) {
        dst[1] = mask_bit | (uint8_t)length;
    }
    else if (header == 4) {
        dst[1] = mask_bit | 126;
        dst[2] = (uint8_t)(length >> 8);
        dst[3] = (uint8_t)length;
    }
    else {
        uint64_t wide = (uint64_t)length;
        dst[1] = mask_bit | 127;
        for (int i = 9; i >= 2; i--) {
            dst[i] = (uint8_t)wide;
            wide >>= 8;
        }
    }
    if (key == NULL) {
        memcpy(dst + header, payload, (size_t)length);
    }
    else {
        memcpy(dst + header, key, 4);
        xor_key_unlocked(dst + header + 4, payload, length, key);
    }
    return result;
}

PyDoc_STRVAR(masked_frame_doc,
"masked_frame(first, payload, key, /)\n--\n\n"
"A whole masked frame (RFC 6455 section 5.2, client role): the first byte\n"
"``first`` (FIN, RSV bits, opcode), the mask bit with the minimal length encoding,\n"
"``key``, then ``payload`` XORed with it; one allocation, no intermediate copies.");

static PyObject *
speedups_masked_frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer data;
    uint8_t key[4];
    long first;
    PyObject *result;

    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "masked_frame() takes exactly 3 arguments");
        return NULL;
    }
    first = PyLong_AsLong(args[0]);
    if (first == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (first < 0 || first > 255) {
        PyErr_SetString(PyExc_ValueError, "the first byte must be in 0..255");
        return NULL;
    }
    if (get_key(args[2], key) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    result = new_frame((uint8_t)first, (const uint8_t *)data.buf, data.len, key);
    PyBuffer_Release(&data);
    return result;
}

PyDoc_STRVAR(mask_join_doc,
"mask_join(parts, key, /)\n--\n\n"
"Return the concatenation of the bytes-like objects in the list ``parts``, XORed\n"
"with ``key`` repeated from the first byte: ``mask(b''.join(parts), key)`` in one\n"
"pass, without the intermediate copy (a frame received in several reads).");

static PyObject *
speedups_mask_join(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    uint8_t key[4], rotated[4];
    PyObject *parts, *result;
    Py_ssize_t count, i, total = 0, done = 0;

    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "mask_join() takes exactly 2 arguments");
        return NULL;
    }
    parts = args[0];
    if (!PyList_CheckExact(parts)) {
        PyErr_SetString(PyExc_TypeError, "mask_join() expects a list");
        return NULL;
    }
    if (get_key(args[1], key) < 0) {
        return NULL;
    }
    count = PyList_GET_SIZE(parts);
    /* Sizes first (a part is bytes or a memoryview over bytes: the list and its
     * items cannot change while no Python code runs). */
    for (i = 0; i < count; i++) {
        Py_buffer view;
        if (PyObject_GetBuffer(PyList_GET_ITEM(parts, i), &view, PyBUF_SIMPLE) < 0) {
            return NULL;
        }
        total += view.len;
        PyBuffer_Release(&view);
    }
    result = PyBytes_FromStringAndSize(NULL, total);
    if (result == NULL) {
        return NULL;
    }
    for (i = 0; i < count; i++) {
        Py_buffer view;
        int phase = (int)(done & 3);
        if (PyObject_GetBuffer(PyList_GET_ITEM(parts, i), &view, PyBUF_SIMPLE) < 0) {
            Py_DECREF(result);
            return NULL;
        }
        if (view.len > total - done) {  /* cannot happen with immutable parts */
            PyBuffer_Release(&view);
            Py_DECREF(result);
            PyErr_SetString(PyExc_RuntimeError, "mask_join(): a part grew");
            return NULL;
        }
        /* §5.3: byte j of the payload is XORed with key[j % 4]; this part starts
         * at payload offset `done`. */
        for (int j = 0; j < 4; j++) {
            rotated[j] = key[(phase + j) & 3];
        }
        xor_key((uint8_t *)PyBytes_AS_STRING(result) + done, (const uint8_t *)view.buf,
                (size_t)view.len, rotated);
        done += view.len;
        PyBuffer_Release(&view);
    }
    return result;
}

PyDoc_STRVAR(mask_inplace_doc,
"mask_inplace(buffer, key, /)\n--\n\n"
"XOR the writable ``buffer`` (bytearray, writable memoryview) with ``key`` repeated,\n"
"in place.");

static PyObject *
speedups_mask_inplace(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer data;
    uint8_t key[4];

    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "mask_inplace() takes exactly 2 arguments");
        return NULL;
    }
    if (get_key(args[1], key) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &data, PyBUF_WRITABLE) < 0) {
        return NULL;
    }
    xor_key_unlocked((uint8_t *)data.buf, (const uint8_t *)data.buf, data.len, key);
    PyBuffer_Release(&data);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ read_frame
 *
 * The pure-Python parser (_core.Connection._read) has a fast path for a whole,
 * unfragmented text or binary frame without RSV bits; read_frame does the same
 * in one call, for every length form (7, 16 and 64 bits). It returns None for anything else --
 * a control frame, a fragment, a frame not complete in the buffer, a mask bit
 * the role forbids (§5.1), a payload over the limit, invalid UTF-8 -- and the
 * Python code then handles the frame, errors included, exactly as without the
 * accelerator. So this function has no behaviour of its own: only speed.
 *
 * Events are built without running the dataclass __init__ when the event types
 * are the expected frozen slotted dataclasses with fields (data, final=True):
 * the two slots are filled directly, which is what __init__ does through
 * object.__setattr__. Any other shape of the types falls back to calling them.
 */

typedef struct {
    PyTypeObject *type;
    Py_ssize_t data_offset;
    Py_ssize_t final_offset;
} EventType;

static EventType text_event = {NULL, -1, -1};
static EventType binary_event = {NULL, -1, -1};

static Py_ssize_t
member_offset(PyTypeObject *type, const char *name)
{
    PyObject *descr = PyDict_GetItemString(type->tp_dict, name);  /* borrowed */
    PyMemberDef *member;

    if (descr == NULL || Py_TYPE(descr) != &PyMemberDescr_Type) {
        return -1;
    }
    member = ((PyMemberDescrObject *)descr)->d_member;
    if (member->type != T_OBJECT_EX || (member->flags & READONLY)) {
        return -1;
    }
    return member->offset;
}

/* Whether ``type`` is a slotted dataclass whose fields are exactly
 * ``data`` (no default) and ``final`` (default True), with no __post_init__. */
static int
is_plain_event_type(PyTypeObject *type)
{
    PyObject *fields, *keys = NULL, *expected = NULL, *final_field, *default_value;
    int ok = 0;

    if (type->tp_new != PyBaseObject_Type.tp_new || type->tp_itemsize != 0
        || PyObject_HasAttrString((PyObject *)type, "__post_init__")) {
        return 0;
    }
    fields = PyObject_GetAttrString((PyObject *)type, "__dataclass_fields__");
    if (fields == NULL || !PyDict_Check(fields)) {
        PyErr_Clear();
        Py_XDECREF(fields);
        return 0;
    }
    keys = PySequence_List(fields);
    expected = Py_BuildValue("[ss]", "data", "final");
    if (keys != NULL && expected != NULL
        && PyObject_RichCompareBool(keys, expected, Py_EQ) == 1) {
        final_field = PyDict_GetItemString(fields, "final");  /* borrowed */
        default_value = final_field ? PyObject_GetAttrString(final_field, "default") : NULL;
        ok = default_value == Py_True;
        Py_XDECREF(default_value);
    }
    PyErr_Clear();
    Py_XDECREF(keys);
    Py_XDECREF(expected);
    Py_DECREF(fields);
    return ok;
}

static int
set_event_type(EventType *slot, PyObject *type)
{
    if (!PyType_Check(type)) {
        PyErr_SetString(PyExc_TypeError, "configure() needs the Text and Binary classes");
        return -1;
    }
    Py_INCREF(type);
    Py_XSETREF(slot->type, (PyTypeObject *)type);
    slot->data_offset = slot->final_offset = -1;
    if (is_plain_event_type(slot->type)) {
        slot->data_offset = member_offset(slot->type, "data");
        slot->final_offset = member_offset(slot->type, "final");
        if (slot->data_offset < 0 || slot->final_offset < 0) {
            slot->data_offset = slot->final_offset = -1;
        }
    }
    return 0;
}

PyDoc_STRVAR(configure_doc,
"configure(text_type, binary_type, /)\n--\n\n"
"Set the event classes read_frame() returns. Returns True when events can be built\n"
"directly (the expected dataclass shape), False when the classes will be called.");

static PyObject *
speedups_configure(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "configure() takes exactly 2 arguments");
        return NULL;
    }
    if (set_event_type(&text_event, args[0]) < 0 || set_event_type(&binary_event, args[1]) < 0) {
        return NULL;
    }
    return PyBool_FromLong(text_event.data_offset >= 0 && binary_event.data_offset >= 0);
}

/* A new event holding ``payload`` (a new reference, stolen). */
static PyObject *
new_event(EventType *event, PyObject *payload)
{
    PyObject *obj;

    if (event->data_offset < 0) {
        obj = PyObject_CallOneArg((PyObject *)event->type, payload);
        Py_DECREF(payload);
        return obj;
    }
    obj = event->type->tp_alloc(event->type, 0);
    if (obj == NULL) {
        Py_DECREF(payload);
        return NULL;
    }
    *(PyObject **)((char *)obj + event->data_offset) = payload;
    Py_INCREF(Py_True);
    *(PyObject **)((char *)obj + event->final_offset) = Py_True;
    return obj;
}

/* Payloads up to this size are unmasked on the stack before UTF-8 decoding. */
#define STACK_PAYLOAD 512

PyDoc_STRVAR(read_frame_doc,
"read_frame(buf, pos, client, limit, /)\n--\n\n"
"Parse one whole unfragmented text/binary frame at ``buf[pos:]`` (bytes or\n"
"bytearray): ``(event, end_of_frame)``, or None when the general parser must\n"
"handle what is there. ``client`` is the role parsing; ``limit`` the largest\n"
"payload allowed.");

/* A str of the UTF-8 bytes buf[:len] (a new reference); Py_None (a new
 * reference) when they are not valid UTF-8 -- the Python code then fails the
 * connection with 1007 (§8.1); NULL with an exception set on other errors. */
static PyObject *
utf8_text(const char *buf, Py_ssize_t len)
{
    PyObject *text = PyUnicode_DecodeUTF8(buf, len, NULL);

    if (text == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
            return NULL;
        }
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    return text;
}

/* utf8_text() as a Text event. */
static PyObject *
utf8_event(const char *buf, Py_ssize_t len)
{
    PyObject *text = utf8_text(buf, len);

    if (text == NULL || text == Py_None) {
        return text;
    }
    return new_event(&text_event, text);
}

/* The payload of the whole frame at buf[pos:] -- str for text, bytes for
 * binary -- (a new reference) with *stop set to the end of the frame;
 * Py_None (a new reference) when the Python parser must handle what is there;
 * NULL with an exception set on failure. */
static PyObject *
parse_payload(const uint8_t *buf, Py_ssize_t size, Py_ssize_t pos, int client,
              long long limit, Py_ssize_t *stop)
{
    const uint8_t *payload_start;
    Py_ssize_t length, header;
    int masked;
    uint8_t b0, b1;
    PyObject *payload;

    if (pos < 0 || size - pos < 2) {
        Py_RETURN_NONE;
    }
    b0 = buf[pos];
    b1 = buf[pos + 1];
    /* FIN, no RSV bits, text or binary (§5.2). */
    if (b0 != 0x81 && b0 != 0x82) {
        Py_RETURN_NONE;
    }
    /* §5.1: a server receives masked frames only, a client unmasked ones only. */
    masked = (b1 & 0x80) != 0;
    if (masked == client) {
        Py_RETURN_NONE;
    }
    length = b1 & 0x7F;
    header = 2;
    if (length == 126) {
        if (size - pos < 4) {
            Py_RETURN_NONE;
        }
        length = ((Py_ssize_t)buf[pos + 2] << 8) | buf[pos + 3];
        header = 4;
    }
    else if (length == 127) {
        uint64_t wide = 0;
        if (size - pos < 10) {
            Py_RETURN_NONE;
        }
        for (int i = 2; i < 10; i++) {
            wide = (wide << 8) | buf[pos + i];
        }
        if (wide >> 63) {
            Py_RETURN_NONE;  /* §5.2 violation: the Python path reports it */
        }
        length = (Py_ssize_t)wide;
        header = 10;
    }
    if (masked) {
        header += 4;
    }
    /* Compared so that a huge 64-bit length cannot overflow the sum. */
    if ((long long)length > limit || size - pos < header
            || length > size - pos - header) {
        Py_RETURN_NONE;
    }
    *stop = pos + header + length;
    payload_start = buf + pos + header;
    if (b0 == 0x82) {
        payload = PyBytes_FromStringAndSize(masked ? NULL : (const char *)payload_start,
                                            length);
        if (payload != NULL && masked) {
            xor_key((uint8_t *)PyBytes_AS_STRING(payload), payload_start, (size_t)length,
                    buf + pos + header - 4);
        }
        return payload;
    }
    if (masked) {
        uint8_t stack[STACK_PAYLOAD];
        uint8_t *text = stack;
        if (length > STACK_PAYLOAD) {
            text = PyMem_Malloc((size_t)length);
            if (text == NULL) {
                return PyErr_NoMemory();
            }
        }
        xor_key(text, payload_start, (size_t)length, buf + pos + header - 4);
        payload = utf8_text((const char *)text, length);
        if (text != stack) {
            PyMem_Free(text);
        }
        return payload;
    }
    return utf8_text((const char *)payload_start, length);
}

/* parse_payload() as a Text or Binary event. */
static PyObject *
parse_frame(const uint8_t *buf, Py_ssize_t size, Py_ssize_t pos, int client,
            long long limit, Py_ssize_t *stop)
{
    PyObject *payload = parse_payload(buf, size, pos, client, limit, stop);

    if (payload == NULL || payload == Py_None) {
        return payload;
    }
    return new_event(PyUnicode_CheckExact(payload) ? &text_event : &binary_event, payload);
}

/* bytes or bytearray (exactly): its buffer and size; 0 for anything else. */
static int
byte_buffer(PyObject *obj, const uint8_t **buf, Py_ssize_t *size)
{
    if (PyBytes_CheckExact(obj)) {
        *buf = (const uint8_t *)PyBytes_AS_STRING(obj);
        *size = PyBytes_GET_SIZE(obj);
        return 1;
    }
    if (PyByteArray_CheckExact(obj)) {
        *buf = (const uint8_t *)PyByteArray_AS_STRING(obj);
        *size = PyByteArray_GET_SIZE(obj);
        return 1;
    }
    return 0;
}

/* A limit as a C integer: anything past LLONG_MAX is no limit at all. */
static int
as_limit(PyObject *obj, long long *limit)
{
    int overflow;

    *limit = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (*limit == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (overflow > 0) {
        *limit = LLONG_MAX;
    }
    return 0;
}

static PyObject *
speedups_read_frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    const uint8_t *buf;
    Py_ssize_t size, pos, stop = 0;
    long long limit;
    int client;
    PyObject *event, *result;

    (void)module;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "read_frame() takes exactly 4 arguments");
        return NULL;
    }
    if (text_event.type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "read_frame() before configure()");
        return NULL;
    }
    if (!byte_buffer(args[0], &buf, &size)) {
        Py_RETURN_NONE;
    }
    pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred()) {
        return NULL;
    }
    client = PyObject_IsTrue(args[2]);
    if (client < 0 || as_limit(args[3], &limit) < 0) {
        return NULL;
    }
    event = parse_frame(buf, size, pos, client, limit, &stop);
    if (event == NULL || event == Py_None) {
        return event;
    }
    result = PyTuple_New(2);
    if (result == NULL) {
        Py_DECREF(event);
        return NULL;
    }
    PyTuple_SET_ITEM(result, 0, event);
    PyTuple_SET_ITEM(result, 1, PyLong_FromSsize_t(stop));
    if (PyTuple_GET_ITEM(result, 1) == NULL) {
        Py_DECREF(result);
        return NULL;
    }
    return result;
}

/* ------------------------------------------------------------------ next_frame
 *
 * read_frame() on an engine's own buffer, reading its members directly and moving
 * its read position: what _core.Connection.next_event would otherwise do in
 * Python around read_frame() (load four attributes, unpack a tuple, store the
 * position) costs as much as the parsing itself for a 16-byte frame.
 */

/* The engine's base class when the accelerator is built: the state its C methods
 * read, declared as members of a C struct under the names the pure-Python engine
 * keeps in its __slots__ (rfc6455._core.ENGINE_MEMBERS). The compiler fixes
 * where each one lives; nothing is looked up by name at run time. */

typedef struct {
    PyObject_HEAD
    PyObject *buf, *pos, *client, *limit, *state, *events, *frame_left, *msg_opcode,
             *eof_received, *more, *extension, *out, *out_opcode, *fragment_size,
             *more_size, *eof_pending, *eof_sent;
} EngineObject;

#define ENGINE(conn) ((EngineObject *)(conn))
#define ENGINE_MEMBER(name, field) \
    {name, T_OBJECT_EX, offsetof(EngineObject, field), 0, NULL}

static PyMemberDef engine_members[] = {
    ENGINE_MEMBER("_buf", buf),
    ENGINE_MEMBER("_pos", pos),
    ENGINE_MEMBER("_client", client),
    ENGINE_MEMBER("_fast_limit", limit),
    ENGINE_MEMBER("_state", state),
    ENGINE_MEMBER("_events", events),
    ENGINE_MEMBER("_frame_left", frame_left),
    ENGINE_MEMBER("_msg_opcode", msg_opcode),
    ENGINE_MEMBER("_eof_received", eof_received),
    ENGINE_MEMBER("_more", more),
    ENGINE_MEMBER("_extension", extension),
    ENGINE_MEMBER("_out", out),
    ENGINE_MEMBER("_out_opcode", out_opcode),
    ENGINE_MEMBER("_fragment_size", fragment_size),
    ENGINE_MEMBER("_more_size", more_size),
    ENGINE_MEMBER("_eof_pending", eof_pending),
    ENGINE_MEMBER("_eof_sent", eof_sent),
    {NULL, 0, 0, 0, NULL},
};

#define ENGINE_FIELDS(apply) \
    apply(buf) apply(pos) apply(client) apply(limit) apply(state) apply(events) \
    apply(frame_left) apply(msg_opcode) apply(eof_received) apply(more) apply(extension) \
    apply(out) apply(out_opcode) apply(fragment_size) apply(more_size) apply(eof_pending) \
    apply(eof_sent)

static int
engine_traverse(PyObject *self, visitproc visit, void *arg)
{
#define VISIT_FIELD(field) Py_VISIT(ENGINE(self)->field);
    ENGINE_FIELDS(VISIT_FIELD)
#undef VISIT_FIELD
    return 0;
}

static int
engine_clear(PyObject *self)
{
#define CLEAR_FIELD(field) Py_CLEAR(ENGINE(self)->field);
    ENGINE_FIELDS(CLEAR_FIELD)
#undef CLEAR_FIELD
    return 0;
}

static void
engine_dealloc(PyObject *self)
{
    PyObject_GC_UnTrack(self);
    engine_clear(self);
    Py_TYPE(self)->tp_free(self);
}

static PyTypeObject EngineType;  /* defined with its methods, below */
static PyObject *open_state = NULL;  /* what _state holds while open (engine_type()) */

/* The configured engine's buffer, position, role and limit; 0 when they are
 * not set up as expected (the Python parser then decides), -1 on error. */
static int
engine_input(PyObject *conn, const uint8_t **buf, Py_ssize_t *size, Py_ssize_t *pos,
             int *client, long long *limit)
{
    PyObject *bufobj = ENGINE(conn)->buf;
    PyObject *posobj = ENGINE(conn)->pos;
    PyObject *clientobj = ENGINE(conn)->client;
    PyObject *limitobj = ENGINE(conn)->limit;

    if (bufobj == NULL || posobj == NULL || clientobj == NULL || limitobj == NULL
            || !PyLong_CheckExact(posobj) || !byte_buffer(bufobj, buf, size)) {
        return 0;
    }
    *pos = PyLong_AsSsize_t(posobj);
    if ((*pos == -1 && PyErr_Occurred()) || as_limit(limitobj, limit) < 0) {
        return -1;
    }
    *client = clientobj == Py_True;
    return 1;
}

static int
set_engine_pos(PyObject *conn, Py_ssize_t pos)
{
    PyObject *newpos = PyLong_FromSsize_t(pos), **slot;

    if (newpos == NULL) {
        return -1;
    }
    slot = &ENGINE(conn)->pos;
    Py_XSETREF(*slot, newpos);
    return 0;
}

PyDoc_STRVAR(next_frame_doc,
"next_frame(connection, /)\n--\n\n"
"read_frame(connection._buf, connection._pos, connection._client,\n"
"connection._fast_limit) for an instance of the configured engine class: the\n"
"event, with ``connection._pos`` moved past the frame; None (position unchanged)\n"
"when the Python parser must handle what is there.");

/* next_frame() for a connection of the configured class (checked by the caller). */
static PyObject *
engine_next_frame(PyObject *conn)
{
    const uint8_t *buf;
    Py_ssize_t size, pos, stop = 0;
    long long limit;
    int client, ready;
    PyObject *event;

    ready = engine_input(conn, &buf, &size, &pos, &client, &limit);
    if (ready <= 0) {
        return ready < 0 ? NULL : Py_NewRef(Py_None);
    }
    event = parse_frame(buf, size, pos, client, limit, &stop);
    if (event == NULL || event == Py_None) {
        return event;
    }
    if (set_engine_pos(conn, stop) < 0) {
        Py_DECREF(event);
        return NULL;
    }
    return event;
}

static PyObject *
speedups_next_frame(PyObject *module, PyObject *conn)
{
    (void)module;
    if (text_event.type == NULL || !PyObject_TypeCheck(conn, &EngineType)) {
        PyErr_SetString(PyExc_TypeError, "next_frame() needs a configured engine");
        return NULL;
    }
    return engine_next_frame(conn);
}

/* ------------------------------------------------------------ engine methods
 *
 * Connection.deliver_messages and Connection.send in C for their common case,
 * the Python implementations called for everything else (same arguments, same
 * result): per message, a Python frame less on each side of an echo. They read
 * the members of EngineObject as next_frame() does (methods of EngineType).
 */

static PyObject *deliver_python = NULL;  /* the Python implementations */
static PyObject *send_python = NULL;
/* Masking keys for client frames (§5.3, §10.3): rfc6455.frames' pool, a list
 * of 4-byte keys used from its end, and the function that refills it. */
static PyObject *key_pool = NULL;
static PyObject *new_key = NULL;

/* Whether ``obj`` is the int ``value``. */
static int
is_int(PyObject *obj, long value)
{
    int overflow;

    return obj != NULL && PyLong_CheckExact(obj)
        && PyLong_AsLongAndOverflow(obj, &overflow) == value && !overflow;
}

/* ``function(self, *args, **kwargs)`` for a vectorcall's arguments. */
static PyObject *
call_python(PyObject *function, PyObject *self, PyObject *const *args, Py_ssize_t nargs,
            PyObject *kwnames)
{
    PyObject *stack[8], **all = stack, *result;
    Py_ssize_t total = 1 + nargs + (kwnames ? PyTuple_GET_SIZE(kwnames) : 0);

    if (total > 8) {
        all = PyMem_Malloc((size_t)total * sizeof(PyObject *));
        if (all == NULL) {
            return PyErr_NoMemory();
        }
    }
    all[0] = self;
    memcpy(all + 1, args, (size_t)(total - 1) * sizeof(PyObject *));
    result = PyObject_Vectorcall(function, all, (size_t)(nargs + 1), kwnames);
    if (all != stack) {
        PyMem_Free(all);
    }
    return result;
}

/* The next_frame() loop with each payload handed to callback(arg, payload):
 * how many were delivered, or -1 with an exception set. */
static Py_ssize_t
dispatch_loop(PyObject *conn, PyObject *callback, PyObject *arg)
{
    const uint8_t *buf;
    Py_ssize_t size, pos, stop = 0, count = 0;
    long long limit;
    int client, ready;
    PyObject *payload, *result, *call[2];

    call[0] = arg;
    /* Everything is read again after each callback, which may have closed. */
    while (ENGINE(conn)->state == open_state) {
        ready = engine_input(conn, &buf, &size, &pos, &client, &limit);
        if (ready <= 0) {
            return ready < 0 ? -1 : count;
        }
        payload = parse_payload(buf, size, pos, client, limit, &stop);
        if (payload == NULL) {
            return -1;
        }
        if (payload == Py_None) {
            Py_DECREF(payload);
            break;
        }
        if (set_engine_pos(conn, stop) < 0) {
            Py_DECREF(payload);
            return -1;
        }
        call[1] = payload;
        result = PyObject_Vectorcall(callback, call, 2, NULL);
        Py_DECREF(payload);
        if (result == NULL) {
            return -1;
        }
        Py_DECREF(result);
        count++;
    }
    return count;
}

/* Connection.deliver_messages(data, callback, arg). The common case: open,
 * everything before consumed, no frame or message in progress, ``data`` bytes:
 * parse it where it lies (as _feed does) and run the loop. Anything else, and
 * what the loop leaves when a frame continues in a later chunk, is the Python
 * implementation's. */
static PyObject *
engine_deliver(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *conn = self, *events, *bufobj, *more, *zero, *rest;
    const uint8_t *unused;
    Py_ssize_t size, count;

    if (nargs != 3 || !PyBytes_CheckExact(args[0])
            || ENGINE(conn)->state != open_state
            || ENGINE(conn)->more != Py_None
            || ENGINE(conn)->eof_received != Py_False) {
        return call_python(deliver_python, self, args, nargs, NULL);
    }
    events = ENGINE(conn)->events;
    bufobj = ENGINE(conn)->buf;
    if (events == NULL || !PyList_CheckExact(events) || PyList_GET_SIZE(events) != 0
            || !is_int(ENGINE(conn)->frame_left, -1)
            || !is_int(ENGINE(conn)->msg_opcode, 0)
            || bufobj == NULL || !byte_buffer(bufobj, &unused, &size)
            || !PyLong_CheckExact(ENGINE(conn)->pos)
            || PyLong_AsSsize_t(ENGINE(conn)->pos) < size) {
        PyErr_Clear();
        return call_python(deliver_python, self, args, nargs, NULL);
    }
    zero = PyLong_FromLong(0);
    if (zero == NULL) {
        return NULL;
    }
    Py_INCREF(args[0]);
    Py_XSETREF(ENGINE(conn)->buf, args[0]);
    Py_XSETREF(ENGINE(conn)->pos, zero);
    count = dispatch_loop(conn, args[1], args[2]);
    if (count < 0) {
        return NULL;
    }
    more = ENGINE(conn)->more;
    if (more == NULL || more == Py_None) {
        return PyLong_FromSsize_t(count);
    }
    /* The callback fed the engine: the Python loop takes the rest. */
    {
        PyObject *rest_args[3] = {NULL, args[1], args[2]};
        rest_args[0] = PyBytes_FromStringAndSize(NULL, 0);
        if (rest_args[0] == NULL) {
            return NULL;
        }
        rest = call_python(deliver_python, self, rest_args, 3, NULL);
        Py_DECREF(rest_args[0]);
    }
    if (rest == NULL) {
        return NULL;
    }
    size = PyLong_AsSsize_t(rest);
    Py_DECREF(rest);
    if (size == -1 && PyErr_Occurred()) {
        return NULL;
    }
    return PyLong_FromSsize_t(count + size);
}

/* Whether send()'s keyword arguments are the defaults' effect: final=True
 * (compress matters only with an extension, which the fast case has none of). */
static int
plain_send_keywords(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    Py_ssize_t i, n = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;

    for (i = 0; i < n; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        if (PyUnicode_CompareWithASCIIString(name, "final") == 0) {
            if (args[nargs + i] != Py_True) {
                return 0;
            }
        }
        else if (PyUnicode_CompareWithASCIIString(name, "compress") != 0) {
            return 0;
        }
    }
    return 1;
}

/* The next masking key, as frames._new_key() gives it (a new reference). */
static PyObject *
next_key(void)
{
    Py_ssize_t n = PyList_GET_SIZE(key_pool);
    PyObject *key;

    if (n == 0) {
        return PyObject_CallNoArgs(new_key);  /* refills the pool */
    }
    key = PyList_GET_ITEM(key_pool, n - 1);
    Py_INCREF(key);
    if (PyList_SetSlice(key_pool, n - 1, n, NULL) < 0) {
        Py_DECREF(key);
        return NULL;
    }
    return key;
}

/* Connection.send(data, *, final=True, compress=None). The common case: open,
 * no extension, no message in parts, no fragmenting, ``data`` str or bytes
 * under 64 KiB: the frame (§5.2, minimal length; masked with a fresh key by a
 * client, §5.3) is built in one allocation -- a str's UTF-8 copied straight in
 * -- and queued. Anything else is the Python implementation's. */
static PyObject *
engine_send(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *conn = self, *data, *out, *frame;
    Py_ssize_t length;
    const char *payload;
    uint8_t first;

    if (nargs != 1 || !plain_send_keywords(args, nargs, kwnames)
            || ENGINE(conn)->state != open_state
            || ENGINE(conn)->extension != Py_None
            || ENGINE(conn)->fragment_size != Py_None
            || !is_int(ENGINE(conn)->out_opcode, 0)) {
        return call_python(send_python, self, args, nargs, kwnames);
    }
    data = args[0];
    out = ENGINE(conn)->out;
    if (out == NULL || !PyList_CheckExact(out)) {
        return call_python(send_python, self, args, nargs, kwnames);
    }
    if (PyUnicode_CheckExact(data)) {
        payload = PyUnicode_AsUTF8AndSize(data, &length);
        if (payload == NULL) {  /* lone surrogates: Python raises the same error */
            PyErr_Clear();
            return call_python(send_python, self, args, nargs, kwnames);
        }
        first = 0x81;
    }
    else if (PyBytes_CheckExact(data)) {
        payload = PyBytes_AS_STRING(data);
        length = PyBytes_GET_SIZE(data);
        first = 0x82;
    }
    else {
        return call_python(send_python, self, args, nargs, kwnames);
    }
    if (length >= 65536) {  /* queued apart from its header: the Python way */
        return call_python(send_python, self, args, nargs, kwnames);
    }
    if (ENGINE(conn)->client == Py_True) {
        uint8_t key[4];
        PyObject *keyobj = next_key();
        if (keyobj == NULL) {
            return NULL;
        }
        if (get_key(keyobj, key) < 0) {
            Py_DECREF(keyobj);
            return NULL;
        }
        Py_DECREF(keyobj);
        frame = new_frame(first, (const uint8_t *)payload, length, key);
    }
    else {
        frame = new_frame(first, (const uint8_t *)payload, length, NULL);
    }
    if (frame == NULL) {
        return NULL;
    }
    if (PyList_Append(out, frame) < 0) {
        Py_DECREF(frame);
        return NULL;
    }
    Py_DECREF(frame);
    Py_RETURN_NONE;
}

/* ---------------------------------------------------------- engine accessors
 *
 * What every adapter calls once or more per message besides send:
 * receive_data(), next_event(), data_to_send_parts(), and the properties state,
 * input_pending, buffered_bytes and has_data_to_send. Each is a few attribute
 * reads in Python, but a Python frame per call; a coroutine echo round trip
 * made eight such calls (docs/performance.md). The common case in C, the
 * Python implementation for everything else, as for send and deliver_messages.
 */

static PyObject *receive_python = NULL;  /* the Python implementations */
static PyObject *parts_python = NULL;
static PyObject *next_event_python = NULL;
static PyObject *pending_python = NULL;  /* property getters */
static PyObject *buffered_python = NULL;
static PyObject *has_data_python = NULL;

/* The engine's unconsumed input in its current chunk (len(_buf) - _pos): 1 and
 * ``*left`` set, or 0 when the members are not as expected. */
static int
chunk_left(PyObject *conn, Py_ssize_t *left)
{
    PyObject *posobj = ENGINE(conn)->pos, *bufobj = ENGINE(conn)->buf;
    const uint8_t *unused;
    Py_ssize_t size, pos;

    if (bufobj == NULL || posobj == NULL || !PyLong_CheckExact(posobj)
            || !byte_buffer(bufobj, &unused, &size)) {
        return 0;
    }
    pos = PyLong_AsSsize_t(posobj);
    if (pos == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    *left = size - pos;
    return 1;
}

static int
check_accessor(PyObject *conn, PyObject *python)
{
    if (python == NULL || !PyObject_TypeCheck(conn, &EngineType)) {
        PyErr_SetString(PyExc_TypeError, "an engine accessor needs a configured engine");
        return 0;
    }
    return 1;
}

/* Connection.receive_data(data). The common case: open, bytes, everything
 * before consumed: the new chunk is parsed where it lies (what _feed does). */
static PyObject *
engine_receive(PyObject *self, PyObject *data)
{
    Py_ssize_t left;
    PyObject *more = ENGINE(self)->more;

    if (PyBytes_CheckExact(data) && PyBytes_GET_SIZE(data) > 0
            && ENGINE(self)->state == open_state
            && ENGINE(self)->eof_received == Py_False
            && more == Py_None && chunk_left(self, &left) && left <= 0) {
        PyObject *zero = PyLong_FromLong(0);

        if (zero == NULL) {
            return NULL;
        }
        Py_INCREF(data);
        Py_XSETREF(ENGINE(self)->buf, data);
        Py_XSETREF(ENGINE(self)->pos, zero);
        Py_RETURN_NONE;
    }
    return PyObject_CallFunctionObjArgs(receive_python, self, data, NULL);
}

/* Connection.data_to_send_parts(): the output list itself when it holds
 * frames (an empty one takes its place); the EOF cases in Python. */
static PyObject *
engine_parts(PyObject *self, PyObject *unused)
{
    PyObject *out = ENGINE(self)->out, *fresh;

    (void)unused;
    if (out != NULL && PyList_CheckExact(out) && PyList_GET_SIZE(out) > 0) {
        fresh = PyList_New(0);
        if (fresh == NULL) {
            return NULL;
        }
        ENGINE(self)->out = fresh;  /* the slot's reference goes to the caller */
        return out;
    }
    return PyObject_CallOneArg(parts_python, self);
}

/* Connection.next_event(). The common case: open, no event queued, no frame
 * or message in progress: next_frame() on the buffer (a whole small data frame
 * in one piece), or None when nothing at all is buffered. */
static PyObject *
engine_next_event(PyObject *self, PyObject *unused)
{
    PyObject *events = ENGINE(self)->events, *event;
    Py_ssize_t left;

    (void)unused;
    if (events != NULL && PyList_CheckExact(events) && PyList_GET_SIZE(events) == 0
            && ENGINE(self)->state == open_state
            && text_event.type != NULL
            && is_int(ENGINE(self)->frame_left, -1)
            && is_int(ENGINE(self)->msg_opcode, 0)) {
        if (chunk_left(self, &left) && left <= 0
                && ENGINE(self)->more == Py_None
                && ENGINE(self)->eof_received == Py_False) {
            Py_RETURN_NONE;  /* nothing buffered, nothing to report */
        }
        event = engine_next_frame(self);
        if (event != Py_None) {
            return event;  /* the event, or NULL on an error */
        }
        Py_DECREF(event);
    }
    return PyObject_CallOneArg(next_event_python, self);
}

static PyObject *
engine_state(PyObject *module, PyObject *conn)
{
    PyObject *state;

    (void)module;
    if (!check_accessor(conn, pending_python)) {
        return NULL;
    }
    state = ENGINE(conn)->state;
    if (state == NULL) {
        PyErr_SetString(PyExc_AttributeError, "_state");
        return NULL;
    }
    return Py_NewRef(state);
}

static PyObject *
engine_input_pending(PyObject *module, PyObject *conn)
{
    PyObject *events, *more, *eof;
    Py_ssize_t left;

    (void)module;
    if (!check_accessor(conn, pending_python)) {
        return NULL;
    }
    events = ENGINE(conn)->events;
    more = ENGINE(conn)->more;
    eof = ENGINE(conn)->eof_received;
    if (events != NULL && PyList_CheckExact(events) && more != NULL
            && chunk_left(conn, &left)) {
        if (PyList_GET_SIZE(events) > 0 || left > 0 || more != Py_None) {
            Py_RETURN_TRUE;
        }
        if (ENGINE(conn)->state == open_state
                && (eof == Py_True || eof == Py_False)) {
            return Py_NewRef(eof);  /* the abnormal closure is still to be reported */
        }
    }
    return PyObject_CallOneArg(pending_python, conn);
}

static PyObject *
engine_buffered_bytes(PyObject *module, PyObject *conn)
{
    PyObject *more_size;
    Py_ssize_t left, queued;

    (void)module;
    if (!check_accessor(conn, pending_python)) {
        return NULL;
    }
    more_size = ENGINE(conn)->more_size;
    if (more_size != NULL && PyLong_CheckExact(more_size) && chunk_left(conn, &left)) {
        queued = PyLong_AsSsize_t(more_size);
        if (queued == -1 && PyErr_Occurred()) {
            PyErr_Clear();
        }
        else if (left + queued == 0
                 && ENGINE(conn)->state == open_state) {
            return PyLong_FromLong(0);
        }
        else if (left + queued > 0 && is_int(ENGINE(conn)->frame_left, -1)) {
            return PyLong_FromSsize_t(left + queued);  /* no frame being gathered */
        }
    }
    return PyObject_CallOneArg(buffered_python, conn);
}

static PyObject *
engine_has_data(PyObject *module, PyObject *conn)
{
    PyObject *out, *pending, *sent;

    (void)module;
    if (!check_accessor(conn, pending_python)) {
        return NULL;
    }
    out = ENGINE(conn)->out;
    pending = ENGINE(conn)->eof_pending;
    sent = ENGINE(conn)->eof_sent;
    if (out != NULL && PyList_CheckExact(out) && PyBool_Check(pending) && PyBool_Check(sent)) {
        /* bool(_out) or (_eof_pending and not _eof_sent) */
        return PyBool_FromLong(PyList_GET_SIZE(out) > 0 || (pending == Py_True
                                                             && sent == Py_False));
    }
    return PyObject_CallOneArg(has_data_python, conn);
}

/* Property getters of the engine type: the functions above, as getset entries. */
static PyObject *
get_state(PyObject *self, void *closure)
{
    (void)closure;
    return engine_state(NULL, self);
}

static PyObject *
get_input_pending(PyObject *self, void *closure)
{
    (void)closure;
    return engine_input_pending(NULL, self);
}

static PyObject *
get_buffered_bytes(PyObject *self, void *closure)
{
    (void)closure;
    return engine_buffered_bytes(NULL, self);
}

static PyObject *
get_has_data(PyObject *self, void *closure)
{
    (void)closure;
    return engine_has_data(NULL, self);
}

/* Docstrings come from the Python implementations (engine_type()). */
static PyMethodDef engine_methods[] = {
    {"deliver_messages", (PyCFunction)(void (*)(void))engine_deliver, METH_FASTCALL, NULL},
    {"send", (PyCFunction)(void (*)(void))engine_send, METH_FASTCALL | METH_KEYWORDS, NULL},
    {"receive_data", (PyCFunction)engine_receive, METH_O, NULL},
    {"data_to_send_parts", (PyCFunction)engine_parts, METH_NOARGS, NULL},
    {"next_event", (PyCFunction)engine_next_event, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef engine_getset[] = {
    {"state", get_state, NULL, NULL, NULL},
    {"input_pending", get_input_pending, NULL, NULL, NULL},
    {"buffered_bytes", get_buffered_bytes, NULL, NULL, NULL},
    {"has_data_to_send", get_has_data, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "rfc6455._speedups.Engine",
    .tp_basicsize = sizeof(EngineObject),
    .tp_dealloc = engine_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The engine's state and per-message methods in C (see engine_type()).",
    .tp_traverse = engine_traverse,
    .tp_clear = engine_clear,
    .tp_methods = engine_methods,
    .tp_members = engine_members,
    .tp_getset = engine_getset,
    .tp_new = PyType_GenericNew,
};

static PyObject *engine_docs = NULL;  /* keeps the docstrings' UTF-8 alive */

PyDoc_STRVAR(engine_type_doc,
"engine_type(open_state, fallbacks, docs, key_pool, new_key, /)\n--\n\n"
"The engine's base class: its members are the engine state the C methods read;\n"
"its methods ``deliver_messages``, ``send``, ``receive_data``,\n"
"``data_to_send_parts`` and ``next_event`` and properties ``state``,\n"
"``input_pending``, ``buffered_bytes`` and ``has_data_to_send`` do their common\n"
"case in C and call ``fallbacks`` (the Python implementations: the five methods,\n"
"then the getters of the last three properties) for the rest. ``docs`` holds the\n"
"nine docstrings in that order; ``open_state`` is what ``_state`` holds while\n"
"open. A client's send takes its masking keys from the end of the list\n"
"``key_pool``, calling ``new_key()`` when it is empty. Made ready on the first\n"
"call; later calls return the same class.");

static PyObject *
speedups_engine_type(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject **fallbacks[8] = {&deliver_python, &send_python, &receive_python, &parts_python,
                               &next_event_python, &pending_python, &buffered_python,
                               &has_data_python};
    PyObject *docs;
    Py_ssize_t i;

    (void)module;
    if (EngineType.tp_flags & Py_TPFLAGS_READY) {
        return Py_NewRef((PyObject *)&EngineType);
    }
    if (nargs != 5 || !PyTuple_Check(args[1]) || PyTuple_GET_SIZE(args[1]) != 8
            || !PyTuple_Check(args[2]) || PyTuple_GET_SIZE(args[2]) != 9
            || !PyList_CheckExact(args[3]) || !PyCallable_Check(args[4])) {
        PyErr_SetString(PyExc_TypeError, "engine_type() takes the open state, 8 callables, "
                        "9 docstrings, a list and a callable");
        return NULL;
    }
    docs = args[2];
    for (i = 0; i < 9; i++) {
        const char *doc;

        if (i < 8 && !PyCallable_Check(PyTuple_GET_ITEM(args[1], i))) {
            PyErr_SetString(PyExc_TypeError, "engine_type() fallbacks must be callable");
            return NULL;
        }
        doc = PyUnicode_Check(PyTuple_GET_ITEM(docs, i))
            ? PyUnicode_AsUTF8(PyTuple_GET_ITEM(docs, i)) : NULL;
        if (doc == NULL) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_TypeError, "engine_type() docstrings must be str");
            }
            return NULL;
        }
        if (i < 5) {
            engine_methods[i].ml_doc = doc;
        }
        else {
            engine_getset[i - 5].doc = doc;
        }
    }
    Py_XSETREF(engine_docs, Py_NewRef(docs));
    for (i = 0; i < 8; i++) {
        Py_XSETREF(*fallbacks[i], Py_NewRef(PyTuple_GET_ITEM(args[1], i)));
    }
    Py_XSETREF(open_state, Py_NewRef(args[0]));
    Py_XSETREF(key_pool, Py_NewRef(args[3]));
    Py_XSETREF(new_key, Py_NewRef(args[4]));
    if (PyType_Ready(&EngineType) < 0) {
        return NULL;
    }
    return Py_NewRef((PyObject *)&EngineType);
}

/* ---------------------------------------------------------------- FutureWait
 *
 * The base of rfc6455.asyncio.connection._MessageWait: what a reader's task
 * awaits while no message is there. Awaiting it awaits ``future`` the way
 * asyncio's Future.__await__ does (the future itself goes to the task, marked
 * as blocking), and its value is the future's result. In Python, __init__,
 * __await__ and two __next__ calls were four Python frames per message on a
 * coroutine echo; the subclass adds the cancel safety (throw/close), which only
 * runs when a reader goes away.
 */

typedef struct {
    PyObject_HEAD
    PyObject *driver;
    PyObject *future;
} FutureWait;

static PyObject *str_done = NULL, *str_result = NULL, *str_blocking = NULL;

static PyObject *
future_wait_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    FutureWait *self;
    PyObject *driver, *future;

    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "FutureWait() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_UnpackTuple(args, "FutureWait", 2, 2, &driver, &future)) {
        return NULL;
    }
    self = (FutureWait *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->driver = Py_NewRef(driver);
    self->future = Py_NewRef(future);
    return (PyObject *)self;
}

static int
future_wait_traverse(FutureWait *self, visitproc visit, void *arg)
{
    Py_VISIT(self->driver);
    Py_VISIT(self->future);
    return 0;
}

static int
future_wait_clear(FutureWait *self)
{
    Py_CLEAR(self->driver);
    Py_CLEAR(self->future);
    return 0;
}

static void
future_wait_dealloc(FutureWait *self)
{
    /* (A subclass's instance: its dealloc releases the subclass itself.) */
    PyObject_GC_UnTrack(self);
    future_wait_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
future_wait_await(PyObject *self)
{
    return Py_NewRef(self);  /* an iterator with send/throw/close: what await drives */
}

/* The future, marked blocking, while it is pending; else StopIteration with its
 * result (or its exception raised). */
static PyObject *
future_wait_next(FutureWait *self)
{
    PyObject *done, *result, *stop;
    int is_done;

    if (self->future == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "FutureWait without a future");
        return NULL;
    }
    done = PyObject_CallMethodNoArgs(self->future, str_done);
    if (done == NULL) {
        return NULL;
    }
    is_done = PyObject_IsTrue(done);
    Py_DECREF(done);
    if (is_done < 0) {
        return NULL;
    }
    if (!is_done) {
        /* What Future.__await__ sets for the task before yielding the future. */
        if (PyObject_SetAttr(self->future, str_blocking, Py_True) < 0) {
            return NULL;
        }
        return Py_NewRef(self->future);
    }
    result = PyObject_CallMethodNoArgs(self->future, str_result);
    if (result == NULL) {
        return NULL;
    }
    /* StopIteration(result) as an instance: a tuple must not become its args. */
    stop = PyObject_CallOneArg(PyExc_StopIteration, result);
    Py_DECREF(result);
    if (stop == NULL) {
        return NULL;
    }
    PyErr_SetObject(PyExc_StopIteration, stop);
    Py_DECREF(stop);
    return NULL;
}

static PyObject *
future_wait_send(FutureWait *self, PyObject *value)
{
    (void)value;  /* a task only sends None; the result is the future's */
    return future_wait_next(self);
}

static PyMemberDef future_wait_members[] = {
    {"_driver", T_OBJECT_EX, offsetof(FutureWait, driver), READONLY, NULL},
    {"_future", T_OBJECT_EX, offsetof(FutureWait, future), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyMethodDef future_wait_methods[] = {
    {"send", (PyCFunction)future_wait_send, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static PyAsyncMethods future_wait_async = {
    (unaryfunc)future_wait_await, NULL, NULL,
#if PY_VERSION_HEX >= 0x030A0000
    NULL,
#endif
};

PyDoc_STRVAR(future_wait_doc,
"FutureWait(driver, future)\n--\n\n"
"Awaiting it awaits ``future`` as asyncio's Future.__await__ does, and gives its\n"
"result; ``driver`` is kept for subclasses (``_driver``, ``_future``).");

static PyTypeObject FutureWaitType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "rfc6455._speedups.FutureWait",
    .tp_basicsize = sizeof(FutureWait),
    .tp_dealloc = (destructor)future_wait_dealloc,
    .tp_as_async = &future_wait_async,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = future_wait_doc,
    .tp_traverse = (traverseproc)future_wait_traverse,
    .tp_clear = (inquiry)future_wait_clear,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)future_wait_next,
    .tp_methods = future_wait_methods,
    .tp_members = future_wait_members,
    .tp_new = future_wait_new,
};

PyDoc_STRVAR(text_event_doc,
"text_event(data, /)\n--\n\n"
"``Text(str(data, 'utf-8'))`` for ``data`` (bytes), the event built as read_frame()\n"
"builds it; None when ``data`` is not valid UTF-8 (the caller then fails the\n"
"connection, RFC 6455 section 8.1). For messages the Python parser assembles,\n"
"e.g. inflated ones (RFC 7692).");

static PyObject *
speedups_text_event(PyObject *module, PyObject *data)
{
    (void)module;
    if (text_event.type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "text_event() before configure()");
        return NULL;
    }
    if (!PyBytes_CheckExact(data)) {
        PyErr_SetString(PyExc_TypeError, "text_event() needs bytes");
        return NULL;
    }
    return utf8_event(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data));
}

static PyMethodDef speedups_methods[] = {
    {"configure", (PyCFunction)(void (*)(void))speedups_configure, METH_FASTCALL,
     configure_doc},
    {"read_frame", (PyCFunction)(void (*)(void))speedups_read_frame, METH_FASTCALL,
     read_frame_doc},
    {"next_frame", (PyCFunction)speedups_next_frame, METH_O, next_frame_doc},
    {"engine_type", (PyCFunction)(void (*)(void))speedups_engine_type, METH_FASTCALL,
     engine_type_doc},
    {"text_event", (PyCFunction)speedups_text_event, METH_O, text_event_doc},
    {"mask", (PyCFunction)(void (*)(void))speedups_mask, METH_FASTCALL, mask_doc},
    {"masked_frame", (PyCFunction)(void (*)(void))speedups_masked_frame, METH_FASTCALL,
     masked_frame_doc},
    {"mask_join", (PyCFunction)(void (*)(void))speedups_mask_join, METH_FASTCALL,
     mask_join_doc},
    {"mask_inplace", (PyCFunction)(void (*)(void))speedups_mask_inplace, METH_FASTCALL,
     mask_inplace_doc},
    {NULL, NULL, 0, NULL},
};

static int
speedups_exec(PyObject *module)
{
    str_done = PyUnicode_InternFromString("done");
    str_result = PyUnicode_InternFromString("result");
    str_blocking = PyUnicode_InternFromString("_asyncio_future_blocking");
    if (str_done == NULL || str_result == NULL || str_blocking == NULL
            || PyType_Ready(&FutureWaitType) < 0
            || PyModule_AddObjectRef(module, "FutureWait", (PyObject *)&FutureWaitType) < 0) {
        return -1;
    }
#ifdef RFC6455_AVX2
    __builtin_cpu_init();
    have_avx2 = __builtin_cpu_supports("avx2") ? 1 : 0;
#endif
    return 0;
}

static PyModuleDef_Slot speedups_slots[] = {
    {Py_mod_exec, speedups_exec},
    {0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    "rfc6455._speedups",
    "Compiled helpers for rfc6455 (optional).",
    0,
    speedups_methods,
    speedups_slots,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&speedups_module);
}
