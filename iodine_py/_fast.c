/* iodine_py/_fast.c: taking events for Python through the CPython C API
 * (see ext/pyfast.h for why). Part of the binding: compiled into
 * iodine_py._native only.
 *
 * Owns: the module iodine_py._fast and its two functions:
 *
 *   setup(bases, empty_input, fixed_keys)
 *       bases: a tuple of environ dicts, one per listener tag (copied per
 *       request); empty_input: wsgi.input for requests without a body;
 *       fixed_keys: the keys of the blob's fixed values (http_env_fixed).
 *   next(token, mode) -> None | (kind, token, conn, a, b, c)
 *       Finishes the event `token` (0: none) and takes the next one, the
 *       way dsp_done_next(done, 0) (mode 0), dsp_done_next(done, 1)
 *       (mode 1: blocks, with the GIL released) or dsp_done_same (mode 2)
 *       do: ordering is dispatch.c's, unchanged. The tuple:
 *         a request: (DSP_HTTP_REQUEST, token, conn, tag, upgrade, env,
 *           req) with env the environ dict built here (base copy, the
 *           blob's keys, wsgi.input = empty_input) and req 0 (the request
 *           was freed here) or, for a request with a body, its http_req
 *           address: Python makes wsgi.input from it and frees it.
 *         any other event: (kind, token, conn, 0, 0, 0): Python casts the
 *           token to its dsp_event * and handles it as before.
 *       A token is a dsp_event address as an int: every token returned
 *       must be passed back exactly once (that finishes its event).
 *
 * Must never: touch a connection or take the reactor's lock (dispatch.c
 * never takes it either, so holding the GIL around dsp_done_next(.., 0)
 * cannot deadlock: nobody waits for the GIL while holding the queue lock).
 *
 * Threads: the GIL is held on entry (C-API functions); it is released only
 * around a blocking wait (mode 1). */
#define PY_SSIZE_T_CLEAN
#define Py_LIMITED_API 0x03090000
#include <Python.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "http.h"
#include "pyfast.h"

static PyObject *bases;       /* tuple of dicts */
static PyObject *empty_input; /* wsgi.input without a body */
static PyObject *fixed_keys;  /* tuple of str */
static PyObject *input_key;   /* "wsgi.input" */

static PyObject *fast_setup(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *b, *e, *k;
  if (!PyArg_ParseTuple(args, "O!OO!", &PyTuple_Type, &b, &e, &PyTuple_Type, &k)) return NULL;
  Py_INCREF(b);
  Py_INCREF(e);
  Py_INCREF(k);
  /* replaced, not leaked, when a later Runtime calls setup again */
  PyObject *ob = bases, *oe = empty_input, *ok = fixed_keys;
  bases = b;
  empty_input = e;
  fixed_keys = k;
  Py_XDECREF(ob);
  Py_XDECREF(oe);
  Py_XDECREF(ok);
  if (!input_key && !(input_key = PyUnicode_InternFromString("wsgi.input"))) return NULL;
  Py_RETURN_NONE;
}

/* key=value pairs of the blob into env: the fixed values first (their keys
 * from fixed_keys), then name\0value pairs. Later keys replace earlier
 * ones, as dict.update did (a trusted proxy's REMOTE_ADDR). */
static int fill_env(PyObject *env, const char *p, size_t len) {
  const char *end = p + len;
  Py_ssize_t nfixed = PyTuple_Size(fixed_keys);
  Py_ssize_t i = 0;
  PyObject *key = NULL;
  for (;;) {
    const char *z = memchr(p, 0, (size_t)(end - p));
    const char *stop = z ? z : end;
    PyObject *s = PyUnicode_DecodeLatin1(p, stop - p, NULL);
    if (!s) goto fail;
    if (i < nfixed) {
      int r = PyDict_SetItem(env, PyTuple_GetItem(fixed_keys, i), s);
      Py_DECREF(s);
      if (r) goto fail;
      i++;
    } else if (!key) {
      key = s;
    } else {
      int r = PyDict_SetItem(env, key, s);
      Py_DECREF(s);
      Py_CLEAR(key);
      if (r) goto fail;
    }
    if (!z) break;
    p = z + 1;
  }
  Py_XDECREF(key); /* an odd trailing name: dropped, as zip() did */
  return 0;
fail:
  Py_XDECREF(key);
  return -1;
}

static PyObject *request_tuple(dsp_event *ev) {
  http_req *r = ev->ptr;
  if (!bases || r->tag < 0 || r->tag >= PyTuple_Size(bases)) {
    PyErr_SetString(PyExc_RuntimeError, "iodine_py._fast: setup() has not named this listener");
    return NULL;
  }
  PyObject *env = PyDict_Copy(PyTuple_GetItem(bases, r->tag));
  if (!env) return NULL;
  if (fill_env(env, r->env, r->env_len) ||
      (!r->body_size && PyDict_SetItem(env, input_key, empty_input))) {
    Py_DECREF(env);
    return NULL;
  }
  /* N: the tuple takes env's reference */
  PyObject *t = Py_BuildValue("(iKKiiNK)", ev->kind, (unsigned long long)(uintptr_t)ev,
                              (unsigned long long)ev->conn, r->tag, r->upgrade, env,
                              (unsigned long long)(r->body_size ? (uintptr_t)r : 0));
  if (t && !r->body_size) {
    http_req_free(r);
    ev->ptr = NULL;
  }
  return t;
}

static PyObject *fast_next(PyObject *self, PyObject *args) {
  (void)self;
  unsigned long long tok;
  int mode;
  if (!PyArg_ParseTuple(args, "Ki", &tok, &mode)) return NULL;
  dsp_event *done = (dsp_event *)(uintptr_t)tok, *ev;
  if (mode == 1) {
    Py_BEGIN_ALLOW_THREADS
    ev = dsp_done_next(done, 1);
    Py_END_ALLOW_THREADS
  } else if (mode == 2) {
    ev = dsp_done_same(done);
  } else {
    ev = dsp_done_next(done, 0);
  }
  if (!ev) Py_RETURN_NONE;
  if (ev->kind == DSP_HTTP_REQUEST && ev->ptr) {
    PyObject *t = request_tuple(ev);
    if (t) return t;
    /* the event stays taken: hand it back as a plain one, so Python's
     * handler answers it (and finishes it) the usual way; the error is
     * reported, not raised, since the token must not be lost */
    PyErr_WriteUnraisable(NULL);
  }
  return Py_BuildValue("(iKKiii)", ev->kind, (unsigned long long)(uintptr_t)ev,
                       (unsigned long long)ev->conn, 0, 0, 0);
}

static PyMethodDef methods[] = {
    {"setup", fast_setup, METH_VARARGS, "setup(bases, empty_input, fixed_keys)"},
    {"next", fast_next, METH_VARARGS, "next(token, mode) -> None or an event tuple"},
    {NULL, NULL, 0, NULL},
};

int iodine_py_fast_install(void) {
  PyGILState_STATE g = PyGILState_Ensure();
  int rc = -1;
  PyObject *m = PyImport_AddModule("iodine_py._fast"); /* borrowed, in sys.modules */
  if (m && PyModule_AddFunctions(m, methods) == 0) rc = 0;
  if (rc) PyErr_Print();
  PyGILState_Release(g);
  return rc;
}
