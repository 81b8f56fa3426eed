/* iodine_py/_fast.c: taking events for Python and answering the common
 * request through the CPython C API (see ext/pyfast.h for why). Part of
 * the binding: compiled into iodine_py._native only.
 *
 * Owns: the module iodine_py._fast and its functions:
 *
 *   setup(bases, empty_input, fixed_keys, factory, pool, apps, direct)
 *       bases: a tuple of environ dicts, one per listener tag (copied per
 *       request); empty_input: wsgi.input for requests without a body;
 *       fixed_keys: the keys of the blob's fixed values (http_env_fixed);
 *       factory, pool: see call() below; apps: the app of each tag;
 *       direct: answer plain requests inside next().
 *   next(token, mode, left) -> None | a tuple whose last item is left
 *       Finishes the event `token` (0: none) and takes the next one, the
 *       way dsp_done_next(done, 0) (mode 0), dsp_done_next(done, 1)
 *       (mode 1: blocks, with the GIL released) or dsp_done_same (mode 2)
 *       do: ordering is dispatch.c's, unchanged. A plain request (no
 *       body, no upgrade, no access log: setup()'s direct) is answered
 *       here, through call() below, and the next event taken, until one
 *       needs Python; in mode 0 at most `left` events are handled. Tuples:
 *         (DSP_HTTP_REQUEST, token, conn, tag, upgrade, env, req, left)
 *           any other request: env is its environ dict built here (base
 *           copy, the blob's keys, wsgi.input = empty_input without a
 *           body); req 0 (freed here) or, with a body, its http_req
 *           address: Python makes wsgi.input from it and frees it;
 *         (FAST_RESUME, token, conn, resp, exc, result, left)
 *           the app was called here and did not give the common answer:
 *           Python finishes with resp (see call());
 *         (FAST_BUDGET, token, 0, 0): `left` ran out on a request answered
 *           here: Python goes on with mode 2 from token;
 *         (FAST_WS_MESSAGE, token, conn, data, left): a WebSocket
 *           message as on_message takes it (str for text, whose UTF-8
 *           the core has checked; bytes for binary), its ws_msg already
 *           freed here (reading may resume before the app is done);
 *         (kind, token, conn, left): any other event: Python casts the
 *           token to its dsp_event * and handles it as before.
 *       A token is a dsp_event address as an int: every token returned
 *       must be passed back exactly once (that finishes its event).
 *
 * Must never: touch a connection other than through the core's own calls
 * (http_respond, ws_msg_done: they take the reactor's lock; dispatch.c
 * never takes it either, so holding the GIL around dsp_done_next(.., 0)
 * cannot deadlock: nobody waits for the GIL while holding the queue lock).
 *
 * Threads: the GIL is held on entry (C-API functions); it is released only
 * around a blocking wait (mode 1) and, with an application pool, around
 * http_respond and ws_msg_done (which take the big lock: a thread waiting for it must not
 * hold up the other app threads). Holding the GIL while taking the big
 * lock cannot deadlock: no thread waits for the GIL holding that lock. */
#define PY_SSIZE_T_CLEAN
#define Py_LIMITED_API 0x03090000
#include <Python.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "http.h"
#include "websocket.h"
#include "pyfast.h"

/* A request with a body for Python to read: collected (body_size) or
 * arriving (body_stream, read through http_body_read). */
#define HAS_BODY(r) ((r)->body_size || (r)->body_stream)

static PyObject *bases;       /* tuple of dicts */
static PyObject *empty_input; /* wsgi.input without a body */
static PyObject *fixed_keys;  /* tuple of str */
static PyObject *input_key;   /* "wsgi.input" */
static PyObject *apps;        /* tuple of apps, one per listener tag */
static int direct;            /* plain requests are answered in next() */
/* kinds of next()'s own tuples (never DSP_* values: those are >= 0) */
#define FAST_RESUME (-1)
#define FAST_BUDGET (-2)
#define FAST_WS_MESSAGE (-3)
static PyTypeObject *start_resp_type;
static PyObject *factory; /* factory(conn, env, status, headers) -> Response */
static int pool_mode;     /* release the GIL around http_respond */
static PyObject *str_start_response, *str_write;

