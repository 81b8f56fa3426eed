"""cffi (API, out-of-line) build of the C core: ``iodine_py._native``.

setuptools runs this through ``cffi_modules`` at ``pip install`` time. The
cdef below is the whole surface Python sees; struct layouts come from the
real headers (the ``...;`` lets cffi read them), so the two cannot drift.
"""
import glob
import os
import sys

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
#define DSP_HTTP_REQUEST 1
#define DSP_HTTP_DRAIN 2
#define DSP_TASK 3
dsp_event *dsp_next(int block);
void dsp_done(dsp_event *ev);
int dsp_post(void *actor, int kind, uint64_t conn, void *ptr, uint64_t arg);
void dsp_stop(void);

/* http.h */
typedef struct http_req {
    uint64_t conn;
    int tag;
    int is_head;
    char *env;
    size_t env_len;
    char *body;
    size_t body_len;
    int body_fd;
    uint64_t body_size;
} http_req;
void http_req_free(http_req *r);
int http_respond(uint64_t conn, const char *status, size_t slen,
                 const char *headers, size_t hlen, size_t count,
                 const char *body, size_t blen, int finish);
long http_write(uint64_t conn, const char *data, size_t len);
long http_sendfile(uint64_t conn, int fd, uint64_t offset, uint64_t len);
int http_finish(uint64_t conn);
int http_abort(uint64_t conn);
int http_await_drain(uint64_t conn);
long http_queued(uint64_t conn);

/* server.h */
int srv_init(void);
int srv_listen(const char *addr, int port, size_t max_head, size_t max_line,
               size_t max_headers, uint64_t max_body, size_t spill,
               uint32_t keepalive_ms, int tag);
int srv_run(void (*runner)(void), uint32_t grace_ms);
void srv_stop(void);
void srv_close_listeners(void);

/* Python entry points the core calls. */
extern "Python" void iodine_py_run_events(void);
"""

SOURCES = sorted(
    os.path.relpath(p, ROOT)
    for p in glob.glob(os.path.join(EXT, "*.c"))
)

CFLAGS = ["-std=c11", "-O2", "-Wall", "-Wextra", "-fvisibility=hidden"]
if os.environ.get("IODINE_SANITIZE"):
    CFLAGS += ["-O1", "-g", "-fno-omit-frame-pointer",
               "-fsanitize=" + os.environ["IODINE_SANITIZE"]]
if os.environ.get("IODINE_DEBUG"):
    CFLAGS += ["-O0", "-g"]

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "iodine_py._native",
    '#include "dispatch.h"\n#include "http.h"\n#include "server.h"\n',
    sources=SOURCES,
    include_dirs=["ext"],
    extra_compile_args=CFLAGS,
    extra_link_args=(["-fsanitize=" + os.environ["IODINE_SANITIZE"]]
                     if os.environ.get("IODINE_SANITIZE") else []),
)

if __name__ == "__main__":
    os.chdir(ROOT)
    ffibuilder.compile(verbose=True, tmpdir=os.path.join(ROOT, "build", "cffi"))
    sys.exit(0)
