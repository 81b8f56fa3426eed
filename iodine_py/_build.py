"""cffi (API, out-of-line) build of the C core: ``iodine_py._native``.

setuptools runs this through ``cffi_modules`` at ``pip install`` time. The
cdef below is the whole surface Python sees, compiled against ext/api.h;
struct layouts come from the real headers (the ``...;`` lets cffi read
them), and tests/test_api_header.py checks every declaration here against
the header that owns it, so the two cannot drift.
"""
import glob
import os
import shlex
import subprocess
import sys
import tempfile
from typing import Dict, List, Optional

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
EXT = os.path.join(ROOT, "ext")

CDEF = r"""
/* dispatch.h */
typedef struct dsp_event {
    int kind;
    uint64_t conn;
    void *ptr;
    uint64_t arg;
    ...;
} dsp_event;
#define DSP_HTTP_REQUEST ...
#define DSP_HTTP_DRAIN ...
#define DSP_HTTP_SENT ...
#define DSP_TASK ...
#define DSP_OPEN ...
#define DSP_MESSAGE ...
#define DSP_DRAINED ...
#define DSP_SHUTDOWN ...
#define DSP_CLOSE ...
#define DSP_TASK_END ...
#define DSP_PUBSUB ...
#define DSP_PS_CHANNEL ...
#define DSP_FAIL ...
#define DSP_STOPPING ...
#define DSP_RELOAD ...
dsp_event *dsp_next(int block);
void dsp_done(dsp_event *ev);
dsp_event *dsp_done_next(dsp_event *done, int block);
dsp_event *dsp_done_same(dsp_event *done);
typedef struct dsp_actor dsp_actor;
int dsp_post(dsp_actor *a, int kind, uint64_t conn, void *ptr, uint64_t arg);
void dsp_stop(void);

/* http.h */
typedef struct http_settings {
    size_t max_head;
    size_t max_line;
    size_t max_headers;
    uint64_t max_body;
    size_t spill;
    uint32_t keepalive_ms;
    int tag;
    uint64_t ws_max_msg;
    uint32_t ping_ms;
    size_t max_pending;
    uint32_t header_timeout_ms;
    const struct px_trust *trust;
    struct tls_ctx *tls;
    const char *public_root;
    uint32_t min_body_rate;
    int ws_deflate;
    int ws_deflate_bits;
    size_t ws_deflate_min;
    size_t ws_deflate_mem;
    int service;
    int stream_body;
} http_settings;
typedef struct http_req {
    uint64_t conn;
    int tag;
    int is_head;
    int upgrade;
    char *env;
    size_t env_len;
    char *body;
    size_t body_len;
    int body_fd;
    uint64_t body_size;
    int body_stream;
} http_req;
void http_req_free(http_req *r);
const char *http_env_fixed(void);
int http_respond(uint64_t conn, const char *status, size_t slen,
                 const char *headers, size_t hlen, size_t count,
                 const char *body, size_t blen);
int http_respond_begin(uint64_t conn, const char *status, size_t slen,
                       const char *headers, size_t hlen, size_t count,
                       const char *body, size_t blen);
long http_write(uint64_t conn, const char *data, size_t len);
long http_sendfile(uint64_t conn, int fd, uint64_t offset, uint64_t len);
int http_finish(uint64_t conn);
int http_abort(uint64_t conn);
int http_await_drain(uint64_t conn);
long http_queued(uint64_t conn);
int http_want_sent(uint64_t conn);
long http_body_read(uint64_t conn, char *dst, size_t len);
int http_upgrade(uint64_t conn, const char *headers, size_t hlen, size_t count);

/* events.h (UP_*), websocket.h, sse.h */
#define UP_WEBSOCKET ...
#define UP_SSE ...
typedef struct ws_msg {
    uint64_t conn;
    size_t len;
    int text;
    char data[];
} ws_msg;
long up_pending(uint64_t conn);
int up_is_open(uint64_t conn);
long up_timeout(uint64_t conn, long set_ms);
int up_close(uint64_t conn, unsigned code);
void up_want_drained(uint64_t conn, int on);
int ws_write(uint64_t conn, const void *data, size_t len, int text);
void ws_msg_done(ws_msg *m);
int ws_close(uint64_t conn, unsigned code, const char *reason, size_t rlen);
unsigned long long pmd_deflate_calls(void);
long pmd_inflaters_alive(void);
long pmd_zlib_bytes(void);
int sse_write(uint64_t conn, const char *data, size_t dlen, const char *event,
              size_t elen, const char *id, size_t ilen, long retry);
typedef struct sse_fields {
    const char *event;
    size_t elen;
    const char *id;
    size_t ilen;
    long retry;
} sse_fields;
long sse_format(char *out, size_t cap, const char *data, size_t dlen, const sse_fields *f);

/* psid.h */
typedef struct ps_id {
    uint64_t ms;
    uint64_t seq;
} ps_id;
size_t ps_id_format(char *out, ps_id id);
int ps_id_parse(const char *s, size_t n, ps_id *out);

/* pubsub.h */
typedef struct ps_msg {
    int text;
    int pattern;
    size_t channel_len;
    size_t len;
    char *channel;
    char *message;
    ps_id id;
    ...;
} ps_msg;
typedef struct ps_resume {
    long replayed;
    int complete;
} ps_resume;
int ps_subscribe_as(uint64_t conn, const char *name, size_t len, int pattern,
                    uint64_t callback, int as, const ps_id *since, ps_resume *out);
void ps_history_configure(size_t per_channel, size_t max_channels, size_t max_bytes);
size_t ps_history_bytes(void);
size_t ps_history_channels(void);
void ps_msg_release(ps_msg *m);
int ps_subscribe(uint64_t conn, const char *name, size_t len, int pattern,
                 uint64_t callback);
int64_t ps_unsubscribe(uint64_t conn, const char *name, size_t len, int pattern);
long ps_deliver(const char *sub, size_t slen, int pattern, const char *channel,
                size_t clen, const char *msg, size_t mlen, int text);
int ps_exists(const char *name, size_t len, int pattern);
long ps_publish_id(const char *channel, size_t clen, const char *msg,
                   size_t mlen, int text, ps_id id);
long ps_publish(const char *channel, size_t clen, const char *msg, size_t mlen,
                int text);
size_t ps_channel_count(void);
size_t ps_sub_count(void);

/* accesslog.h */
#define DSP_LOG ...
void al_enable(int on);
void al_free(char *line);

/* proxy.h */
typedef struct px_trust px_trust;
px_trust *px_parse(const char *spec, char *err, size_t errlen);

/* tls.h */
typedef struct tls_ctx tls_ctx;
int tls_available(void);
void tls_set_key_password(const char *pass);
tls_ctx *tls_ctx_new(const char *cert_file, const char *key_file, char *err,
                     size_t errlen);
void tls_ctx_free(tls_ctx *t);
tls_ctx *tls_client_ctx_new(const char *ca_file, int verify, char *err, size_t errlen);

/* server.h */
int srv_init(void);
size_t srv_default_max_connections(void);
void srv_set_max_connections(size_t n);
void srv_set_reuseport(int on);
int srv_listen(const char *addr, int port, const http_settings *settings);
int srv_run(void (*runner)(void), uint32_t grace_ms);
void srv_stop(void);
void srv_arm_signals(void);
void srv_disarm_signals(void);
void srv_close_listeners(void);
int srv_after_fork(void);
int srv_balance_init(int slots);
void srv_balance_join(int slot);
void srv_balance_vacate(int slot);
int srv_master_turn(int max_wait_ms);
int srv_stop_requested(void);
void srv_catch_usr1(void);
void srv_set_exit_after(long stop_ms, long retire_ms);
void srv_set_pid_file(const char *path);
void srv_disarm_exit(void);
int srv_take_reloads(void);
int srv_fast_exit_requested(void);
int srv_stop_signals(void);
void srv_set_master(int on);
void srv_shutdown_listeners(void);
void srv_set_drain_ms(uint32_t ms);
void srv_set_backlog(int n);
void srv_set_unix_mode(int mode);
void srv_unlink_unix_sockets(void);
int srv_listen_fd(int fd, const http_settings *settings);
int cl_master_adopt(int fd, int slot);
int cl_worker_adopt(int fd);
int cl_publish(const char *channel, size_t clen, const char *msg, size_t mlen, int text);
int cl_active(void);
#define CL_MAX_WORKERS ...
uint64_t srv_timer(uint64_t ms, uint64_t interval_ms, uint64_t reps, uint64_t task);
void srv_timer_cancel(uint64_t timer_id);

/* redis.h (resp.h's node) */
typedef struct resp_node {
    int type;
    int64_t n;
    const char *str;
    size_t len;
} resp_node;
#define DSP_RD_REPLY ...
#define DSP_RD_LOG ...
typedef struct rd_settings {
    const char *host;
    int port;
    const char *user;
    const char *password;
    int db;
    const char *stream;
    uint64_t stream_max;
    uint32_t ping_ms;
    uint32_t timeout_ms;
    uint32_t backoff_min_ms, backoff_max_ms;
    uint32_t block_ms;
    size_t queue_max;
    size_t queue_bytes;
} rd_settings;
typedef struct rd_reply {
    size_t n;
    resp_node *nodes;
} rd_reply;
typedef struct rd_stats {
    int configured;
    int connected;
    uint64_t queued;
    uint64_t queued_bytes;
    uint64_t refused;
    uint64_t delivered;
    uint64_t duplicates;
    uint64_t reconnects;
    uint64_t origin;
} rd_stats;
int rd_configure(const rd_settings *s);
void rd_unconfigure(void);
int rd_publish(const char *channel, size_t clen, const char *msg, size_t mlen, int text);
int rd_cmd(int argc, const char *const *argv, const size_t *lens, uint64_t callback);
rd_reply *rd_cmd_wait(int argc, const char *const *argv, const size_t *lens,
                      uint32_t timeout_ms, int *err);
void rd_reply_free(rd_reply *r);
void rd_log_free(char *line);
void rd_get_stats(rd_stats *out);
int rx_in_loop_thread(void);
/* pyfast.h (implemented in iodine_py/_fast.c) */
int iodine_py_fast_install(void);

/* raw.h */
#define DSP_RAW_BIND ...
#define DSP_RAW_DATA ...
#define DSP_RAW_CLOSE ...
#define DSP_RAW_FAILED ...
typedef struct raw_msg {
    uint64_t conn;
    size_t len;
    int text;
    char data[];
} raw_msg;
typedef struct raw_ws_opts {
    const char *request;
    size_t request_len;
    const char *accept;
    const char *protocols;
} raw_ws_opts;
uint64_t raw_connect(const char *addr, int port, const http_settings *s, tls_ctx *tls,
                     const char *servername, uint32_t timeout_ms, uint64_t token,
                     const raw_ws_opts *ws);
int raw_fail(uint64_t token, const char *reason);
int raw_write(uint64_t conn, const void *data, size_t len);
int raw_send(uint64_t conn, const void *data, size_t len, int text);
long raw_subprotocol(uint64_t conn, char *out, size_t cap);
void raw_msg_done(raw_msg *m);
void raw_str_free(char *s);

/* Python entry points the core calls. */
extern "Python" void iodine_py_run_events(void);
"""