static PyObject *fast_setup(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *b, *e, *k, *f, *a;
  int pool, dir;
  if (!PyArg_ParseTuple(args, "O!OO!OpO!p", &PyTuple_Type, &b, &e, &PyTuple_Type, &k, &f, &pool,
                        &PyTuple_Type, &a, &dir))
    return NULL;
  Py_INCREF(f);
  Py_XDECREF(factory);
  factory = f;
  Py_INCREF(a);
  Py_XDECREF(apps);
  apps = a;
  direct = dir;
  pool_mode = pool;
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

/* The request's environ dict: the listener's base, the blob, wsgi.input
 * when there is no body. NULL with an error set. */
static PyObject *build_env(const http_req *r) {
  if (!bases || r->tag < 0 || r->tag >= PyTuple_Size(bases)) {
    PyErr_SetString(PyExc_RuntimeError, "iodine_py._fast: setup() has not named this listener");
    return NULL;
  }
  PyObject *env = PyDict_Copy(PyTuple_GetItem(bases, r->tag));
  if (!env) return NULL;
  if (fill_env(env, r->env, r->env_len) ||
      (!HAS_BODY(r) && PyDict_SetItem(env, input_key, empty_input))) {
    Py_DECREF(env);
    return NULL;
  }
  return env;
}

static PyObject *request_tuple(dsp_event *ev, int left) {
  http_req *r = ev->ptr;
  PyObject *env = build_env(r);
  if (!env) return NULL;
  /* N: the tuple takes env's reference */
  PyObject *t = Py_BuildValue("(iKKiiNKi)", ev->kind, (unsigned long long)(uintptr_t)ev,
                              (unsigned long long)ev->conn, r->tag, r->upgrade, env,
                              (unsigned long long)(HAS_BODY(r) ? (uintptr_t)r : 0), left);
  if (t && !HAS_BODY(r)) {
    http_req_free(r);
    ev->ptr = NULL;
  }
  return t;
}

/* --- the app call and the common answer (call) ------------------------------
 *
 *   call(app, env, conn) -> None | (status, headers, result, resp, exc)
 *       Calls app(env, start_response) with a start_response made here.
 *       None: the answer was the common one and has been sent and finished
 *       here: a list of one bytes body, a str status, a list of (str, str)
 *       headers in latin-1, no write(), and http_respond took it (0 or 1).
 *       Anything else comes back for wsgi.Response to finish exactly as it
 *       always did: status and headers as start_response stored them, the
 *       app's result (None when it raised), resp (the Response setup()'s
 *       factory made, at the first write() or now; start_response and
 *       write hand it every later call) and exc (what the app raised, or
 *       None).
 *   start_response(status, headers, exc_info=None) checks what
 *       Response.start_response checks; write() (PEP 3333's legacy one)
 *       asks setup()'s factory(conn, env, status, headers) for a Response
 *       and hands it every later call: from then on Python has it all.
 *
 * The caller (server.py) uses call() only where Response would do exactly
 * this: no upgrade, no access log. */

typedef struct {
  PyObject_HEAD PyObject *status; /* None until start_response */
  PyObject *headers;
  PyObject *resp; /* the Response after a write(), else NULL */
  PyObject *env;
  unsigned long long conn;
} start_resp;

static int sr_traverse(PyObject *o, visitproc visit, void *arg) {
  start_resp *s = (start_resp *)o;
  Py_VISIT(s->status);
  Py_VISIT(s->headers);
  Py_VISIT(s->resp);
  Py_VISIT(s->env);
  return 0;
}

static int sr_clear(PyObject *o) {
  start_resp *s = (start_resp *)o;
  Py_CLEAR(s->status);
  Py_CLEAR(s->headers);
  Py_CLEAR(s->resp);
  Py_CLEAR(s->env);
  return 0;
}

static void sr_dealloc(PyObject *o) {
  PyTypeObject *tp = Py_TYPE(o);
  PyObject_GC_UnTrack(o);
  sr_clear(o);
  PyObject_GC_Del(o); /* the type's tp_free: a GC type's default */
  Py_DECREF(tp);
}

static PyObject *type_error(const char *what, PyObject *got) {
  PyObject *name = PyObject_GetAttrString((PyObject *)Py_TYPE(got), "__name__");
  if (name) {
    PyErr_Format(PyExc_TypeError, "%s, not %U", what, name);
    Py_DECREF(name);
  }
  return NULL;
}

/* Response.start_response's checks, in its order and words. */
static PyObject *sr_call(PyObject *o, PyObject *args, PyObject *kw) {
  start_resp *s = (start_resp *)o;
  if (s->resp) {
    PyObject *m = PyObject_GetAttr(s->resp, str_start_response);
    if (!m) return NULL;
    PyObject *r = PyObject_Call(m, args, kw);
    Py_DECREF(m);
    return r;
  }
  static char *names[] = {"status", "headers", "exc_info", NULL};
  PyObject *status, *headers, *exc_info = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|O:start_response", names, &status, &headers,
                                   &exc_info))
    return NULL;
  /* exc_info with nothing sent yet (always so here: sending starts after
   * the app returns, or in the Response a write() made) just replaces */
  if (exc_info == Py_None && s->status != Py_None) {
    PyErr_SetString(PyExc_AssertionError, "start_response() called again without exc_info");
    return NULL;
  }
  if (!PyUnicode_CheckExact(status)) return type_error("status must be str", status);
  if (!PyList_CheckExact(headers)) return type_error("headers must be a list", headers);
  Py_INCREF(status);
  Py_INCREF(headers);
  PyObject *os = s->status, *oh = s->headers;
  s->status = status;
  s->headers = headers;
  Py_XDECREF(os);
  Py_XDECREF(oh);
  return PyObject_GetAttr(o, str_write);
}

