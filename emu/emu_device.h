/* emu/emu_device.h — the device side of the CUDA emulator: what kernel code
 * written for nvcc needs to compile with g++ and run on the CPU (emu/README.md).
 * Included by cuda_runtime.h in C++ only.
 *
 * A kernel launch kernel<<<g, b, smem, st>>>(args), rewritten by cu2cpp.py into
 * EMU_LAUNCH(kernel, "kernel", max_threads, g, b, smem, st)(args), runs every thread
 * of every block as a fiber of its own: all the threads of a block are live at once,
 * __syncthreads() is a barrier of the block, a warp collective (__shfl_*_sync,
 * __ballot_sync, __any_sync, __all_sync, __syncwarp) completes when every lane of its
 * mask has reached it and exchanges values among those lanes. Fibers switch only at
 * those points, so between two of them a thread's code runs without interruption; the
 * order in which threads (and blocks) run is forward, or reversed on the second of the
 * two schedules every launch runs under (emu.cpp).
 *
 * __shared__ variables live in one linker section (poisoned at the start of every
 * block), dynamic shared memory in an arena of exactly the launch's size with a guard
 * page after it. The __f*_rn / __d*_rn intrinsics are single IEEE operations that the
 * compiler cannot contract into an FMA (opaque to the optimiser); the kernels
 * themselves are compiled with FMA contraction allowed where the CPU has FMA, as nvcc
 * contracts by default. */
#ifndef DATH_EMU_DEVICE_H
#define DATH_EMU_DEVICE_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

/* ---- qualifiers ------------------------------------------------------------------- */
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __constant__
#define __align__(n) __attribute__((aligned(n)))
/* Static storage in one section: emu.cpp poisons [__start, __stop) of it per block. */
#define __shared__ static __attribute__((section("dath_emu_shared"), aligned(16)))

/* ---- vector types and the thread coordinates -------------------------------------- */
struct uint3 { unsigned int x, y, z; };
struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1)
        : x(x_), y(y_), z(z_) {}
};
struct __attribute__((aligned(8))) float2 { float x, y; };
struct __attribute__((aligned(16))) float4 { float x, y, z, w; };
struct __attribute__((aligned(16))) int4 { int x, y, z, w; };
struct __attribute__((aligned(8))) uint2 { unsigned int x, y; };
struct __attribute__((aligned(16))) double2 { double x, y; };
static inline int4 make_int4(int x, int y, int z, int w) { int4 v = {x, y, z, w}; return v; }
static inline float4 make_float4(float x, float y, float z, float w) { float4 v = {x, y, z, w}; return v; }
static inline uint2 make_uint2(unsigned int x, unsigned int y) { uint2 v = {x, y}; return v; }

namespace emu {
extern const uint3 *cur_thread_idx;   /* the running fiber's threadIdx */
extern uint3 block_idx, block_dim, grid_dim;
}
#define threadIdx (*::emu::cur_thread_idx)
#define blockIdx (static_cast<const uint3 &>(::emu::block_idx))
#define blockDim (static_cast<const uint3 &>(::emu::block_dim))
#define gridDim (static_cast<const uint3 &>(::emu::grid_dim))
enum { warpSize = 32 };

/* ---- block and warp synchronisation ------------------------------------------------
 * A barrier is identified by its place in the source (__COUNTER__: the compiler may
 * duplicate one call into several machine call sites): all the threads waiting at once
 * must wait at the same one. */
namespace emu {
void syncthreads(const char *file, int line, int site);
}
#define __syncthreads() ::emu::syncthreads(__FILE__, __LINE__, __COUNTER__)
void __syncwarp(unsigned int mask = 0xffffffffu);
unsigned int __ballot_sync(unsigned int mask, int pred);
int __any_sync(unsigned int mask, int pred);
int __all_sync(unsigned int mask, int pred);
static inline void __threadfence(void) {}
static inline void __threadfence_block(void) {}

