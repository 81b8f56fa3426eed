/* events: the one registry of event kinds, everything the C core posts to
 * application code through dispatch (dsp_post) and Python reads as
 * dsp_event.kind (through api.h).
 *
 * Owns: the numbers: event kinds, and the upgrade kinds a request may
 * ask for (http_req.upgrade, an http_upgrader's kind). A new kind is one
 * line here, with its payload; the
 * numbers are never reused or renumbered (a kind removed leaves a hole),
 * and Python sees them by name only (the cdef's `#define DSP_X ...`), so
 * they are never written anywhere else.
 *
 * Must never: hold anything but the enums (every module that posts events
 * includes it; it includes nothing). */
#ifndef IODINE_EVENTS_H
#define IODINE_EVENTS_H

enum {
  /* HTTP (http_conn.c, http_resp.c) */
  DSP_HTTP_REQUEST = 1, /* ptr: http_req*, owned by the handler */
  DSP_HTTP_DRAIN = 2,   /* a suspended response may write again (or died) */
  /* timers (server.c) */
  DSP_TASK = 3,     /* arg: a Python-side task id (a timer fired) */
  DSP_TASK_END = 9, /* arg: that task id will not fire again */
  /* upgraded connections: WebSocket, SSE (upgrade.c, websocket.c, sse.c) */
  DSP_OPEN = 4,     /* the upgrade response is out: on_open */
  DSP_MESSAGE = 5,  /* ptr: ws_msg*, freed with ws_msg_done */
  DSP_DRAINED = 6,  /* the write queue emptied: on_drained */
  DSP_SHUTDOWN = 7, /* the server is stopping: on_shutdown, then close */
  DSP_CLOSE = 8,    /* gone: on_close, always last, always once */
  DSP_FAIL = 12,    /* protocol error: send Close with code `arg` now */
  /* pub/sub (pubsub.c) */
  DSP_PUBSUB = 10,     /* ptr: ps_msg*, arg: callback id; conn 0 = global */
  DSP_PS_CHANNEL = 11, /* ptr: ps_msg* (channel only), arg 0: it is gone;
                           pattern flag in ps_msg->pattern */
  /* the server (server.c) */
  DSP_STOPPING = 13, /* a graceful stop began (once per run) */
  /* the access log (accesslog.c) */
  DSP_LOG = 14, /* ptr: the line (free with al_free), arg: its length */
  /* the Redis engine (redis.c) */
  DSP_RD_REPLY = 20, /* ptr: rd_reply* (rd_reply_free), arg: callback id */
  DSP_RD_LOG = 21,   /* ptr: char* line (rd_log_free), arg: its length,
                           conn: 1 warning, 0 info */
  /* raw connections: raw services and outgoing clients (raw.c); they also
     post DSP_OPEN, DSP_DRAINED and DSP_SHUTDOWN */
  DSP_RAW_BIND = 22,   /* first: arg: the listener's tag or connect token */
  DSP_RAW_DATA = 23,   /* ptr: raw_msg*, freed with raw_msg_done */
  DSP_RAW_CLOSE = 24,  /* last: ptr: the reason (raw_str_free) */
  DSP_RAW_FAILED = 25, /* a connect that never had a socket: arg: token,
                           ptr: the reason (raw_str_free), conn 0 */
  /* the server, without a master (server.c) */
  DSP_RELOAD = 26, /* SIGHUP/SIGUSR1 without a master: import the app again */
  /* HTTP, when asked (http_want_sent, http_resp.c) */
  DSP_HTTP_SENT = 27, /* arg: how many finished responses of this
                           connection have left whole (or died with it) */
  DSP_NEXT_FREE = 28  /* the next number to give a new kind */
};

/* What an HTTP request may upgrade to (http_req.upgrade; Python's
 * rack.upgrade?): the kind of the registered upgrader (http_upgrade.h)
 * that recognised it. */
enum {
  UP_NONE = 0,
  UP_WEBSOCKET = 1, /* websocket.c's upgrader */
  UP_SSE = 2        /* sse.c's upgrader */
};

#endif