static PyObject *sr_write(PyObject *o, PyObject *data) {
  start_resp *s = (start_resp *)o;
  if (!s->resp) {
    if (s->status == Py_None) {
      PyErr_SetString(PyExc_AssertionError, "write() before start_response()");
      return NULL;
    }
    s->resp = PyObject_CallFunction(factory, "KOOO", s->conn, s->env, s->status, s->headers);
    if (!s->resp) return NULL;
  }
  return PyObject_CallMethodObjArgs(s->resp, str_write, data, NULL);
}

static PyMethodDef sr_methods[] = {
    {"write", sr_write, METH_O, "PEP 3333's write(data)"},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot sr_slots[] = {
    {Py_tp_call, sr_call},   {Py_tp_dealloc, sr_dealloc}, {Py_tp_traverse, sr_traverse},
    {Py_tp_clear, sr_clear}, {Py_tp_methods, sr_methods}, {0, NULL},
};

static PyType_Spec sr_spec = {"iodine_py._fast.start_response", sizeof(start_resp), 0,
                              Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, sr_slots};

/* The headers as "name\0value\0..." in latin-1, or NULL (no error set)
 * when they are not all (str, str) pairs in latin-1: then Python's _head
 * decides (and raises what it raises). */
static PyObject *flat_headers(PyObject *headers) {
  Py_ssize_t n = PyList_Size(headers);
  PyObject *parts = PyList_New(0);
  if (!parts) return NULL;
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *pair = PyList_GetItem(headers, i);
    if (!PyTuple_CheckExact(pair) || PyTuple_Size(pair) != 2) goto no;
    for (int k = 0; k < 2; k++) {
      PyObject *x = PyTuple_GetItem(pair, k);
      if (!PyUnicode_CheckExact(x) || PyList_Append(parts, x)) goto no;
    }
  }
  PyObject *sep = PyUnicode_FromStringAndSize("\0", 1);
  if (!sep) goto no;
  PyObject *joined = PyUnicode_Join(sep, parts);
  Py_DECREF(sep);
  Py_DECREF(parts);
  if (!joined) {
    PyErr_Clear();
    return NULL;
  }
  PyObject *b = PyUnicode_AsLatin1String(joined);
  Py_DECREF(joined);
  if (!b) PyErr_Clear();
  return b;
no:
  Py_DECREF(parts);
  PyErr_Clear();
  return NULL;
}

/* 1: answered and finished here; 0: not the common case (nothing sent). */
static int answer_common(start_resp *s, PyObject *result) {
  if (s->resp || s->status == Py_None || !PyList_CheckExact(result) || PyList_Size(result) != 1)
    return 0;
  PyObject *body = PyList_GetItem(result, 0);
  if (!PyBytes_CheckExact(body)) return 0;
  PyObject *st = PyUnicode_AsLatin1String(s->status);
  if (!st) {
    PyErr_Clear();
    return 0;
  }
  PyObject *flat = flat_headers(s->headers);
  if (!flat) {
    Py_DECREF(st);
    return 0;
  }
  char *sp, *hp, *bp;
  Py_ssize_t sl, hl, bl;
  PyBytes_AsStringAndSize(st, &sp, &sl);
  PyBytes_AsStringAndSize(flat, &hp, &hl);
  PyBytes_AsStringAndSize(body, &bp, &bl);
  size_t count = (size_t)PyList_Size(s->headers);
  int r;
  if (pool_mode) {
    Py_BEGIN_ALLOW_THREADS r =
        http_respond(s->conn, sp, (size_t)sl, hp, (size_t)hl, count, bp, (size_t)bl);
    Py_END_ALLOW_THREADS
  } else {
    r = http_respond(s->conn, sp, (size_t)sl, hp, (size_t)hl, count, bp, (size_t)bl);
  }
  Py_DECREF(st);
  Py_DECREF(flat);
  /* -2: malformed, nothing sent: Python's _head says so (ValueError, 500) */
  return r != -2;
}

