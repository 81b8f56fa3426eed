/* api: what Python may call, and the one header the binding is compiled
 * against (iodine_py/_build.py: set_source includes this file and nothing
 * else).
 *
 * Owns: the boundary. The cdef in iodine_py/_build.py names exactly the
 * functions, constants and struct fields Python may use; every one of them
 * must be declared by a header included below, with the same signature.
 * tests/test_api_header.py checks that (so a cdef that drifts from the C,
 * or names a header not listed here, fails the suite rather than the
 * build or, worse, a call at run time). A module whose functions Python
 * calls is listed here once; nothing else in ext/ includes api.h.
 *
 * Must never: declare anything itself (each declaration has one home, its
 * module's header), or include a header Python has no business with (the
 * reactor, the parsers, the HTTP core's private http_conn.h).
 *
 * Threads: each function's own header says; most take the big lock. */
#ifndef IODINE_API_H
#define IODINE_API_H

#include "events.h"    /* DSP_* event kinds, UP_* upgrade kinds */
#include "dispatch.h"  /* dsp_event, dsp_next / dsp_done..., dsp_post */
#include "http.h"      /* http_settings, http_req, the response API */
#include "upgrade.h"   /* up_* calls on any upgraded connection */
#include "websocket.h" /* ws_msg, ws_write */
#include "sse.h"       /* sse_write, sse_format */
#include "pubsub.h"    /* ps_* */
#include "cluster.h"   /* cl_* */
#include "proxy.h"     /* px_parse */
#include "tls.h"       /* tls_ctx_* */
#include "accesslog.h" /* al_enable, al_free */
#include "server.h"    /* srv_* */
#include "redis.h"     /* rd_*: the Redis engine */
#include "pmd.h"       /* pmd_* counters (tests) */
#include "raw.h"       /* raw_*: raw services and client connections */
#include "reactor.h"   /* rx_in_loop_thread */
#include "pyfast.h"    /* iodine_py_fast_install (iodine_py/_fast.c) */

#endif