SOURCES = sorted(
    os.path.relpath(p, ROOT)
    for p in glob.glob(os.path.join(EXT, "*.c"))
)
# The C-API glue (ext/pyfast.h): part of the binding, not of the C core, so
# not in SOURCES' strict check (it needs Python.h, and the C API's type slots
# hold function pointers as void *, which -Wpedantic refuses, as with cffi's
# own glue). It is -Wall -Wextra clean.
BINDING_SOURCES = [os.path.join("iodine_py", "_fast.c")]

CFLAGS = ["-std=c11", "-O2", "-Wall", "-Wextra", "-fvisibility=hidden"]
if os.environ.get("IODINE_SANITIZE"):
    CFLAGS += ["-O1", "-g", "-fno-omit-frame-pointer",
               "-fsanitize=" + os.environ["IODINE_SANITIZE"]]
if os.environ.get("IODINE_DEBUG"):
    CFLAGS += ["-O0", "-g"]
# The state-transition asserts (ext/http_conn.c) are for debug builds:
# Python's own flags define NDEBUG, so debug and sanitizer builds undo it.
CFLAGS += ["-UNDEBUG"] if (os.environ.get("IODINE_SANITIZE")
                           or os.environ.get("IODINE_DEBUG")) else ["-DNDEBUG"]