static PyObject *call_app(PyObject *app, PyObject *env, unsigned long long conn) {
  if (!start_resp_type || !factory) {
    PyErr_SetString(PyExc_RuntimeError, "iodine_py._fast: setup() first");
    return NULL;
  }
  start_resp *s = PyObject_GC_New(start_resp, start_resp_type);
  if (!s) return NULL;
  Py_INCREF(Py_None);
  s->status = Py_None;
  Py_INCREF(Py_None);
  s->headers = Py_None;
  s->resp = NULL;
  Py_INCREF(env);
  s->env = env;
  s->conn = conn;
  PyObject_GC_Track((PyObject *)s);
  PyObject *result = PyObject_CallFunctionObjArgs(app, env, (PyObject *)s, NULL);
  PyObject *out;
  if (result && answer_common(s, result)) {
    Py_DECREF(result);
    Py_DECREF(s);
    Py_RETURN_NONE; /* answered here */
  }
  if (!s->resp) {
    /* Python finishes this one: the Response it will use is made now, and
     * start_response/write hand every later call to it (a generator that
     * calls start_response(..., exc_info) after output must meet the
     * Response that sent it) */
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    s->resp = PyObject_CallFunction(factory, "KOOO", s->conn, s->env, s->status, s->headers);
    if (!s->resp) {
      Py_XDECREF(t);
      Py_XDECREF(v);
      Py_XDECREF(tb);
      Py_XDECREF(result);
      Py_DECREF(s);
      return NULL;
    }
    PyErr_Restore(t, v, tb);
  }
  if (!result) {
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    if (tb && v) PyException_SetTraceback(v, tb);
    out = Py_BuildValue("(OOOOO)", s->status, s->headers, Py_None, s->resp ? s->resp : Py_None,
                        v ? v : Py_None);
    Py_XDECREF(t);
    Py_XDECREF(v);
    Py_XDECREF(tb);
  } else {
    out = Py_BuildValue("(OOOOO)", s->status, s->headers, result, s->resp ? s->resp : Py_None,
                        Py_None);
    Py_DECREF(result);
  }
  Py_DECREF(s);
  return out;
}

static PyObject *fast_call(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *app, *env;
  unsigned long long conn;
  if (!PyArg_ParseTuple(args, "OOK", &app, &env, &conn)) return NULL;
  return call_app(app, env, conn);
}

/* --- taking events (next) --------------------------------------------------- */

static dsp_event *take(dsp_event *done, int mode) {
  dsp_event *ev;
  if (mode == 1) {
    Py_BEGIN_ALLOW_THREADS ev = dsp_done_next(done, 1);
    Py_END_ALLOW_THREADS
  } else if (mode == 2) {
    ev = dsp_done_same(done);
  } else {
    ev = dsp_done_next(done, 0);
  }
  return ev;
}

/* A request this file answers without returning to Python: no body, no
 * upgrade, and setup() said direct (no access log). */
static int plain_request(const dsp_event *ev) {
  const http_req *r = ev->ptr;
  return direct && ev->kind == DSP_HTTP_REQUEST && r && !HAS_BODY(r) && !r->upgrade && apps &&
         r->tag >= 0 && r->tag < PyTuple_Size(apps);
}

/* Take events, answering plain requests here (the app called through
 * call_app) until one needs Python, the queue is empty (None) or, in mode
 * 0, `left` events have been handled (then the BUDGET tuple: Python goes
 * on with mode 2, dsp_done_same, so the connection's run still ends
 * together). Every tuple ends with what is left of the budget. */
/* The FAST_WS_MESSAGE tuple for a DSP_MESSAGE event, its ws_msg freed; NULL
 * (an exception set, the message untouched) when it cannot be made. */
