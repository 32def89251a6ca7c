/* Optional accelerator for rfc6455: payload masking (RFC 6455 §5.3).
 *
 * mask(data, key) -> bytes         same contract as rfc6455._mask.mask_python
 * mask_inplace(buffer, key) -> None  XOR a writable buffer (bytearray, memoryview) in place
 *
 * Masking is a XOR with the 4-byte key repeated, so it is its own inverse. The
 * loop works on 16- or 32-byte vectors (GCC/Clang vector extensions: SSE2 on
 * every x86-64, AVX2 picked at run time when the CPU has it, NEON on arm64) and
 * falls back to 8-byte words elsewhere. Building this module is optional:
 * setup.py tolerates a failure and rfc6455 then uses the pure-Python code.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define RFC6455_VECTORS 1
typedef uint8_t v16u8 __attribute__((vector_size(16)));
#endif

#if defined(RFC6455_VECTORS) && (defined(__x86_64__) || defined(__i386__)) \
    && !defined(__INTEL_COMPILER)
#define RFC6455_AVX2 1
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
    if (result != NULL && data.len > 0) {
        uint8_t *dst = (uint8_t *)PyBytes_AS_STRING(result);
        if (data.len >= RELEASE_GIL_THRESHOLD) {
            Py_BEGIN_ALLOW_THREADS
            xor_key(dst, (const uint8_t *)data.buf, (size_t)data.len, key);
            Py_END_ALLOW_THREADS
        }
        else {
            xor_key(dst, (const uint8_t *)data.buf, (size_t)data.len, key);
        }
    }
    PyBuffer_Release(&data);
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
    if (data.len > 0) {
        uint8_t *buf = (uint8_t *)data.buf;
        if (data.len >= RELEASE_GIL_THRESHOLD) {
            Py_BEGIN_ALLOW_THREADS
            xor_key(buf, buf, (size_t)data.len, key);
            Py_END_ALLOW_THREADS
        }
        else {
            xor_key(buf, buf, (size_t)data.len, key);
        }
    }
    PyBuffer_Release(&data);
    Py_RETURN_NONE;
}

static PyMethodDef speedups_methods[] = {
    {"mask", (PyCFunction)(void (*)(void))speedups_mask, METH_FASTCALL, mask_doc},
    {"mask_inplace", (PyCFunction)(void (*)(void))speedups_mask_inplace, METH_FASTCALL,
     mask_inplace_doc},
    {NULL, NULL, 0, NULL},
};

static int
speedups_exec(PyObject *module)
{
    (void)module;
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