# IODINE_STRICT=1 (CI, .ci/run): every ext/ file must compile with
# -Wpedantic -Werror. cffi's generated glue is not ISO C (it converts
# function pointers to void *), so the check compiles our sources alone, in
# strict_check() below, before the build.
STRICT = os.environ.get("IODINE_STRICT", "") not in ("", "0")


def find_openssl() -> Optional[Dict[str, List[str]]]:
    """How to build against OpenSSL 3 (TLS), or None to build without it.

    A tiny program is compiled and linked with the flags pkg-config gives
    (or plain -lssl -lcrypto): that answers whether the headers and the
    libraries are really there, which looking for files would only guess.
    IODINE_NO_TLS=1 builds without TLS even when OpenSSL is present."""
    if os.environ.get("IODINE_NO_TLS", "") not in ("", "0"):
        return None
    flags = ["-lssl", "-lcrypto"]
    try:
        out = subprocess.run(["pkg-config", "--cflags", "--libs", "openssl"],
                             capture_output=True, text=True, timeout=30)
        if out.returncode == 0 and out.stdout.strip():
            flags = shlex.split(out.stdout)
    except (OSError, subprocess.SubprocessError):
        pass
    probe = (
        "#include <openssl/ssl.h>\n"
        "#if OPENSSL_VERSION_NUMBER < 0x30000000L\n#error OpenSSL 3 needed\n#endif\n"
        "int main(void) { SSL_CTX_free(SSL_CTX_new(TLS_server_method())); return 0; }\n")
    cc = shlex.split(os.environ.get("CC") or "cc")
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(probe)
        try:
            ok = subprocess.run([*cc, src, "-o", os.path.join(tmp, "probe"), *flags],
                                capture_output=True, timeout=120).returncode == 0
        except (OSError, subprocess.SubprocessError):
            ok = False
    if not ok:
        return None
    found: Dict[str, List[str]] = {"include_dirs": [], "library_dirs": [], "libraries": [],
                                   "extra": []}
    for flag in flags:
        for prefix, key in (("-I", "include_dirs"), ("-L", "library_dirs"), ("-l", "libraries")):
            if flag.startswith(prefix) and len(flag) > 2:
                found[key].append(flag[2:])
                break
        else:
            found["extra"].append(flag)
    return found


