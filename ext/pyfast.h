/* pyfast: the request hand-off to Python through the CPython C API instead
 * of the cffi boundary (implemented in iodine_py/_fast.c, which is part of
 * the binding, not of the C core: it is compiled into iodine_py._native
 * only, never into the C unit tests or the fuzz targets).
 *
 * Why: every cffi call releases and retakes the GIL and converts its
 * arguments; measured with callgrind that is ~2,600 instructions a call,
 * and taking a request (dsp_done_next), reading its fields, splitting the
 * environ blob in Python, freeing it (http_req_free), the Response object
 * and http_respond were ~45,000 of the ~49,800 a hello-world request
 * cost. Through the C API the whole request costs ~17,300
 * (BENCHMARKS.md, "Where a keep-alive request's cost goes").
 *
 * iodine_py_fast_install() creates the module iodine_py._fast (in
 * sys.modules) with its functions; it returns 0, or -1 with no module.
 * Threads: any Python thread (it takes the GIL itself, since cffi calls
 * release it). */
#ifndef IODINE_PYFAST_H
#define IODINE_PYFAST_H

int iodine_py_fast_install(void);

#endif