static PyObject *ws_message_tuple(dsp_event *ev, int left) {
  ws_msg *m = ev->ptr;
  PyObject *data = m->text ? PyUnicode_DecodeUTF8(m->data, (Py_ssize_t)m->len, "strict")
                           : PyBytes_FromStringAndSize(m->data, (Py_ssize_t)m->len);
  if (!data) return NULL;
  PyObject *t = Py_BuildValue("(iKKOi)", FAST_WS_MESSAGE, (unsigned long long)(uintptr_t)ev,
                              (unsigned long long)ev->conn, data, left);
  Py_DECREF(data);
  if (!t) return NULL;
  ev->ptr = NULL;
  if (pool_mode) {
    Py_BEGIN_ALLOW_THREADS ws_msg_done(m);
    Py_END_ALLOW_THREADS
  } else {
    ws_msg_done(m);
  }
  return t;
}

static PyObject *fast_next(PyObject *self, PyObject *args) {
  (void)self;
  unsigned long long tok;
  int mode, left;
  if (!PyArg_ParseTuple(args, "Kii", &tok, &mode, &left)) return NULL;
  dsp_event *done = (dsp_event *)(uintptr_t)tok, *ev;
  for (;;) {
    ev = take(done, mode);
    if (!ev) Py_RETURN_NONE;
    unsigned long long et = (unsigned long long)(uintptr_t)ev;
    if (!plain_request(ev)) break;
    http_req *r = ev->ptr;
    PyObject *env = build_env(r);
    if (!env) { /* let Python's own path answer it (and report) */
      PyErr_WriteUnraisable(NULL);
      break;
    }
    /* held for the call: a reload may replace the tuple meanwhile (from
     * another thread of the pool, while this app runs) */
    PyObject *app = PyTuple_GetItem(apps, r->tag);
    Py_XINCREF(app);
    http_req_free(r);
    ev->ptr = NULL;
    PyObject *res = app ? call_app(app, env, ev->conn) : NULL;
    Py_XDECREF(app);
    Py_DECREF(env);
    if (!res) { /* our machinery failed, not the app (that is in res) */
      PyErr_WriteUnraisable(NULL);
    } else if (res != Py_None) {
      PyObject *t = Py_BuildValue("(iKKOOOi)", FAST_RESUME, et, (unsigned long long)ev->conn,
                                  PyTuple_GetItem(res, 3), PyTuple_GetItem(res, 4),
                                  PyTuple_GetItem(res, 2), left);
      Py_DECREF(res);
      return t;
    } else {
      Py_DECREF(res);
    }
    done = ev;
    if (mode == 0 && --left <= 0) return Py_BuildValue("(iKKi)", FAST_BUDGET, et, 0ULL, 0);
  }
  if (ev->kind == DSP_HTTP_REQUEST && ev->ptr) {
    PyObject *t = request_tuple(ev, left);
    if (t) return t;
    /* the event stays taken: hand it back as a plain one, so Python's
     * handler answers it (and finishes it) the usual way; the error is
     * reported, not raised, since the token must not be lost */
    PyErr_WriteUnraisable(NULL);
  }
  if (ev->kind == DSP_MESSAGE && ev->ptr) {
    PyObject *t = ws_message_tuple(ev, left);
    if (t) return t;
    PyErr_WriteUnraisable(NULL); /* Python's own path takes it, as before */
  }
  return Py_BuildValue("(iKKi)", ev->kind, (unsigned long long)(uintptr_t)ev,
                       (unsigned long long)ev->conn, left);
}

static PyMethodDef methods[] = {
    {"setup", fast_setup, METH_VARARGS, "setup(bases, empty_input, fixed_keys)"},
    {"next", fast_next, METH_VARARGS, "next(token, mode, left) -> None or an event tuple"},
    {"call", fast_call, METH_VARARGS, "call(app, env, conn) -> None or what Python finishes"},
    {NULL, NULL, 0, NULL},
};

int iodine_py_fast_install(void) {
  PyGILState_STATE g = PyGILState_Ensure();
  int rc = -1;
  PyObject *m = PyImport_AddModule("iodine_py._fast"); /* borrowed, in sys.modules */
  if (!start_resp_type) start_resp_type = (PyTypeObject *)PyType_FromSpec(&sr_spec);
  if (!str_start_response) str_start_response = PyUnicode_InternFromString("start_response");
  if (!str_write) str_write = PyUnicode_InternFromString("write");
  if (m && start_resp_type && str_start_response && str_write &&
      PyModule_AddFunctions(m, methods) == 0)
    rc = 0;
  if (rc) PyErr_Print();
  PyGILState_Release(g);
  return rc;
}