OPENSSL = find_openssl()
if OPENSSL is None:
    sys.stderr.write("iodine-py: building without TLS (no OpenSSL 3 headers and "
                     "libraries found: install libssl-dev, then rebuild)\n")



def strict_check(sources: List[str]) -> None:
    """Compile each ext/ source with -Wpedantic -Werror (IODINE_STRICT=1)."""
    cc = shlex.split(os.environ.get("CC") or "cc")
    flags = [f for f in CFLAGS if not f.startswith("-fsanitize")]
    flags += ["-Wpedantic", "-Werror", "-fsyntax-only", "-I" + EXT]
    if OPENSSL:
        flags += ["-DIODINE_TLS=1"] + ["-I" + d for d in OPENSSL["include_dirs"]]
    failed = []
    for src in sources:
        out = subprocess.run([*cc, *flags, os.path.join(ROOT, src)],
                             capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            failed.append(src)
            sys.stderr.write(out.stderr)
    if failed:
        raise SystemExit("iodine-py: IODINE_STRICT: not -Wpedantic -Werror clean: "
                         + ", ".join(failed))


if STRICT:
    strict_check(SOURCES)

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "iodine_py._native",
    '#include "api.h"\n',  # ext/api.h: every header Python may call into
    sources=SOURCES + BINDING_SOURCES,
    include_dirs=["ext"] + (OPENSSL["include_dirs"] if OPENSSL else []),
    define_macros=[("IODINE_TLS", "1")] if OPENSSL else [],
    library_dirs=OPENSSL["library_dirs"] if OPENSSL else [],
    libraries=["z"] + (OPENSSL["libraries"] if OPENSSL else []),  # z: permessage-deflate
    extra_compile_args=CFLAGS,
    extra_link_args=(["-fsanitize=" + os.environ["IODINE_SANITIZE"]]
                     if os.environ.get("IODINE_SANITIZE") else [])
                    + (OPENSSL["extra"] if OPENSSL else []),
)

if __name__ == "__main__":
    os.chdir(ROOT)
    ffibuilder.compile(verbose=True, tmpdir=os.path.join(ROOT, "build", "cffi"))
    sys.exit(0)