namespace emu {
enum { SHFL_IDX, SHFL_XOR, SHFL_UP, SHFL_DOWN };
/* One lane's part of a shuffle: its value (up to 8 bytes), its lane argument. */
uint64_t warp_shuffle(int kind, unsigned int mask, uint64_t bits, int arg, int width);
template <class T> T shuffle(int kind, unsigned int mask, T v, int arg, int width) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value,
                  "warp shuffles move values of at most 8 bytes");
    uint64_t b = 0;
    memcpy(&b, &v, sizeof v);
    b = warp_shuffle(kind, mask, b, arg, width);
    T r;
    memcpy(&r, &b, sizeof r);
    return r;
}
void *dynamic_shared(void);   /* the running block's dynamic shared memory */
}
template <class T> T __shfl_sync(unsigned int mask, T v, int src, int width = 32) {
    return emu::shuffle(emu::SHFL_IDX, mask, v, src, width);
}
template <class T> T __shfl_xor_sync(unsigned int mask, T v, int lane_mask, int width = 32) {
    return emu::shuffle(emu::SHFL_XOR, mask, v, lane_mask, width);
}
template <class T> T __shfl_up_sync(unsigned int mask, T v, unsigned int delta, int width = 32) {
    return emu::shuffle(emu::SHFL_UP, mask, v, (int)delta, width);
}
template <class T> T __shfl_down_sync(unsigned int mask, T v, unsigned int delta, int width = 32) {
    return emu::shuffle(emu::SHFL_DOWN, mask, v, (int)delta, width);
}

/* ---- atomics: fibers switch only at synchronisation points, so a read-modify-write
 * is indivisible. A float atomic's sum depends on the order: the two schedules see it. */
static inline int atomicAdd(int *p, int v) { int o = *p; *p = o + v; return o; }
static inline unsigned int atomicAdd(unsigned int *p, unsigned int v) { unsigned int o = *p; *p = o + v; return o; }
static inline unsigned long long atomicAdd(unsigned long long *p, unsigned long long v) { unsigned long long o = *p; *p = o + v; return o; }
static inline float atomicAdd(float *p, float v) { float o = *p; *p = o + v; return o; }
static inline double atomicAdd(double *p, double v) { double o = *p; *p = o + v; return o; }
static inline int atomicSub(int *p, int v) { int o = *p; *p = o - v; return o; }
static inline int atomicMax(int *p, int v) { int o = *p; if (v > o) *p = v; return o; }
static inline int atomicMin(int *p, int v) { int o = *p; if (v < o) *p = v; return o; }
static inline int atomicExch(int *p, int v) { int o = *p; *p = v; return o; }
static inline int atomicCAS(int *p, int cmp, int v) { int o = *p; if (o == cmp) *p = v; return o; }
static inline unsigned int atomicCAS(unsigned int *p, unsigned int cmp, unsigned int v) { unsigned int o = *p; if (o == cmp) *p = v; return o; }
static inline unsigned long long atomicCAS(unsigned long long *p, unsigned long long cmp, unsigned long long v) { unsigned long long o = *p; if (o == cmp) *p = v; return o; }

/* ---- integer intrinsics ---------------------------------------------------------- */
static inline int __popc(unsigned int x) { return __builtin_popcount(x); }
static inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
static inline int __ffs(int x) { return __builtin_ffs(x); }
static inline int __ffsll(long long x) { return __builtin_ffsll(x); }
static inline int __clz(int x) { return x ? __builtin_clz((unsigned int)x) : 32; }
static inline int __clzll(long long x) { return x ? __builtin_clzll((unsigned long long)x) : 64; }
static inline unsigned int __umulhi(unsigned int a, unsigned int b) {
    return (unsigned int)(((unsigned long long)a * b) >> 32);
}
static inline unsigned int __brev(unsigned int x) {
    x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
    x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
    x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
    x = ((x >> 8) & 0x00ff00ffu) | ((x & 0x00ff00ffu) << 8);
    return (x >> 16) | (x << 16);
}

/* ---- float intrinsics: one IEEE operation, never contracted into an FMA ------------ */
#if defined(__x86_64__) || defined(__i386__)
#define EMU_OPAQUE(v) __asm__("" : "+x"(v))
#elif defined(__aarch64__)
#define EMU_OPAQUE(v) __asm__("" : "+w"(v))
#else
#define EMU_OPAQUE(v) __asm__("" : "+m"(v))
#endif
#define EMU_RN2(name, T, op)                                                           \
    static inline T name(T a, T b) {                                                   \
        EMU_OPAQUE(a);                                                                 \
        EMU_OPAQUE(b);                                                                 \
        T r = a op b;                                                                  \
        EMU_OPAQUE(r);                                                                 \
        return r;                                                                      \
    }
