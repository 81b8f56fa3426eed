/* pyfast: the request hand-off to Python through the CPython C API instead
 * of the cffi boundary (implemented in iodine_py/_fast.c, which is part of
 * the binding, not of the C core: it is compiled into iodine_py._native
 * only, never into the C unit tests or the fuzz targets).
 *
 * Why: every cffi call releases and retakes the GIL and converts its
 * arguments; measured with callgrind that is ~2,600 instructions a call,
 * and taking a request (dsp_done_next), reading its fields, splitting the
 * environ blob in Python and freeing it (http_req_free) was ~23,000 of the
 * ~49,000 a hello-world request cost. One C-API call per event does the
 * same in ~4,000 (BENCHMARKS.md, "Where a request's instructions go").
 *
 * iodine_py_fast_install() creates the module iodine_py._fast (in
 * sys.modules) with its functions; it returns 0, or -1 with no module.
 * Threads: any Python thread (it takes the GIL itself, since cffi calls
 * release it). */
#ifndef IODINE_PYFAST_H
#define IODINE_PYFAST_H

int iodine_py_fast_install(void);

#endif