EMU_RN2(__fadd_rn, float, +)
EMU_RN2(__fsub_rn, float, -)
EMU_RN2(__fmul_rn, float, *)
EMU_RN2(__fdiv_rn, float, /)
EMU_RN2(__dadd_rn, double, +)
EMU_RN2(__dsub_rn, double, -)
EMU_RN2(__dmul_rn, double, *)
EMU_RN2(__ddiv_rn, double, /)
#undef EMU_RN2
static inline float __fsqrt_rn(float a) { EMU_OPAQUE(a); float r = sqrtf(a); EMU_OPAQUE(r); return r; }
static inline double __dsqrt_rn(double a) { EMU_OPAQUE(a); double r = sqrt(a); EMU_OPAQUE(r); return r; }
static inline float __frcp_rn(float a) { return __fdiv_rn(1.0f, a); }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
static inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }
/* The fast approximations are modelled by the accurate functions (README: numerics);
 * __expf and __logf are glibc's own (accurate) functions of the same names. */
static inline float __fdividef(float a, float b) { return a / b; }
static inline float rsqrtf(float a) { return 1.0f / sqrtf(a); }
static inline float __saturatef(float a) { return a < 0.0f ? 0.0f : a > 1.0f ? 1.0f : a; }

static inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
static inline int __float_as_int(float f) { int i; memcpy(&i, &f, 4); return i; }
static inline float __uint_as_float(unsigned int i) { float f; memcpy(&f, &i, 4); return f; }
static inline unsigned int __float_as_uint(float f) { unsigned int i; memcpy(&i, &f, 4); return i; }
static inline double __longlong_as_double(long long i) { double f; memcpy(&f, &i, 8); return f; }
static inline long long __double_as_longlong(double f) { long long i; memcpy(&i, &f, 8); return i; }
template <class T> static inline T __ldg(const T *p) { return *p; }

/* CUDA's integer and float min/max overloads of device code. */
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
static inline unsigned int min(unsigned int a, unsigned int b) { return a < b ? a : b; }
static inline unsigned int max(unsigned int a, unsigned int b) { return a > b ? a : b; }
static inline long long min(long long a, long long b) { return a < b ? a : b; }
static inline long long max(long long a, long long b) { return a > b ? a : b; }
static inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
static inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
static inline float min(float a, float b) { return fminf(a, b); }
static inline float max(float a, float b) { return fmaxf(a, b); }
static inline double min(double a, double b) { return fmin(a, b); }
static inline double max(double a, double b) { return fmax(a, b); }

/* ---- asynchronous copies and warp matrix operations ------------------------------------
 * What emu/cuda_pipeline_primitives.h (cp.async: __pipeline_memcpy_async,
 * __pipeline_commit, __pipeline_wait_prior) and emu/mma.h (WMMA) call; emu.cpp
 * implements them (README.md, "Asynchronous copies" and "Warp matrix operations"). */
namespace emu {
void pipeline_memcpy_async(void *dst, const void *src, size_t size_and_align, size_t zfill);
void pipeline_commit(void);
void pipeline_wait_prior(size_t prior);

enum { WMMA_A = 0, WMMA_B = 1, WMMA_ACC = 2 };                 /* a fragment's use */
enum { WMMA_F32 = 0, WMMA_TF32 = 1, WMMA_BF16 = 2 };           /* its element type */
enum { WMMA_ROW = 0, WMMA_COL = 1, WMMA_NOLAYOUT = 2 };        /* its (or memory's) layout */
enum { WMMA_LOAD = 0, WMMA_STORE = 1, WMMA_MMA = 2 };
/* One lane's fragment: shape, use, element type, layout, and where its elements are. */
struct wmma_frag {
    int use, m, n, k, type, layout;
    void *x;
};
/* One lane's call of a warp matrix function: LOAD / STORE take f[0] and the matrix at
 * ptr (leading dimension ldm elements, layout mem_layout), MMA takes d, a, b, c in f[0..3]. */
struct wmma_call {
    int op;
    wmma_frag f[4];
    const void *ptr;
    unsigned int ldm;
    int mem_layout;
};
/* A warp-wide collective: completes when all 32 lanes of the warp made the same call. */
void wmma(wmma_call *c);
}

/* ---- launches ----------------------------------------------------------------------- */
namespace emu {

/* One kernel argument as the launch copied it. pointer: the parameter has pointer
 * type (must be NULL or device-accessible memory); else its bytes are searched for
 * device pointers (a struct of pointers). */
struct arg_bytes {
    const void *bytes;
    size_t size;
    bool pointer;
};

/* A launch's kernel with its own copy of the arguments, as CUDA copies them at the
 * launch. run() is one thread's execution (each call copies them again into the
 * kernel's parameters, so a thread may modify its parameters privately). */
struct kernel_call {
    const char *kernel, *file;
    int line;
    unsigned int max_threads;   /* __launch_bounds__, 0: none */
    virtual ~kernel_call() {}
    virtual void run() = 0;
    virtual const void *function() const = 0;
    virtual int nargs() const = 0;
    virtual arg_bytes arg(int i) const = 0;
};

template <class... P> struct kernel_call_of : kernel_call {
    void (*f)(P...);
    std::tuple<P...> a;
    arg_bytes info[sizeof...(P) ? sizeof...(P) : 1];
    template <size_t... I> void describe(std::index_sequence<I...>) {
        ((info[I] = arg_bytes{&std::get<I>(a), sizeof(std::get<I>(a)),
                              std::is_pointer<typename std::tuple_element<I, std::tuple<P...>>::type>::value}),
         ...);
    }
    kernel_call_of(void (*f_)(P...), std::tuple<P...> a_) : f(f_), a(std::move(a_)) {
        describe(std::index_sequence_for<P...>{});
    }
    void run() override { std::apply(f, a); }
    const void *function() const override { return (const void *)f; }
    int nargs() const override { return (int)sizeof...(P); }
    arg_bytes arg(int i) const override { return info[i]; }
};

/* Validates the configuration (a launch error is returned by the next
 * cudaGetLastError, as CUDA does), then runs the grid on the stream, or records it
 * while the stream is captured. */
void launch(std::shared_ptr<kernel_call> call, dim3 grid, dim3 block, size_t smem,
            struct emu_stream *st);

template <class... P> struct launcher {
    void (*f)(P...);
    const char *kernel, *file;
    int line;
    unsigned int max_threads;
    dim3 grid, block;
    size_t smem;
    struct emu_stream *st;
    void operator()(P... args) const {
        auto call = std::make_shared<kernel_call_of<P...>>(f, std::tuple<P...>(args...));
        call->kernel = kernel;
        call->file = file;
        call->line = line;
        call->max_threads = max_threads;
        launch(call, grid, block, smem, st);
    }
};

template <class... P>
launcher<P...> make_launcher(void (*f)(P...), const char *kernel, unsigned int max_threads,
                             const char *file, int line, dim3 grid, dim3 block,
                             size_t smem = 0, struct emu_stream *st = nullptr) {
    return launcher<P...>{f, kernel, file, line, max_threads, grid, block, smem, st};
}

cudaError_t func_set_attribute(const void *f, cudaFuncAttribute attr, int value);

}  // namespace emu

/* Only cudaFuncAttributeMaxDynamicSharedMemorySize: the dynamic shared memory the
 * kernel's launches may ask for beyond the default 48 KB (at most 227 KB). */
template <class... P>
cudaError_t cudaFuncSetAttribute(void (*f)(P...), cudaFuncAttribute attr, int value) {
    return emu::func_set_attribute((const void *)f, attr, value);
}

/* kernel<<<grid, block[, smem[, stream]]>>>(args), as cu2cpp.py rewrites it. */
#define EMU_LAUNCH(kernel, name, max_threads, ...)                                     \
    ::emu::make_launcher(kernel, name, max_threads, __FILE__, __LINE__, __VA_ARGS__)

#endif
