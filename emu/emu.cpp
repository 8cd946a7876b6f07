/* emu/emu.cpp — the CUDA emulator's runtime: device memory, streams, events,
 * graphs, the cuBLAS reference, and the launcher that runs a kernel's grid as fibers
 * (contract and limits in emu/README.md; device side in emu_device.h).
 *
 * Everything runs on the calling thread, one emulator call at a time (a mutex). A
 * launch runs its grid twice, under two schedules, from the same device memory:
 *   A  blocks in increasing order; in each block warps 0, 1, …, lanes 0, 1, …;
 *      shared memory poisoned with 0xff bytes (NaN, −1)
 *   B  blocks, warps and lanes in decreasing order; shared memory poisoned with 0x7f
 *      (3.4e38, 2139062143)
 * and the memory the kernel can reach (the allocations its arguments point into,
 * restored between the two) must come out identical: a read of shared or global
 * memory that another thread writes without a barrier between them, a read of shared
 * memory nobody wrote, or an order-dependent atomic gives different bytes under A and
 * B and is reported as a cudaErrorEmuScheduleDependent, with the kernel, its launch
 * line and the first differing element. (DATH_EMU_SCHEDULES=1 runs schedule A only.)
 *
 * Within a block, a warp runs until all its lanes wait at __syncthreads (or have
 * exited) before the next warp starts; its lanes run in order, each until it reaches a
 * warp collective, which completes when every lane of the mask has reached it.
 * So, in A, a thread of a lower warp runs its code between two barriers before any
 * thread of a higher warp runs its own, and in B after: for any two threads of
 * different warps, one schedule runs the reader first and the other the writer. */
#include "cuda_runtime.h"
#include "cublasLt.h"
#include "cublas_v2.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#if !defined(__x86_64__) || defined(DATH_EMU_UCONTEXT)
#define EMU_UCONTEXT 1
#include <ucontext.h>
#endif

namespace emu {
const uint3 *cur_thread_idx;
uint3 block_idx, block_dim, grid_dim;
}

namespace {

/* ---- settings, statistics, errors --------------------------------------------------- */

int schedules = 2;        /* DATH_EMU_SCHEDULES: 2 (A and B, compared) or 1 (A) */
int protect = 1;          /* DATH_EMU_PROTECT: device memory unreadable by host code */

/* The cuBLAS reference's arithmetic (README.md, "cuBLAS numerics"). DATH_EMU_GEMM:
 *   hw      (default) CUBLAS_COMPUTE_32F: per output element one chain of fp32 FMAs
 *           over k in index order, as cuBLAS's SGEMM kernels accumulate on the CUDA
 *           cores (one chain: no split-K). FAST_TF32 / FAST_16BF: the operands converted
 *           to tf32 / bf16, then per k-block of TC_K products (8 tf32, 16 bf16) one block
 *           FMA as sm_90's tensor cores do it: the exact products and the running fp32
 *           sum aligned to the largest exponent e, the bits below 2^(e-23-TC_EXTRA)
 *           truncated, summed exactly, the sum truncated (RZ) to fp32.
 *   fma     every compute type one chain of fp32 FMAs of the (converted) operands:
 *           exact products, one round-to-nearest per add.
 *   double  the former reference: one sum in double per element, rounded once.
 * DATH_EMU_TC_ROUND, the conversion to tf32 / bf16: rn (to nearest, ties to even;
 * default), rna (to nearest, ties away from zero: cvt.rna.tf32.f32), rz (truncation:
 * the low bits ignored, as a tensor core fed raw fp32 reads them). */
enum gemm_model_t { GEMM_HW, GEMM_FMA, GEMM_DOUBLE };
gemm_model_t gemm_model = GEMM_HW;
enum tc_round_t { TC_RN, TC_RNA, TC_RZ };
tc_round_t tc_round = TC_RN;
const int TC_K_TF32 = 8, TC_K_BF16 = 16;   /* products per block FMA on sm_90 */
const int TC_EXTRA = 2;                     /* alignment bits kept below fp32's 24 */
const char *const gemm_model_name[] = {"hw", "fma", "double"};
const char *const tc_round_name[] = {"rn", "rna", "rz"};

/* The value of environment variable `var` among `names` (n of them), `def` when unset;
 * an unknown value stops the program with a message naming it (a test set up wrong). */
int env_choice(const char *var, const char *const *names, int n, int def) {
    const char *v = getenv(var);
    if (!v || !*v) return def;
    for (int i = 0; i < n; i++)
        if (!strcmp(v, names[i])) return i;
    fprintf(stderr, "emu: %s=%s: expected one of", var, v);
    for (int i = 0; i < n; i++) fprintf(stderr, " %s", names[i]);
    fprintf(stderr, "\n");
    exit(2);
}
struct {
    long launches, compared, uncompared, blocks, threads, gemms, copies;
    long async_copies, wmma_ops;   /* __pipeline_memcpy_async calls, warp matrix operations */
    long gemm_by_type[3];   /* GEMM calls by compute type: 32F, FAST_TF32, FAST_16BF */
    double gemm_flops;
} stats;

std::recursive_mutex api_lock;   /* one emulator call at a time */
#define API_LOCK() std::lock_guard<std::recursive_mutex> api_guard_(api_lock)

thread_local cudaError_t last_error = cudaSuccess;   /* this thread's, for cudaGetLastError */
cudaError_t sticky_error = cudaSuccess;   /* an error while work ran: never cleared */

cudaError_t note(cudaError_t e) {
    if (e != cudaSuccess) last_error = e;
    return e;
}

/* An error found while work ran (a kernel, a copy, a GEMM): printed at once, then
 * returned by every later call, as a CUDA context that faulted. */
void fault(cudaError_t e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fault(cudaError_t e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "emu: ERROR: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    fflush(stderr);
    if (sticky_error == cudaSuccess) sticky_error = e;
    note(e);
}

#define RETURN_IF_STICKY()                                                             \
    do {                                                                               \
        if (sticky_error != cudaSuccess) return sticky_error;                          \
    } while (0)

struct banner_t {
    banner_t() {
        const char *s = getenv("DATH_EMU_SCHEDULES");
        if (s && atoi(s) == 1) schedules = 1;
        const char *p = getenv("DATH_EMU_PROTECT");
        if (p && atoi(p) == 0) protect = 0;
        gemm_model = (gemm_model_t)env_choice("DATH_EMU_GEMM", gemm_model_name, 3, GEMM_HW);
        tc_round = (tc_round_t)env_choice("DATH_EMU_TC_ROUND", tc_round_name, 3, TC_RN);
#if defined(__FMA__) || defined(__ARM_FEATURE_FMA)
        const char *fma = "with FMA contraction as nvcc";
#else
        const char *fma = "WITHOUT FMA contraction (this CPU has no FMA; nvcc contracts)";
#endif
        static const char *const model[] = {
            "fp32 FMA chains (32F), sm_90-style tensor-core block FMAs (TF32/BF16)",
            "fp32 FMA chains for every compute type (DATH_EMU_GEMM=fma)",
            "sums in double (DATH_EMU_GEMM=double)"};
        printf("emu: CPU EMULATION of CUDA (emu): the kernels/*.cu code runs on the "
               "CPU (compiled %s), cuBLAS is a reference GEMM with %s, tf32/bf16 operands "
               "rounded %s; no GPU is used, and these are not GPU results. Every launch runs "
               "under %d schedule%s%s.\n",
               fma, model[gemm_model], tc_round_name[tc_round], schedules,
               schedules == 2 ? "s (forward and reversed thread order), compared"
                              : " (forward thread order)",
               protect ? "" : "; device memory readable by host code (DATH_EMU_PROTECT=0)");
        fflush(stdout);
    }
    ~banner_t() {
        printf("emu: %ld kernel launches (%ld run under both schedules and compared%s), %ld "
               "blocks, %ld threads; %ld cuBLAS calls (%.3g flop; GEMMs fp32 %ld, tf32 %ld, "
               "bf16 %ld); %ld copies; in kernels %ld asynchronous copies, %ld warp matrix "
               "operations. CPU emulation, not a GPU.\n",
               stats.launches, stats.compared,
               stats.uncompared ? ", some not: they reached device memory no argument names"
                                : "",
               stats.blocks, stats.threads, stats.gemms, stats.gemm_flops,
               stats.gemm_by_type[0], stats.gemm_by_type[1], stats.gemm_by_type[2], stats.copies,
               stats.async_copies, stats.wmma_ops);
    }
} banner;

/* ---- device memory: one mapping per allocation ------------------------------------
 * [guard page][canary … | the allocation, 256-aligned | canary][guard page]: the
 * allocation ends within 255 bytes of the trailing guard page, so a kernel that runs
 * off its end either faults on the guard page or writes a canary byte (checked after
 * the launch). Device allocations are filled with 0xff bytes (NaN, −1) when made and,
 * unless DATH_EMU_PROTECT=0, are PROT_NONE except while the emulator itself works on
 * them: a copy or a GEMM opens its operands, a kernel the allocations its arguments
 * point into, and the fault handler opens any other one a running kernel touches.
 * Host code that dereferences a device pointer faults, as on a GPU. Pinned host
 * memory (cudaHostAlloc) is plain host memory, readable by both. */

size_t page_size() {
    static size_t p = (size_t)sysconf(_SC_PAGESIZE);
    return p;
}
size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

struct allocation {
    char *map;
    size_t map_len;
    char *base;       /* what cudaMalloc returned */
    size_t bytes;
    size_t data_len;  /* the accessible pages */
    bool host;        /* cudaHostAlloc: always accessible */
    int open;         /* emulator work in progress on it */
    unsigned char canary;
};

/* The accessible bytes around a device allocation, before it and after its end up to
 * the guard page, hold a canary byte: a kernel that writes there has run off the
 * allocation (checked after every launch). The byte is one of 0x71..0x7e, taken in turn
 * by successive allocations (as floats 1e30..1e38: not a fixed point of tanh, exp, a
 * product), so that even a copy of one allocation's canary into another's shows. */
unsigned int canary_turn;
std::map<uintptr_t, allocation> allocs;   /* by base */

allocation *find_alloc(const void *p) {
    if (!p) return nullptr;
    auto it = allocs.upper_bound((uintptr_t)p);
    if (it == allocs.begin()) return nullptr;
    --it;
    allocation &a = it->second;
    return (uintptr_t)p <= (uintptr_t)a.base + a.bytes ? &a : nullptr;
}

/* The allocation holding all of [p, p + bytes), or NULL. */
allocation *find_range(const void *p, size_t bytes) {
    allocation *a = find_alloc(p);
    if (!a || (uintptr_t)p + bytes > (uintptr_t)a->base + a->bytes) return nullptr;
    return a;
}

char *data_start(allocation &a) { return a.map + page_size(); }

void open_alloc(allocation *a) {
    if (!a || a->host || !protect) return;
    if (a->open++ == 0) mprotect(data_start(*a), a->data_len, PROT_READ | PROT_WRITE);
}
void close_alloc(allocation *a) {
    if (!a || a->host || !protect) return;
    if (--a->open == 0) mprotect(data_start(*a), a->data_len, PROT_NONE);
}
/* Device allocations the fault handler opened while a kernel ran (reached through a
 * pointer that no kernel argument holds); closed when the launch ends. */
enum { MAX_LAZY = 256 };
allocation *lazy[MAX_LAZY];
int n_lazy;
bool kernel_running;
struct lazy_guard {
    lazy_guard() { n_lazy = 0; kernel_running = true; }
    ~lazy_guard() {
        kernel_running = false;
        for (int i = 0; i < n_lazy; i++) close_alloc(lazy[i]);
        n_lazy = 0;
    }
};

/* Opens the allocations for the lifetime of the guard. */
struct open_guard {
    std::vector<allocation *> opened;
    void add(allocation *a) {
        if (!a) return;
        open_alloc(a);
        opened.push_back(a);
    }
    ~open_guard() {
        for (allocation *a : opened) close_alloc(a);
    }
};

void *map_alloc(size_t bytes, bool host) {
    const size_t pg = page_size();
    const size_t user = round_up(bytes ? bytes : 1, 256);
    const size_t data = round_up(user, pg);
    const size_t len = pg + data + pg;
    char *m = (char *)mmap(nullptr, len, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return nullptr;
    mprotect(m, pg, PROT_NONE);
    mprotect(m + pg + data, pg, PROT_NONE);
    allocation a;
    a.map = m;
    a.map_len = len;
    a.base = m + pg + data - user;
    a.bytes = bytes;
    a.data_len = data;
    a.host = host;
    a.open = 0;
    a.canary = (unsigned char)(0x71 + canary_turn++ % 14);
    if (!host) {
        memset(m + pg, a.canary, data);
        memset(a.base, 0xff, bytes);
        if (protect) mprotect(m + pg, data, PROT_NONE);
    }
    allocs[(uintptr_t)a.base] = a;
    return a.base;
}

bool unmap_alloc(void *p, bool host) {
    auto it = allocs.find((uintptr_t)p);
    if (it == allocs.end() || it->second.host != host) return false;
    munmap(it->second.map, it->second.map_len);
    allocs.erase(it);
    return true;
}

/* ---- streams, events, graphs -------------------------------------------------------- */

typedef std::function<void()> op;

/* Work is a node of a dependency graph: it runs after the nodes it depends on (the
 * previous work of its stream, the work an event it waits for stands for, and, for the
 * legacy stream, the blocking streams' work), and nothing else orders it. */
struct node {
    op f;                                    /* empty for markers (event waits, joins) */
    std::vector<std::shared_ptr<node>> deps;
    uint64_t seq;                            /* creation order */
    bool done;
};
typedef std::shared_ptr<node> node_ptr;

struct capture;

}  // namespace

struct emu_stream {
    unsigned int flags;
    node_ptr tail;                  /* its last work outside a capture */
    struct capture *cap;            /* the capture it takes part in, or NULL */
    node_ptr cap_tail;              /* its last work in that capture (NULL: none yet) */
    bool origin;                    /* it began the capture */
};
struct emu_event {
    unsigned int flags;
    node_ptr at;                    /* the work it stands for (NULL: none, complete) */
    struct capture *cap;            /* recorded inside this capture (at is a graph node) */
    /* when the work before it finished (host clock, s), written by its node when it runs:
     * cudaEventElapsedTime. Shared with that node, which may outlive the event. */
    std::shared_ptr<double> t = std::make_shared<double>(-1.0);
};
struct emu_graph {
    std::vector<node_ptr> nodes;    /* in creation order; deps point inside the graph */
};
struct emu_blas {
    cudaStream_t st;
    void *ws;
    size_t ws_bytes;
};
struct emu_blaslt {
    int unused;
};
/* cuBLASLt's descriptors, as dath sets them (emu/cublasLt.h) */
struct emu_lt_desc {
    cublasComputeType_t ct;
    cudaDataType_t scale;
    cublasOperation_t ta, tb;
    cublasLtEpilogue_t epi;
    const void *bias;
};
struct emu_lt_layout {
    cudaDataType_t type;
    uint64_t rows, cols;
    int64_t ld;
};

namespace {

/* A stream capture: the graph being recorded, and the streams that joined it. */
struct capture {
    cudaStreamCaptureMode mode;
    std::thread::id owner;          /* the thread that began it */
    bool invalidated;
    std::vector<node_ptr> nodes;
    std::vector<emu_stream *> streams;
};

uint64_t node_seq;
std::vector<node_ptr> pending;      /* work not run yet, outside captures */
std::vector<emu_stream *> all_streams;
node_ptr legacy_tail;               /* the legacy stream's (NULL stream's) last work */
std::vector<capture *> capturing;   /* captures in progress */

node_ptr new_node(op f) {
    node_ptr n = std::make_shared<node>();
    n->f = std::move(f);
    n->seq = node_seq++;
    n->done = false;
    return n;
}

void add_dep(const node_ptr &n, const node_ptr &d) {
    if (d && !d->done) n->deps.push_back(d);
}

/* The captures that forbid a potentially unsafe call (one that waits for the device,
 * allocates, or uses the legacy stream) from this thread: every global-mode capture,
 * and thread-local ones begun by this thread. Each is invalidated; returns whether
 * there was one. */
bool forbidding_captures() {
    bool any = false;
    for (capture *c : capturing)
        if (c->mode == cudaStreamCaptureModeGlobal ||
            (c->mode == cudaStreamCaptureModeThreadLocal && c->owner == std::this_thread::get_id())) {
            c->invalidated = true;
            any = true;
        }
    return any;
}

/* Runs the work `targets` depend on (and they themselves), every node of it once its
 * dependencies have run, choosing among the nodes ready to run the one made LAST: work
 * on two streams with no event between them runs in the order opposite to the one it
 * was issued in, so a missing event (a consumer that does not wait for its producer, or
 * a producer that overwrites what a consumer still reads) changes the results, which
 * the checks see. Each stream's own work stays in order (each node depends on the one
 * before it). NULL targets: all pending work. */
void drain(const std::vector<node_ptr> *targets) {
    std::vector<node_ptr> todo;              /* the not-yet-run ancestors */
    std::vector<node_ptr> stack;
    std::set<node *> seen;
    if (targets) {
        for (const node_ptr &t : *targets)
            if (t && !t->done) stack.push_back(t);
    } else {
        for (const node_ptr &t : pending)
            if (!t->done) stack.push_back(t);
    }
    while (!stack.empty()) {
        node_ptr n = stack.back();
        stack.pop_back();
        if (n->done || !seen.insert(n.get()).second) continue;
        todo.push_back(n);
        for (const node_ptr &d : n->deps) stack.push_back(d);
    }
    for (;;) {
        node_ptr pick;
        for (const node_ptr &n : todo) {
            if (n->done) continue;
            bool ready = true;
            for (const node_ptr &d : n->deps)
                if (!d->done) { ready = false; break; }
            if (ready && (!pick || n->seq > pick->seq)) pick = n;
        }
        if (!pick) break;
        pick->done = true;                   /* before it runs: a closure may enqueue */
        op f = std::move(pick->f);
        pick->deps.clear();                  /* nothing needs them any more: frees the chain */
        if (f) f();
    }
    pending.erase(std::remove_if(pending.begin(), pending.end(), [](const node_ptr &n) { return n->done; }),
                  pending.end());
}

void drain_one(const node_ptr &t) {
    if (!t || t->done) return;
    std::vector<node_ptr> v{t};
    drain(&v);
}

/* The dependencies of the next work on st outside a capture (st NULL: the legacy stream,
 * which waits for the blocking streams' work and which blocking streams wait for). */
void stream_deps(const node_ptr &n, emu_stream *st) {
    if (st) {
        add_dep(n, st->tail);
        if (!(st->flags & cudaStreamNonBlocking)) add_dep(n, legacy_tail);
    } else {
        add_dep(n, legacy_tail);
        for (emu_stream *o : all_streams)
            if (!(o->flags & cudaStreamNonBlocking)) add_dep(n, o->tail);
    }
}

void set_tail(emu_stream *st, const node_ptr &n) {
    if (st) st->tail = n;
    else legacy_tail = n;
}

/* Work on a stream: recorded into the graph while the stream takes part in a capture,
 * else a node that runs when something waits for it (a synchronisation, a blocking copy,
 * an event's synchronisation). Work on the legacy stream (NULL) while a capture forbids
 * it is refused and invalidates that capture, as CUDA's implicit synchronisation does. */
cudaError_t enqueue(cudaStream_t st, op f) {
    if (st && st->cap) {
        if (!st->cap->invalidated) {
            node_ptr n = new_node(std::move(f));
            if (st->cap_tail) n->deps.push_back(st->cap_tail);
            st->cap_tail = n;
            st->cap->nodes.push_back(n);
        }
        return cudaSuccess;
    }
    if (!st && forbidding_captures()) return cudaErrorStreamCaptureImplicit;
    node_ptr n = new_node(std::move(f));
    stream_deps(n, st);
    set_tail(st, n);
    pending.push_back(n);
    return cudaSuccess;
}

/* Blocking work on the legacy stream (a synchronous copy or memset): it waits as the
 * legacy stream does, and the host waits for it. */
void run_blocking(op f) {
    node_ptr n = new_node(std::move(f));
    stream_deps(n, nullptr);
    set_tail(nullptr, n);
    pending.push_back(n);
    drain_one(n);
}

/* A call that would wait for the device or allocate while a capture forbids it:
 * refused, and the capture is invalidated. */
cudaError_t refuse_in_capture() {
    return forbidding_captures() ? cudaErrorStreamCaptureUnsupported : cudaSuccess;
}

/* ---- fibers --------------------------------------------------------------------------- */

/* DYN_SHARED_DEFAULT: what a launch may ask for without cudaFuncSetAttribute;
 * DYN_SHARED_MAX: the most it may be raised to (sm_90's 227 KB). */
enum {
    MAX_THREADS = 1024,
    STACK_BYTES = 256 << 10,
    DYN_SHARED_DEFAULT = 48 << 10,
    DYN_SHARED_MAX = 227 << 10
};
std::map<const void *, int> dyn_shared_optin;   /* kernel → cudaFuncSetAttribute's value */
size_t dyn_arena() { return round_up(DYN_SHARED_MAX, page_size()); }
enum thread_state { T_RUN, T_BARRIER, T_WARP, T_DONE };

/* An asynchronous copy a thread submitted that has not landed yet (schedule B only):
 * n bytes from src, then fill zero bytes, into shared dst; batch: the __pipeline_commit
 * that closed it (1, 2, …), 0 while open. */
struct pend_copy {
    char *dst;
    const char *src;
    unsigned int n, fill;
    long batch;
};

struct fiber {
#ifdef EMU_UCONTEXT
    ucontext_t uc;
#else
    void *sp;
#endif
    char *stack;        /* [STACK_BYTES] above a guard page */
    uint3 idx;
    unsigned int lane, warp, linear;
    thread_state st;
    bool started;       /* ucontext: entered once */
    const char *file;   /* the __syncthreads it waits at: where, and which one */
    int line, site;
    std::vector<pend_copy> pend;   /* submitted asynchronous copies not landed (schedule B) */
    long batches;                  /* __pipeline_commit calls so far */
};

struct warp_state {
    unsigned int exists;    /* lanes this block has */
    unsigned int arrived;   /* lanes waiting in the current collective */
    unsigned int mask;
    int kind, width;
    uint64_t val[32], res[32];
    int arg[32];
};

enum { C_SYNCWARP = 100, C_BALLOT, C_ANY, C_ALL, C_WMMA };   /* and emu::SHFL_* (0..3) */

const char *collective_name(int kind) {
    switch (kind) {
    case emu::SHFL_IDX: return "__shfl_sync";
    case emu::SHFL_XOR: return "__shfl_xor_sync";
    case emu::SHFL_UP: return "__shfl_up_sync";
    case emu::SHFL_DOWN: return "__shfl_down_sync";
    case C_SYNCWARP: return "__syncwarp";
    case C_BALLOT: return "__ballot_sync";
    case C_ANY: return "__any_sync";
    case C_ALL: return "__all_sync";
    case C_WMMA: return "a warp matrix function (wmma::load_matrix_sync, store_matrix_sync, mma_sync)";
    }
    return "?";
}

fiber fibers[MAX_THREADS];
warp_state warps[MAX_THREADS / 32];
char *stacks;                 /* MAX_THREADS × (guard page + STACK_BYTES) */
char *dyn_map;                /* dynamic shared memory: [dyn_arena()][guard page] */
char *dyn_shared;             /* the running block's arena, ending at the guard page */
size_t dyn_bytes;
fiber *cur;                   /* the running fiber, NULL in the scheduler */
emu::kernel_call *cur_call;
bool sched_reversed;          /* the running launch's schedule is B */
unsigned int block_threads;
bool block_failed;            /* an error in the block: the scheduler abandons it */
#ifdef EMU_UCONTEXT
ucontext_t sched_uc;
#else
void *sched_sp;
#endif

}  // namespace

#ifndef EMU_UCONTEXT
/* x86-64 context switch: callee-saved registers, MXCSR and the x87 control word on
 * the old stack, its stack pointer to *save, then the same from the new stack. A new
 * fiber's stack holds a frame that "returns" into emu_fiber_trampoline, which calls
 * r13(r12). */
extern "C" void emu_fiber_switch(void **save_sp, void *to_sp);
extern "C" void emu_fiber_trampoline(void);
__asm__(".pushsection .text\n"
        ".globl emu_fiber_switch\n"
        ".hidden emu_fiber_switch\n"
        ".type emu_fiber_switch,@function\n"
        "emu_fiber_switch:\n"
        "  pushq %rbp\n"
        "  pushq %rbx\n"
        "  pushq %r12\n"
        "  pushq %r13\n"
        "  pushq %r14\n"
        "  pushq %r15\n"
        "  subq $8, %rsp\n"
        "  stmxcsr (%rsp)\n"
        "  fnstcw 4(%rsp)\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        "  ldmxcsr (%rsp)\n"
        "  fldcw 4(%rsp)\n"
        "  addq $8, %rsp\n"
        "  popq %r15\n"
        "  popq %r14\n"
        "  popq %r13\n"
        "  popq %r12\n"
        "  popq %rbx\n"
        "  popq %rbp\n"
        "  ret\n"
        ".size emu_fiber_switch, .-emu_fiber_switch\n"
        ".globl emu_fiber_trampoline\n"
        ".hidden emu_fiber_trampoline\n"
        ".type emu_fiber_trampoline,@function\n"
        "emu_fiber_trampoline:\n"
        "  movq %r12, %rdi\n"
        "  callq *%r13\n"
        "  ud2\n"
        ".size emu_fiber_trampoline, .-emu_fiber_trampoline\n"
        ".popsection\n");
#endif

namespace {

void fiber_main(void *arg);

#ifdef EMU_UCONTEXT
fiber *starting;
void fiber_entry_uc() { fiber_main(starting); }
#endif

void fiber_start(fiber *f) {
#ifdef EMU_UCONTEXT
    getcontext(&f->uc);
    f->uc.uc_stack.ss_sp = f->stack;
    f->uc.uc_stack.ss_size = STACK_BYTES;
    f->uc.uc_link = nullptr;
    makecontext(&f->uc, fiber_entry_uc, 0);
#else
    uintptr_t top = ((uintptr_t)f->stack + STACK_BYTES) & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)(top - 16 - 64);
    uint32_t mxcsr = __builtin_ia32_stmxcsr();
    uint16_t fpucw;
    __asm__ volatile("fnstcw %0" : "=m"(fpucw));
    sp[0] = (uint64_t)mxcsr | ((uint64_t)fpucw << 32);
    sp[1] = 0;                              /* r15 */
    sp[2] = 0;                              /* r14 */
    sp[3] = (uint64_t)(uintptr_t)&fiber_main;   /* r13 */
    sp[4] = (uint64_t)(uintptr_t)f;         /* r12 */
    sp[5] = 0;                              /* rbx */
    sp[6] = 0;                              /* rbp */
    sp[7] = (uint64_t)(uintptr_t)&emu_fiber_trampoline;
    f->sp = sp;
#endif
}

/* Scheduler → fiber f, until f yields. */
void resume(fiber *f) {
    cur = f;
    emu::cur_thread_idx = &f->idx;
#ifdef EMU_UCONTEXT
    if (!f->started) {
        f->started = true;
        starting = f;
    }
    swapcontext(&sched_uc, &f->uc);
#else
    emu_fiber_switch(&sched_sp, f->sp);
#endif
    cur = nullptr;
    emu::cur_thread_idx = nullptr;
}

/* The running fiber → the scheduler. */
void yield() {
    fiber *f = cur;
#ifdef EMU_UCONTEXT
    swapcontext(&f->uc, &sched_uc);
#else
    emu_fiber_switch(&f->sp, sched_sp);
#endif
}

void land(const pend_copy &p) {
    if (p.n) memcpy(p.dst, p.src, p.n);
    if (p.fill) memset(p.dst + p.n, 0, p.fill);
}

void fiber_main(void *arg) {
    fiber *f = (fiber *)arg;
    cur_call->run();
    for (const pend_copy &p : f->pend) land(p);   /* the hardware completes them too */
    f->pend.clear();
    f->st = T_DONE;
    yield();
    abort();   /* a finished fiber is never resumed */
}

void describe_thread(char *buf, size_t len) {
    if (!cur_call) {
        snprintf(buf, len, "host code (not in a kernel)");
        return;
    }
    if (cur)
        snprintf(buf, len, "kernel %s (launched at %s:%d), block (%u,%u,%u), thread (%u,%u,%u)",
                 cur_call->kernel, cur_call->file, cur_call->line, emu::block_idx.x,
                 emu::block_idx.y, emu::block_idx.z, cur->idx.x, cur->idx.y, cur->idx.z);
    else
        snprintf(buf, len, "kernel %s (launched at %s:%d), block (%u,%u,%u)", cur_call->kernel,
                 cur_call->file, cur_call->line, emu::block_idx.x, emu::block_idx.y,
                 emu::block_idx.z);
}

/* A kernel broke a rule of the execution model: report, abandon the block (the
 * running fiber goes back to the scheduler and is never resumed). */
void block_error(cudaError_t e, const char *what) {
    char where[256];
    describe_thread(where, sizeof where);
    fault(e, "%s: %s", where, what);
    block_failed = true;
    if (cur) {
        yield();
        abort();
    }
}

fiber *in_kernel(const char *fn) {
    if (!cur) {
        fprintf(stderr, "emu: %s called outside a kernel\n", fn);
        abort();
    }
    return cur;
}

void setup_memory() {
    static bool done;
    if (done) return;
    done = true;
    const size_t pg = page_size(), per = pg + STACK_BYTES;
    stacks = (char *)mmap(nullptr, per * MAX_THREADS, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    dyn_map = (char *)mmap(nullptr, dyn_arena() + pg, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (stacks == MAP_FAILED || dyn_map == MAP_FAILED) {
        fprintf(stderr, "emu: cannot map fiber stacks\n");
        abort();
    }
    for (int t = 0; t < MAX_THREADS; t++) {
        mprotect(stacks + per * t, pg, PROT_NONE);
        fibers[t].stack = stacks + per * t + pg;
    }
    mprotect(dyn_map + dyn_arena(), pg, PROT_NONE);
}

}  // namespace

/* ---- the device side: barriers and warp collectives ------------------------------------ */

extern "C" char __start_dath_emu_shared[] __attribute__((weak));
extern "C" char __stop_dath_emu_shared[] __attribute__((weak));

void emu::syncthreads(const char *file, int line, int site) {
    fiber *f = in_kernel("__syncthreads");
    f->file = file;
    f->line = line;
    f->site = site;
    f->st = T_BARRIER;
    yield();
}

namespace {

void wmma_run(const uint64_t *calls);   /* below, with the tensor-core arithmetic */

/* One lane's arrival at a warp collective; returns its result once every lane of the
 * mask has arrived (the lanes must agree on the kind, the mask and the width). */
uint64_t collective(int kind, unsigned int mask, uint64_t v, int arg, int width) {
    fiber *f = in_kernel(collective_name(kind));
    warp_state &w = warps[f->warp];
    const unsigned int bit = 1u << f->lane;
    char msg[320];
    if (!(mask & bit)) {
        snprintf(msg, sizeof msg, "%s with mask 0x%08x, which does not name the calling lane %u",
                 collective_name(kind), mask, f->lane);
        block_error(cudaErrorIllegalAddress, msg);
    }
    if (mask & ~w.exists) {
        snprintf(msg, sizeof msg, "%s with mask 0x%08x names lanes that this block does not "
                 "have (lanes 0x%08x exist)", collective_name(kind), mask, w.exists);
        block_error(cudaErrorIllegalAddress, msg);
    }
    if (width < 1 || width > 32 || (width & (width - 1))) {
        snprintf(msg, sizeof msg, "%s with width %d (not a power of 2 up to 32)",
                 collective_name(kind), width);
        block_error(cudaErrorIllegalAddress, msg);
    }
    if (w.arrived == 0) {
        w.mask = mask;
        w.kind = kind;
        w.width = width;
    } else if (w.mask != mask || w.kind != kind || w.width != width) {
        snprintf(msg, sizeof msg, "divergent warp collectives: lane %u calls %s (mask 0x%08x) "
                 "while lanes 0x%08x wait in %s (mask 0x%08x)", f->lane, collective_name(kind),
                 mask, w.arrived, collective_name(w.kind), w.mask);
        block_error(cudaErrorEmuDeadlock, msg);
    }
    w.val[f->lane] = v;
    w.arg[f->lane] = arg;
    w.arrived |= bit;
    if (w.arrived == w.mask) {
        if (w.kind == C_WMMA) wmma_run(w.val);
        unsigned int ballot = 0;
        for (int l = 0; l < 32; l++)
            if ((w.mask >> l & 1) && w.val[l]) ballot |= 1u << l;
        for (int l = 0; l < 32; l++) {
            if (!(w.mask >> l & 1)) continue;
            const int base = l / w.width * w.width;
            int src = l;
            switch (w.kind) {
            case C_SYNCWARP: case C_WMMA: w.res[l] = 0; continue;
            case C_BALLOT: w.res[l] = ballot; continue;
            case C_ANY: w.res[l] = ballot != 0; continue;
            case C_ALL: w.res[l] = ballot == w.mask; continue;
            case emu::SHFL_IDX: src = base + (w.arg[l] & (w.width - 1)); break;
            case emu::SHFL_XOR: src = l ^ w.arg[l]; if (src >= base + w.width) src = l; break;
            case emu::SHFL_UP: src = l - w.arg[l]; if (src < base) src = l; break;
            case emu::SHFL_DOWN: src = l + w.arg[l]; if (src >= base + w.width) src = l; break;
            }
            if (src < 0 || src > 31 || !(w.mask >> src & 1)) {
                snprintf(msg, sizeof msg, "%s: lane %d reads lane %d, which is not in the mask "
                         "0x%08x (undefined on a GPU)", collective_name(w.kind), l, src, w.mask);
                block_error(cudaErrorIllegalAddress, msg);
            }
            w.res[l] = w.val[src];
        }
        for (int l = 0; l < 32; l++)
            if (w.mask >> l & 1) fibers[f->warp * 32 + l].st = T_RUN;
        w.arrived = 0;
    } else {
        f->st = T_WARP;
    }
    yield();   /* the scheduler resumes the warp's lanes in order */
    return w.res[f->lane];
}

}  // namespace

void __syncwarp(unsigned int mask) { collective(C_SYNCWARP, mask, 0, 0, 32); }
unsigned int __ballot_sync(unsigned int mask, int pred) {
    return (unsigned int)collective(C_BALLOT, mask, pred != 0, 0, 32);
}
int __any_sync(unsigned int mask, int pred) { return (int)collective(C_ANY, mask, pred != 0, 0, 32); }
int __all_sync(unsigned int mask, int pred) { return (int)collective(C_ALL, mask, pred != 0, 0, 32); }

uint64_t emu::warp_shuffle(int kind, unsigned int mask, uint64_t bits, int arg, int width) {
    return collective(kind, mask, bits, arg, width);
}

void *emu::dynamic_shared(void) {
    in_kernel("extern __shared__");
    return dyn_shared;
}

/* ---- asynchronous copies (cp.async, through the pipeline primitives) -------------------
 * A copy lands at its submission in schedule A and at the wait that covers it in
 * schedule B (or when its thread exits), the two ends of the window in which the
 * hardware may land it: a read of the destination before the wait (or before the
 * barrier after it, by another thread) sees the data in A and the old bytes in B, a copy
 * into a buffer other warps still read overwrites it under their feet in A and not in B;
 * either way the schedules differ. A correct kernel gives the same bytes in both. */

namespace {

/* The allocation the last asynchronous copy read from (allocations are not freed while
 * a kernel runs; reset at every launch). */
const allocation *copy_src_cache;

bool in_shared_mem(const void *p, size_t n) {
    const char *c = (const char *)p;
    if (c >= dyn_shared && c + n <= dyn_shared + round_up(dyn_bytes, 16)) return true;
    return __start_dath_emu_shared && c >= __start_dath_emu_shared && c + n <= __stop_dath_emu_shared;
}

}  // namespace

void emu::pipeline_memcpy_async(void *dst, const void *src, size_t size, size_t zfill) {
    fiber *f = in_kernel("__pipeline_memcpy_async");
    char msg[320];
    if (size != 4 && size != 8 && size != 16) {
        snprintf(msg, sizeof msg, "__pipeline_memcpy_async of %zu bytes (4, 8 or 16)", size);
        block_error(cudaErrorIllegalAddress, msg);
    }
    if (zfill > size) {
        snprintf(msg, sizeof msg, "__pipeline_memcpy_async: zfill %zu > size %zu", zfill, size);
        block_error(cudaErrorIllegalAddress, msg);
    }
    if ((uintptr_t)dst % size || (uintptr_t)src % size) {
        snprintf(msg, sizeof msg, "__pipeline_memcpy_async of %zu bytes from %p to %p: both must be "
                 "aligned to the size", size, src, dst);
        block_error(cudaErrorIllegalAddress, msg);
    }
    if (!in_shared_mem(dst, size)) {
        snprintf(msg, sizeof msg, "__pipeline_memcpy_async: the destination %p (%zu bytes) is not in "
                 "the block's shared memory", dst, size);
        block_error(cudaErrorIllegalAddress, msg);
    }
    const size_t n = size - zfill;
    const allocation *&last = copy_src_cache;   /* the last copy's source allocation */
    const char *sp = (const char *)src;
    if (n && !(last && sp >= last->base && sp + n <= last->base + last->bytes) && !(last = find_range(src, n))) {
        snprintf(msg, sizeof msg, "__pipeline_memcpy_async: the source %p (%zu bytes) is not inside "
                 "a device allocation", src, n);
        block_error(cudaErrorIllegalAddress, msg);
    }
    const pend_copy p = {(char *)dst, (const char *)src, (unsigned int)n, (unsigned int)zfill, 0};
    stats.async_copies++;
    if (!sched_reversed) land(p);
    else f->pend.push_back(p);
}

void emu::pipeline_commit(void) {
    fiber *f = in_kernel("__pipeline_commit");
    f->batches++;
    for (pend_copy &p : f->pend)
        if (p.batch == 0) p.batch = f->batches;
}

/* Lands, in submission order, the copies of every batch but the `prior` most recent. */
void emu::pipeline_wait_prior(size_t prior) {
    fiber *f = in_kernel("__pipeline_wait_prior");
    const long upto = f->batches - (long)prior;
    size_t keep = 0;
    for (size_t i = 0; i < f->pend.size(); i++) {
        const pend_copy p = f->pend[i];
        if (p.batch > 0 && p.batch <= upto) land(p);
        else f->pend[keep++] = p;
    }
    f->pend.resize(keep);
}

void emu::wmma(wmma_call *c) {
    in_kernel("a warp matrix function");
    collective(C_WMMA, 0xffffffffu, (uint64_t)(uintptr_t)c, 0, 32);
}

namespace {

/* ---- running a grid --------------------------------------------------------------------- */

/* One block: every thread a fiber; warps in order (reversed: from the last), a warp
 * until none of its lanes can run, its lanes in order; a barrier opens when every
 * thread that has not exited waits at it. */
void run_block(bool reversed) {
    const unsigned int T = block_threads, nwarps = (T + 31) / 32;
    for (unsigned int t = 0; t < T; t++) {
        fiber &f = fibers[t];
        f.linear = t;
        f.idx.x = t % emu::block_dim.x;
        f.idx.y = t / emu::block_dim.x % emu::block_dim.y;
        f.idx.z = t / (emu::block_dim.x * emu::block_dim.y);
        f.lane = t % 32;
        f.warp = t / 32;
        f.st = T_RUN;
        f.started = false;
        f.file = nullptr;
        f.line = 0;
        f.site = -1;
        f.pend.clear();
        f.batches = 0;
        fiber_start(&f);
    }
    for (unsigned int w = 0; w < nwarps; w++) {
        const unsigned int n = T - 32 * w < 32 ? T - 32 * w : 32;
        warps[w].exists = n == 32 ? 0xffffffffu : (1u << n) - 1u;
        warps[w].arrived = 0;
    }
    unsigned int live = T;
    while (live) {
        for (unsigned int wi = 0; wi < nwarps; wi++) {
            const unsigned int w = reversed ? nwarps - 1 - wi : wi;
            bool again = true;
            while (again) {
                again = false;
                for (unsigned int li = 0; li < 32; li++) {
                    const unsigned int t = 32 * w + (reversed ? 31 - li : li);
                    if (t >= T || fibers[t].st != T_RUN) continue;
                    resume(&fibers[t]);
                    if (block_failed) return;
                    if (fibers[t].st == T_DONE) live--;
                    again = true;
                }
            }
        }
        if (!live) break;
        /* nothing can run: a barrier every live thread waits at, or a deadlock */
        const fiber *first = nullptr, *other = nullptr;
        unsigned int at_barrier = 0, in_warp = 0, first_warp = 0;
        for (unsigned int t = 0; t < T; t++) {
            const fiber &f = fibers[t];
            if (f.st == T_BARRIER) {
                at_barrier++;
                if (!first) first = &f;
                else if (!other && (f.site != first->site || strcmp(f.file, first->file)))
                    other = &f;
            } else if (fibers[t].st == T_WARP) {
                if (!in_warp++) first_warp = t / 32;
            }
        }
        char msg[320];
        if (in_warp) {
            snprintf(msg, sizeof msg, "deadlock: warp %u waits in %s (mask 0x%08x) but lanes "
                     "0x%08x never arrive (exited, or waiting at __syncthreads: %u threads)",
                     first_warp, collective_name(warps[first_warp].kind), warps[first_warp].mask,
                     warps[first_warp].mask & ~warps[first_warp].arrived, at_barrier);
            block_error(cudaErrorEmuDeadlock, msg);
            return;
        }
        if (other) {
            snprintf(msg, sizeof msg, "divergent __syncthreads: of the %u threads waiting, "
                     "thread %u waits at %s:%d and thread %u at %s:%d (undefined on a GPU)",
                     at_barrier, first->linear, first->file, first->line, other->linear,
                     other->file, other->line);
            block_error(cudaErrorEmuDeadlock, msg);
            return;
        }
        for (unsigned int t = 0; t < T; t++)
            if (fibers[t].st == T_BARRIER) fibers[t].st = T_RUN;
    }
}

void run_grid(emu::kernel_call *call, dim3 g, dim3 b, size_t smem, bool reversed,
              unsigned char poison) {
    cur_call = call;
    sched_reversed = reversed;
    emu::grid_dim = uint3{g.x, g.y, g.z};
    emu::block_dim = uint3{b.x, b.y, b.z};
    block_threads = b.x * b.y * b.z;
    dyn_bytes = smem;
    dyn_shared = dyn_map + dyn_arena() - round_up(smem, 16);
    const size_t shared_len = __start_dath_emu_shared
                                  ? (size_t)(__stop_dath_emu_shared - __start_dath_emu_shared) : 0;
    const unsigned long long nblocks = (unsigned long long)g.x * g.y * g.z;
    block_failed = false;
    for (unsigned long long i = 0; i < nblocks && !block_failed; i++) {
        const unsigned long long bi = reversed ? nblocks - 1 - i : i;
        emu::block_idx = uint3{(unsigned int)(bi % g.x), (unsigned int)(bi / g.x % g.y),
                               (unsigned int)(bi / ((unsigned long long)g.x * g.y))};
        if (shared_len) memset(__start_dath_emu_shared, poison, shared_len);
        memset(dyn_shared, poison, round_up(smem, 16));
        run_block(reversed);
        stats.blocks++;
        stats.threads += block_threads;
    }
    cur_call = nullptr;
}

/* The allocations a kernel can reach: those its pointer arguments point into, and
 * those any 8-byte word of a struct argument points into. A pointer argument that is
 * neither NULL nor device-accessible memory is an error (an illegal address on a GPU
 * once it is dereferenced). Returns false on such an argument. */
bool reachable(emu::kernel_call *call, std::vector<allocation *> &out) {
    for (int i = 0; i < call->nargs(); i++) {
        const emu::arg_bytes a = call->arg(i);
        if (a.pointer) {
            const void *p;
            memcpy(&p, a.bytes, sizeof p);
            if (!p) continue;
            allocation *al = find_alloc(p);
            if (!al) {
                fault(cudaErrorIllegalAddress, "kernel %s (launched at %s:%d): argument %d is %p, "
                      "which is not device memory (a host pointer, or freed)", call->kernel,
                      call->file, call->line, i + 1, p);
                return false;
            }
            out.push_back(al);
        } else {
            for (size_t o = 0; o + 8 <= a.size; o += 8) {
                const void *p;
                memcpy(&p, (const char *)a.bytes + o, sizeof p);
                if (allocation *al = find_alloc(p)) out.push_back(al);
            }
        }
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return true;
}

/* After a grid ran: the canaries around the allocations it reached must be intact
 * (reported, then restored). Returns false when one was written. */
bool canaries_intact(emu::kernel_call *call, const std::vector<allocation *> &reach) {
    for (allocation *a : reach) {
        if (a->host) continue;
        char *lo = data_start(*a), *end = a->base + a->bytes, *hi = lo + a->data_len;
        for (char *p = lo; p < hi; p++) {
            if (p == a->base) p = end;
            if (p >= hi || (unsigned char)*p == a->canary) continue;
            const bool before = p < a->base;
            fault(cudaErrorIllegalAddress, "kernel %s (launched at %s:%d) wrote outside a "
                  "%zu-byte device allocation: the first byte changed is %zu bytes %s", call->kernel,
                  call->file, call->line, a->bytes,
                  before ? (size_t)(a->base - p) : (size_t)(p - end),
                  before ? "before its start" : "after its end");
            memset(lo, a->canary, (size_t)(a->base - lo));
            memset(end, a->canary, (size_t)(hi - end));
            return false;
        }
    }
    return true;
}

/* The fault handler runs on an alternate stack (a kernel thread's stack may be what
 * overflowed); one per host thread that launches. */
void setup_altstack() {
    static thread_local bool done;
    if (done) return;
    done = true;
    stack_t ss;
    ss.ss_size = 1 << 16;
    ss.ss_sp = malloc(ss.ss_size);
    ss.ss_flags = 0;
    if (ss.ss_sp) sigaltstack(&ss, nullptr);
}

void run_launch(std::shared_ptr<emu::kernel_call> call, dim3 g, dim3 b, size_t smem) {
    if (sticky_error != cudaSuccess) return;   /* a faulted context runs nothing */
    setup_memory();
    setup_altstack();
    std::vector<allocation *> reach;
    if (!reachable(call.get(), reach)) return;
    open_guard og;
    for (allocation *a : reach) og.add(a);
    lazy_guard lg;   /* other device memory the kernel touches is opened by the fault handler */
    copy_src_cache = nullptr;
    stats.launches++;
    if (schedules == 1) {
        run_grid(call.get(), g, b, smem, false, 0xff);
        canaries_intact(call.get(), reach);
        return;
    }
    std::vector<std::vector<char>> before(reach.size()), after_a(reach.size());
    for (size_t i = 0; i < reach.size(); i++)
        before[i].assign(reach[i]->base, reach[i]->base + reach[i]->bytes);
    run_grid(call.get(), g, b, smem, false, 0xff);
    if (block_failed || !canaries_intact(call.get(), reach)) return;
    if (n_lazy) {   /* memory not named by the arguments: cannot be restored for B */
        stats.uncompared++;
        return;
    }
    for (size_t i = 0; i < reach.size(); i++) {
        after_a[i].assign(reach[i]->base, reach[i]->base + reach[i]->bytes);
        memcpy(reach[i]->base, before[i].data(), reach[i]->bytes);
    }
    run_grid(call.get(), g, b, smem, true, 0x7f);
    if (block_failed || !canaries_intact(call.get(), reach)) return;
    stats.compared++;
    for (size_t i = 0; i < reach.size(); i++) {
        const char *x = after_a[i].data(), *y = reach[i]->base;
        if (!memcmp(x, y, reach[i]->bytes)) continue;
        size_t o = 0;
        while (x[o] == y[o]) o++;
        o &= ~(size_t)3;
        float fa, fb;
        int32_t ia, ib;
        memcpy(&fa, x + o, 4); memcpy(&fb, y + o, 4);
        memcpy(&ia, x + o, 4); memcpy(&ib, y + o, 4);
        fault(cudaErrorEmuScheduleDependent,
              "kernel %s (launched at %s:%d, grid (%u,%u,%u), block (%u,%u,%u)): the results "
              "depend on the order threads run in: schedule A (forward) and B (reversed) "
              "differ in a %zu-byte device allocation at byte %zu (as float: %.9g vs %.9g; as "
              "int32: %d vs %d). A missing __syncthreads/__syncwarp, a read of shared memory "
              "no thread wrote, threads writing the same element, or an order-dependent "
              "atomic.", call->kernel, call->file, call->line, g.x, g.y, g.z, b.x, b.y, b.z,
              reach[i]->bytes, o, fa, fb, ia, ib);
        return;
    }
}

}  // namespace

void emu::launch(std::shared_ptr<kernel_call> call, dim3 g, dim3 b, size_t smem,
                 struct emu_stream *st) {
    API_LOCK();
    const unsigned long long threads = (unsigned long long)b.x * b.y * b.z;
    if (!g.x || !g.y || !g.z || !b.x || !b.y || !b.z || g.x > 0x7fffffffu || g.y > 65535 ||
        g.z > 65535 || b.x > 1024 || b.y > 1024 || b.z > 64 || threads > 1024) {
        fprintf(stderr, "emu: launch of %s at %s:%d: invalid configuration grid (%u,%u,%u) "
                "block (%u,%u,%u)\n", call->kernel, call->file, call->line, g.x, g.y, g.z, b.x,
                b.y, b.z);
        note(cudaErrorInvalidConfiguration);
        return;
    }
    if (call->max_threads && threads > call->max_threads) {
        fprintf(stderr, "emu: launch of %s at %s:%d: %llu threads a block, beyond its "
                "__launch_bounds__(%u)\n", call->kernel, call->file, call->line, threads,
                call->max_threads);
        note(cudaErrorLaunchOutOfResources);
        return;
    }
    auto optin = dyn_shared_optin.find(call->function());
    const size_t smem_max = optin != dyn_shared_optin.end() && optin->second > DYN_SHARED_DEFAULT
                                ? (size_t)optin->second : (size_t)DYN_SHARED_DEFAULT;
    if (smem > smem_max) {
        fprintf(stderr, "emu: launch of %s at %s:%d: %zu bytes of dynamic shared memory, more "
                "than the %zu it may have (cudaFuncAttributeMaxDynamicSharedMemorySize)\n",
                call->kernel, call->file, call->line, smem, smem_max);
        note(cudaErrorInvalidValue);
        return;
    }
    cudaError_t e = enqueue(st, [call, g, b, smem] { run_launch(call, g, b, smem); });
    if (e != cudaSuccess) note(e);
}

/* ---- faults: guard pages and protected device memory ------------------------------------ */

namespace {

void on_segv(int sig, siginfo_t *si, void *) {
    char where[256], what[320];
    const uintptr_t a = (uintptr_t)si->si_addr;
    if (kernel_running && protect && n_lazy < MAX_LAZY)   /* device memory a kernel reaches */
        for (auto &kv : allocs) {
            allocation &al = kv.second;
            const uintptr_t d = (uintptr_t)data_start(al);
            if (!al.host && al.open == 0 && a >= d && a < d + al.data_len) {
                open_alloc(&al);
                lazy[n_lazy++] = &al;
                return;   /* the access is retried, now allowed */
            }
        }
    describe_thread(where, sizeof where);
    snprintf(what, sizeof what, "an address the emulator does not know (a host pointer, "
             "freed memory, or a wild index)");
    for (auto &kv : allocs) {
        const allocation &al = kv.second;
        const uintptr_t m = (uintptr_t)al.map, base = (uintptr_t)al.base;
        if (a < m || a >= m + al.map_len) continue;
        if (a >= base + al.bytes && a >= m + page_size() + al.data_len)
            snprintf(what, sizeof what, "%zu bytes past the end of a %zu-byte %s allocation",
                     (size_t)(a - (base + al.bytes)), al.bytes, al.host ? "host" : "device");
        else if (a < base)
            snprintf(what, sizeof what, "%zu bytes before the start of a %zu-byte %s allocation",
                     (size_t)(base - a), al.bytes, al.host ? "host" : "device");
        else
            snprintf(what, sizeof what, "inside a %zu-byte device allocation, from host code "
                     "(device memory is not host memory: use cudaMemcpy)", al.bytes);
    }
    const uintptr_t st0 = (uintptr_t)stacks, per = page_size() + STACK_BYTES;
    if (stacks && a >= st0 && a < st0 + per * MAX_THREADS && (a - st0) % per < page_size())
        snprintf(what, sizeof what, "a fiber's stack guard page: the kernel thread's stack "
                 "(%d KiB) overflowed", (int)(STACK_BYTES >> 10));
    if (dyn_map && a >= (uintptr_t)dyn_map + dyn_arena() &&
        a < (uintptr_t)dyn_map + dyn_arena() + page_size())
        snprintf(what, sizeof what, "past the end of the block's %zu bytes of dynamic shared "
                 "memory", dyn_bytes);
    char line[700];
    int n = snprintf(line, sizeof line, "emu: ERROR: invalid memory access at %p in %s: %s\n",
                     si->si_addr, where, what);
    if (n > 0) {
        ssize_t w = write(2, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
        (void)w;
    }
    signal(sig, SIG_DFL);   /* returning re-executes the access, which now kills us */
}

struct segv_setup {
    segv_setup() {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_segv;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, nullptr);
        sigaction(SIGBUS, &sa, nullptr);
    }
} segv_installed;

}  // namespace

cudaError_t emu::func_set_attribute(const void *f, cudaFuncAttribute attr, int value) {
    API_LOCK();
    RETURN_IF_STICKY();
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 ||
        value > DYN_SHARED_MAX)
        return note(cudaErrorInvalidValue);
    dyn_shared_optin[f] = value;
    return cudaSuccess;
}

/* ---- the runtime API -------------------------------------------------------------------- */

extern "C" {

const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureImplicit: return "cudaErrorStreamCaptureImplicit";
    case cudaErrorStreamCaptureUnjoined: return "cudaErrorStreamCaptureUnjoined";
    case cudaErrorStreamCaptureIsolation: return "cudaErrorStreamCaptureIsolation";
    case cudaErrorEmuScheduleDependent: return "cudaErrorEmuScheduleDependent";
    case cudaErrorEmuDeadlock: return "cudaErrorEmuDeadlock";
    }
    return "cudaErrorUnknown";
}

const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered (emulator)";
    case cudaErrorLaunchOutOfResources: return "too many resources requested for launch";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureUnjoined: return "capture was not joined back to the origin stream";
    case cudaErrorStreamCaptureIsolation: return "a capture depends on work outside it";
    case cudaErrorStreamCaptureImplicit: return "operation would make the legacy stream depend on a capturing blocking stream";
    case cudaErrorEmuScheduleDependent: return "emulator: kernel results depend on the thread schedule (a race; see the emu: ERROR line)";
    case cudaErrorEmuDeadlock: return "emulator: a barrier or warp collective cannot complete (see the emu: ERROR line)";
    }
    return "unknown error";
}

cudaError_t cudaGetLastError(void) {
    API_LOCK();
    cudaError_t e = last_error;
    last_error = sticky_error;
    return e;
}

cudaError_t cudaPeekAtLastError(void) {
    API_LOCK();
    return last_error;
}

cudaError_t cudaGetDeviceCount(int *n) {
    *n = 1;
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int *dev) {
    *dev = 0;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int dev) { return note(dev == 0 ? cudaSuccess : cudaErrorInvalidDevice); }

static size_t physical_bytes(void) {
    return (size_t)sysconf(_SC_PHYS_PAGES) * (size_t)sysconf(_SC_PAGESIZE);
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int dev) {
    if (dev != 0) return note(cudaErrorInvalidDevice);
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "CPU EMULATION of CUDA (emu), NOT a GPU");
    p->totalGlobalMem = physical_bytes();
    p->sharedMemPerBlock = DYN_SHARED_DEFAULT;
    p->warpSize = 32;
    p->maxThreadsPerBlock = 1024;
    p->maxThreadsDim[0] = 1024; p->maxThreadsDim[1] = 1024; p->maxThreadsDim[2] = 64;
    p->maxGridSize[0] = 0x7fffffff; p->maxGridSize[1] = 65535; p->maxGridSize[2] = 65535;
    p->major = 9;
    p->minor = 0;
    p->multiProcessorCount = 1;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *v, enum cudaDeviceAttr attr, int dev) {
    struct cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, dev) != cudaSuccess) return cudaErrorInvalidDevice;
    switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock: *v = p.maxThreadsPerBlock; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *v = (int)p.sharedMemPerBlock; break;
    case cudaDevAttrWarpSize: *v = 32; break;
    case cudaDevAttrMultiProcessorCount: *v = 1; break;
    case cudaDevAttrComputeCapabilityMajor: *v = p.major; break;
    case cudaDevAttrComputeCapabilityMinor: *v = p.minor; break;
    case cudaDevAttrClockRate: *v = 1000000; break;          /* an emulator's nominal 1 GHz */
    case cudaDevAttrMemoryClockRate: *v = 1000000; break;
    case cudaDevAttrGlobalMemoryBusWidth: *v = 64; break;
    default: return note(cudaErrorInvalidValue);
    }
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) {
    API_LOCK();
    RETURN_IF_STICKY();
    if (cudaError_t e = refuse_in_capture()) return note(e);
    drain(nullptr);
    RETURN_IF_STICKY();
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes) {
    *total_bytes = physical_bytes();
    *free_bytes = (size_t)sysconf(_SC_AVPHYS_PAGES) * (size_t)sysconf(_SC_PAGESIZE);
    return cudaSuccess;
}

/* ---- memory ------------------------------------------------------------------------------ */

cudaError_t cudaMalloc(void **p, size_t bytes) {
    API_LOCK();
    RETURN_IF_STICKY();
    *p = nullptr;
    if (cudaError_t e = refuse_in_capture()) return note(e);
    if (!(*p = map_alloc(bytes, false))) return note(cudaErrorMemoryAllocation);
    return cudaSuccess;
}

cudaError_t cudaFree(void *p) {
    API_LOCK();
    RETURN_IF_STICKY();
    if (!p) return cudaSuccess;
    drain(nullptr);   /* cudaFree waits for the device, as CUDA's does */
    if (!unmap_alloc(p, false)) {
        fprintf(stderr, "emu: cudaFree(%p): not the start of a live device allocation\n", p);
        return note(cudaErrorInvalidDevicePointer);
    }
    return cudaSuccess;
}

cudaError_t cudaHostAlloc(void **p, size_t bytes, unsigned int flags) {
    API_LOCK();
    RETURN_IF_STICKY();
    *p = map_alloc(bytes, true);
    return *p ? cudaSuccess : note(cudaErrorMemoryAllocation);
}

cudaError_t cudaMallocHost(void **p, size_t bytes) { return cudaHostAlloc(p, bytes, 0); }

cudaError_t cudaFreeHost(void *p) {
    API_LOCK();
    RETURN_IF_STICKY();
    if (!p) return cudaSuccess;
    drain(nullptr);   /* cudaFreeHost waits for the device, as CUDA's does */
    if (!unmap_alloc(p, true)) {
        fprintf(stderr, "emu: cudaFreeHost(%p): not the start of a live cudaHostAlloc block\n", p);
        return note(cudaErrorInvalidValue);
    }
    return cudaSuccess;
}

}  // extern "C"

namespace {

/* Checks a copy's two ranges against its kind: a device side must lie inside one
 * device-accessible allocation, a host side must not be device memory. */
cudaError_t check_copy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                       const char *who) {
    if (kind > cudaMemcpyDefault) return cudaErrorInvalidMemcpyDirection;
    const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    const char *bad = nullptr;
    if (dst_dev && !find_range(dst, bytes)) bad = "the destination is not device memory of that size";
    else if (src_dev && !find_range(src, bytes)) bad = "the source is not device memory of that size";
    else if (kind == cudaMemcpyDefault) {
        allocation *d = find_alloc(dst), *s = find_alloc(src);
        if ((d && !find_range(dst, bytes)) || (s && !find_range(src, bytes)))
            bad = "a range runs past the end of its allocation";
    } else {
        allocation *d = find_alloc(dst), *s = find_alloc(src);
        if (!dst_dev && d && !d->host) bad = "the host destination is device memory";
        else if (!src_dev && s && !s->host) bad = "the host source is device memory";
    }
    if (bad) {
        fprintf(stderr, "emu: %s(%p, %p, %zu bytes, kind %d): %s\n", who, dst, src, bytes,
                (int)kind, bad);
        return cudaErrorInvalidValue;
    }
    return cudaSuccess;
}

void do_copy(void *dst, const void *src, size_t bytes) {
    open_guard og;
    og.add(find_alloc(dst));
    og.add(find_alloc(src));
    memmove(dst, src, bytes);
    stats.copies++;
}

void do_set(void *p, int value, size_t bytes) {
    open_guard og;
    og.add(find_alloc(p));
    memset(p, value, bytes);
}

}  // namespace

extern "C" {

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind) {
    API_LOCK();
    RETURN_IF_STICKY();
    if (cudaError_t e = refuse_in_capture()) return note(e);
    if (!bytes) return cudaSuccess;
    if (cudaError_t e = check_copy(dst, src, bytes, kind, "cudaMemcpy")) return note(e);
    run_blocking([dst, src, bytes] { do_copy(dst, src, bytes); });
    RETURN_IF_STICKY();
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind,
                            cudaStream_t st) {
    API_LOCK();
    RETURN_IF_STICKY();
    if (!bytes) return cudaSuccess;
    if (cudaError_t e = check_copy(dst, src, bytes, kind, "cudaMemcpyAsync")) return note(e);
    /* CUDA's rules for pageable host memory (not cudaHostAlloc'd): a copy from it is
     * staged at the call, so the caller may reuse the source at once; a copy into it
     * returns only once it is done. Pinned memory is read and written when the copy runs. */
    allocation *hs = kind == cudaMemcpyHostToDevice ? find_alloc(src) : nullptr;
    allocation *hd = kind == cudaMemcpyDeviceToHost ? find_alloc(dst) : nullptr;
    if (kind == cudaMemcpyHostToDevice && !(hs && hs->host)) {
        auto staged = std::make_shared<std::vector<char>>((const char *)src, (const char *)src + bytes);
        return note(enqueue(st, [dst, staged, bytes] { do_copy(dst, staged->data(), bytes); }));
    }
    if (kind == cudaMemcpyDeviceToHost && !(hd && hd->host) && !(st && st->cap)) {
        cudaError_t e = enqueue(st, [dst, src, bytes] { do_copy(dst, src, bytes); });
        if (e != cudaSuccess) return note(e);
        drain_one(st ? st->tail : legacy_tail);
        RETURN_IF_STICKY();
        return cudaSuccess;
    }
    return note(enqueue(st, [dst, src, bytes] { do_copy(dst, src, bytes); }));
}

cudaError_t cudaMemset(void *p, int value, size_t bytes) {
    API_LOCK();
    RETURN_IF_STICKY();
    if (cudaError_t e = refuse_in_capture()) return note(e);
    if (!bytes) return cudaSuccess;
    if (!find_range(p, bytes)) {
        fprintf(stderr, "emu: cudaMemset(%p, %zu bytes): not device memory of that size\n", p, bytes);
        return note(cudaErrorInvalidValue);
    }
    run_blocking([p, value, bytes] { do_set(p, value, bytes); });
    RETURN_IF_STICKY();
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t st) {
    API_LOCK();
    RETURN_IF_STICKY();
    if (!bytes) return cudaSuccess;
    if (!find_range(p, bytes)) {
        fprintf(stderr, "emu: cudaMemsetAsync(%p, %zu bytes): not device memory of that size\n",
                p, bytes);
        return note(cudaErrorInvalidValue);
    }
    return note(enqueue(st, [p, value, bytes] { do_set(p, value, bytes); }));
}

/* ---- streams and events ---------------------------------------------------------------- */

cudaError_t cudaStreamCreate(cudaStream_t *st) { return cudaStreamCreateWithFlags(st, 0); }

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *st, unsigned int flags) {
    API_LOCK();
    RETURN_IF_STICKY();
    *st = new emu_stream{flags, nullptr, nullptr, nullptr, false};
    all_streams.push_back(*st);
    return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t st) {
    API_LOCK();
    if (!st || st->cap) return note(cudaErrorInvalidResourceHandle);
    drain_one(st->tail);   /* its work completes, as CUDA lets it */
    all_streams.erase(std::remove(all_streams.begin(), all_streams.end(), st), all_streams.end());
    delete st;
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t st) {
    API_LOCK();
    RETURN_IF_STICKY();
    if (st && st->cap) {
        st->cap->invalidated = true;
        return note(cudaErrorStreamCaptureUnsupported);
    }
    if (!st) {
        if (cudaError_t e = refuse_in_capture()) return note(e);
        node_ptr n = new_node(op());   /* what the legacy stream waits for, then itself */
        stream_deps(n, nullptr);
        set_tail(nullptr, n);
        pending.push_back(n);
        drain_one(n);
    } else {
        drain_one(st->tail);
    }
    RETURN_IF_STICKY();
    return cudaSuccess;
}

/* A query completes the work it asks about first (the emulator has no clock: this is how
 * a host that polls makes progress), so the answer is always "done". */
cudaError_t cudaStreamQuery(cudaStream_t st) {
    API_LOCK();
    RETURN_IF_STICKY();
    if (st && st->cap) return cudaSuccess;
    drain_one(st ? st->tail : legacy_tail);
    RETURN_IF_STICKY();
    return cudaSuccess;
}

cudaError_t cudaEventQuery(cudaEvent_t e) {
    API_LOCK();
    RETURN_IF_STICKY();
    if (!e) return note(cudaErrorInvalidResourceHandle);
    if (!e->cap) drain_one(e->at);
    RETURN_IF_STICKY();
    return cudaSuccess;
}

/* Later work on st waits for the work e stands for. Inside a capture, a stream not yet
 * in it joins the capture (CUDA's cross-stream capture), its next work depending on the
 * captured node the event stands for. */
cudaError_t cudaStreamWaitEvent(cudaStream_t st, cudaEvent_t e, unsigned int flags) {
    API_LOCK();
    RETURN_IF_STICKY();
    if (!e) return note(cudaErrorInvalidResourceHandle);
    if (e->cap) {                                 /* an event recorded in a capture */
        if (!st || (st->cap && st->cap != e->cap)) {
            e->cap->invalidated = true;
            return note(cudaErrorStreamCaptureIsolation);
        }
        if (!st->cap) {                           /* joins the capture */
            st->cap = e->cap;
            st->cap_tail = e->at;
            e->cap->streams.push_back(st);
            return cudaSuccess;
        }
        node_ptr n = new_node(op());              /* a marker with both dependencies */
        if (st->cap_tail) n->deps.push_back(st->cap_tail);
        if (e->at) n->deps.push_back(e->at);
        st->cap_tail = n;
        st->cap->nodes.push_back(n);
        return cudaSuccess;
    }
    if (st && st->cap) {                          /* an outside event inside a capture */
        st->cap->invalidated = true;
        return note(cudaErrorStreamCaptureIsolation);
    }
    node_ptr n = new_node(op());
    stream_deps(n, st);
    add_dep(n, e->at);
    set_tail(st, n);
    pending.push_back(n);
    return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t *e) { return cudaEventCreateWithFlags(e, 0); }

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned int flags) {
    API_LOCK();
    RETURN_IF_STICKY();
    *e = new emu_event{flags, nullptr, nullptr};
    return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t e) {
    API_LOCK();
    if (!e) return note(cudaErrorInvalidResourceHandle);
    delete e;
    return cudaSuccess;
}

/* The event stands for everything on st so far: a marker node after st's last work. */
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t st) {
    API_LOCK();
    RETURN_IF_STICKY();
    if (!e) return note(cudaErrorInvalidResourceHandle);
    if (st && st->cap) {
        e->cap = st->cap;
        e->at = st->cap_tail;                     /* NULL: the capture's start */
        return cudaSuccess;
    }
    if (!st && forbidding_captures()) return note(cudaErrorStreamCaptureImplicit);
    std::shared_ptr<double> t = e->t;
    *t = -1.0;
    node_ptr n = new_node([t] {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        *t = ts.tv_sec + ts.tv_nsec * 1e-9;
    });
    stream_deps(n, st);
    set_tail(st, n);
    pending.push_back(n);
    e->cap = nullptr;
    e->at = n;
    return cudaSuccess;
}

/* The host time between the two records' nodes running: the emulator's time, no GPU's.
 * Not ready (as CUDA) until both have run; recorded in a capture or never: invalid. */
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
    API_LOCK();
    RETURN_IF_STICKY();
    if (!a || !b || !ms || a->cap || b->cap || !a->at || !b->at) return note(cudaErrorInvalidResourceHandle);
    if (!a->at->done || !b->at->done) return cudaErrorNotReady;
    *ms = (float)((*b->t - *a->t) * 1e3);
    return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t e) {
    API_LOCK();
    RETURN_IF_STICKY();
    if (!e) return note(cudaErrorInvalidResourceHandle);
    if (!e->cap) drain_one(e->at);
    RETURN_IF_STICKY();
    return cudaSuccess;
}

/* ---- graphs --------------------------------------------------------------------------- */

cudaError_t cudaStreamBeginCapture(cudaStream_t st, enum cudaStreamCaptureMode mode) {
    API_LOCK();
    RETURN_IF_STICKY();
    if (!st || st->cap) return note(cudaErrorStreamCaptureUnsupported);
    capture *c = new capture{mode, std::this_thread::get_id(), false, {}, {st}};
    st->cap = c;
    st->cap_tail = nullptr;
    st->origin = true;
    capturing.push_back(c);
    return cudaSuccess;
}

/* Ends the capture st began. Every stream that joined it must have joined back: its last
 * captured work must be something st's last work depends on, else
 * cudaErrorStreamCaptureUnjoined, as CUDA says. */
cudaError_t cudaStreamEndCapture(cudaStream_t st, cudaGraph_t *graph) {
    API_LOCK();
    *graph = nullptr;
    if (!st || !st->cap || !st->origin) return note(cudaErrorInvalidValue);
    capture *c = st->cap;
    capturing.erase(std::remove(capturing.begin(), capturing.end(), c), capturing.end());
    std::set<node *> reach;                       /* what st's last work depends on */
    std::vector<node_ptr> stack;
    if (st->cap_tail) stack.push_back(st->cap_tail);
    while (!stack.empty()) {
        node_ptr n = stack.back();
        stack.pop_back();
        if (!reach.insert(n.get()).second) continue;
        for (const node_ptr &d : n->deps) stack.push_back(d);
    }
    bool unjoined = false;
    for (emu_stream *o : c->streams) {
        if (o != st && o->cap_tail && !reach.count(o->cap_tail.get())) unjoined = true;
        o->cap = nullptr;
        o->cap_tail = nullptr;
        o->origin = false;
    }
    cudaError_t rc = cudaSuccess;
    if (c->invalidated) rc = cudaErrorStreamCaptureInvalidated;
    else if (unjoined) {
        fprintf(stderr, "emu: cudaStreamEndCapture: a stream that joined the capture did not join "
                "back (no event recorded on it after its last work that the capturing stream waited for)\n");
        rc = cudaErrorStreamCaptureUnjoined;
    } else {
        *graph = new emu_graph{std::move(c->nodes)};
    }
    delete c;
    return rc == cudaSuccess ? cudaSuccess : note(rc);
}

cudaError_t cudaGraphInstantiateWithFlags(cudaGraphExec_t *exec, cudaGraph_t graph,
                                          unsigned long long flags) {
    API_LOCK();
    RETURN_IF_STICKY();
    if (!graph) return note(cudaErrorInvalidValue);
    *exec = new emu_graph{graph->nodes};
    return cudaSuccess;
}

/* A launch copies the graph's nodes into the work to run, the same dependencies among
 * them; its roots wait for st's work so far, and st's later work waits for all of it. */
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t st) {
    API_LOCK();
    RETURN_IF_STICKY();
    if (!exec) return note(cudaErrorInvalidValue);
    if (st && st->cap) return note(cudaErrorStreamCaptureUnsupported);
    if (!st && forbidding_captures()) return note(cudaErrorStreamCaptureImplicit);
    std::map<node *, node_ptr> copy;
    node_ptr before = new_node(op());             /* st's work so far */
    stream_deps(before, st);
    pending.push_back(before);
    node_ptr after = new_node(op());              /* the graph's end */
    for (const node_ptr &g : exec->nodes) {       /* creation order: dependencies come first */
        node_ptr n = new_node(g->f);
        n->deps.push_back(before);
        for (const node_ptr &d : g->deps) n->deps.push_back(copy.at(d.get()));
        copy[g.get()] = n;
        pending.push_back(n);
        after->deps.push_back(n);
    }
    after->deps.push_back(before);
    set_tail(st, after);
    pending.push_back(after);
    return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
    API_LOCK();
    delete graph;
    return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
    API_LOCK();
    delete exec;
    return cudaSuccess;
}

/* ---- cuBLAS ------------------------------------------------------------------------------- */

cublasStatus_t cublasCreate(cublasHandle_t *h) {
    API_LOCK();
    *h = new emu_blas{nullptr, nullptr, 0};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t h) {
    API_LOCK();
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t st) {
    API_LOCK();
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    h->st = st;
    h->ws = nullptr;   /* as cuBLAS: setting the stream resets the workspace */
    h->ws_bytes = 0;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void *ws, size_t bytes) {
    API_LOCK();
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (bytes && !find_range(ws, bytes)) {
        fprintf(stderr, "emu: cublasSetWorkspace(%p, %zu bytes): not device memory of that "
                "size\n", ws, bytes);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    h->ws = ws;
    h->ws_bytes = bytes;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtCreate(cublasLtHandle_t *h) {
    *h = new emu_blaslt{0};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"

namespace {

/* The operand as the compute type sees it: fp32, or converted to tf32 (10 mantissa
 * bits) or bf16 (7 bits) by DATH_EMU_TC_ROUND's rule. Infinities and NaN stay. */
float operand(float x, cublasComputeType_t ct) {
    const int drop = ct == CUBLAS_COMPUTE_32F_FAST_TF32 ? 13
                   : ct == CUBLAS_COMPUTE_32F_FAST_16BF ? 16 : 0;
    if (!drop || !std::isfinite(x)) return x;
    uint32_t u;
    memcpy(&u, &x, 4);
    const uint32_t half = 1u << (drop - 1);
    if (tc_round == TC_RN) u += half - 1 + (u >> drop & 1u);
    else if (tc_round == TC_RNA) u += half;
    u &= ~((1u << drop) - 1u);
    float r;
    memcpy(&r, &u, 4);
    return r;
}

/* o [m] = Σ_p row_p [m] · b_p, one fp32 FMA chain per element in p order (rows [kr]
 * consecutive rows of length m): cuBLAS's CUDA-core accumulation. */
void chain_fma(float *__restrict__ o, const float *__restrict__ rows,
               const float *__restrict__ b, int m, int kr) {
    for (int r = 0; r < m; r++) o[r] = 0.0f;
    for (int p = 0; p < kr; p++) {
        const float *row = rows + (size_t)p * m, bv = b[p];
        for (int r = 0; r < m; r++) o[r] = std::fma(row[r], bv, o[r]);
    }
}

/* s [m] = Σ_p row_p · b_p in double, in p order (the former reference; not rounded). */
void chain_double(double *__restrict__ s, const float *__restrict__ rows,
                  const float *__restrict__ b, int m, int kr) {
    for (int r = 0; r < m; r++) s[r] = 0.0;
    for (int p = 0; p < kr; p++) {
        const float *row = rows + (size_t)p * m;
        const double bv = b[p];
        for (int r = 0; r < m; r++) s[r] += (double)row[r] * bv;
    }
}

/* Truncation (toward zero) of a double to fp32's 24 significant bits, as fp32: exact
 * for results in fp32's normal range (subnormal ones are then rounded to nearest). */
inline float rz_float(double d) {
    uint64_t u;
    memcpy(&u, &d, 8);
    u &= ~((UINT64_C(1) << 29) - 1);
    memcpy(&d, &u, 8);
    return (float)d;
}

/* o [m] = Σ_p row_p · b_p as sm_90's tensor cores sum it (Khattak & Mikaitis 2025's
 * model of the H100/H200 block FMA): the k terms in blocks of bk; per block, the
 * running fp32 sum c and the bk exact products are aligned to the largest exponent e
 * among them, each truncated to a multiple of 2^(e-23-TC_EXTRA), summed exactly, and
 * the sum truncated to fp32 (RZ), which is the next block's c. Exponents below fp32's
 * smallest normal (-126) count as -126. mx, sc, isc, s: scratch of m doubles each. */
void chain_block(float *__restrict__ o, const float *__restrict__ rows,
                 const float *__restrict__ b, int m, int kr, int bk, double *__restrict__ mx,
                 double *__restrict__ sc, double *__restrict__ isc, double *__restrict__ s) {
    for (int r = 0; r < m; r++) o[r] = 0.0f;
    for (int p0 = 0; p0 < kr; p0 += bk) {
        const int p1 = kr - p0 < bk ? kr : p0 + bk;
        for (int r = 0; r < m; r++) mx[r] = std::fabs((double)o[r]);
        for (int p = p0; p < p1; p++) {
            const float *row = rows + (size_t)p * m;
            const double bv = b[p];
            for (int r = 0; r < m; r++) {
                const double t = std::fabs((double)row[r] * bv);   /* exact */
                mx[r] = mx[r] < t ? t : mx[r];
            }
        }
        for (int r = 0; r < m; r++) {   /* sc = 2^(23+TC_EXTRA-e), isc = 1/sc */
            uint64_t u;
            memcpy(&u, &mx[r], 8);
            int64_t e = (int64_t)(u >> 52) - 1023;   /* 1024 for inf, NaN */
            e = e < -126 ? -126 : e;
            uint64_t us = (uint64_t)(1023 + 23 + TC_EXTRA - e) << 52;
            uint64_t ui = (uint64_t)(1023 - 23 - TC_EXTRA + e) << 52;
            memcpy(&sc[r], &us, 8);
            memcpy(&isc[r], &ui, 8);
        }
        /* in units of 2^(e-23-TC_EXTRA) every term is below 2^26: the sum is exact */
        for (int r = 0; r < m; r++) s[r] = std::trunc((double)o[r] * sc[r]);
        for (int p = p0; p < p1; p++) {
            const float *row = rows + (size_t)p * m;
            const double bv = b[p];
            for (int r = 0; r < m; r++) s[r] += std::trunc((double)row[r] * bv * sc[r]);
        }
        for (int r = 0; r < m; r++) o[r] = rz_float(s[r] * isc[r]);
    }
}

/* Bytes [lo, hi) that a column-major operand of `rows` × `cols` (leading dimension ld)
 * repeated `batch` times `stride` elements apart spans, relative to its pointer. */
void operand_span(long long rows, long long cols, long long ld, long long stride, int batch,
                  long long *lo, long long *hi, int es = 4) {
    const long long one = (cols - 1) * ld + rows;   /* elements of one product */
    const long long last = (long long)(batch - 1) * stride;
    *lo = es * (last < 0 ? last : 0);
    *hi = es * ((last > 0 ? last : 0) + one);
}

/* Bytes an element of a cuBLAS operand type (CUDA_R_32F or CUDA_R_16BF, the two dath uses). */
int type_size(cudaDataType_t t) { return t == CUDA_R_16BF ? 2 : 4; }

/* Element i of an operand of type t, as a float (bf16: its 16 bits are the float's upper half). */
float type_load(const void *p, cudaDataType_t t, size_t i) {
    if (t != CUDA_R_16BF) return ((const float *)p)[i];
    const uint32_t u = (uint32_t)((const uint16_t *)p)[i] << 16;
    float v;
    memcpy(&v, &u, 4);
    return v;
}

/* Stores v as type t: bf16 rounded to nearest even (cuBLAS's output conversion; NaN stays NaN). */
void type_store(void *p, cudaDataType_t t, size_t i, float v) {
    if (t != CUDA_R_16BF) {
        ((float *)p)[i] = v;
        return;
    }
    uint32_t u;
    memcpy(&u, &v, 4);
    uint16_t h = (u & 0x7fffffffu) > 0x7f800000u ? (uint16_t)((u >> 16) | 0x40u)
                                                 : (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    ((uint16_t *)p)[i] = h;
}

/* The allocation an operand lies in (NULL for an empty one). */
allocation *operand_alloc(const void *p, long long rows, long long cols, long long ld,
                          long long stride, int batch, int es = 4) {
    if (rows <= 0 || cols <= 0) return nullptr;
    long long lo, hi;
    operand_span(rows, cols, ld, stride, batch, &lo, &hi, es);
    return find_alloc((const char *)p + lo);
}

bool operand_ok(const char *name, const void *p, long long rows, long long cols, long long ld,
                long long stride, int batch, const char *who, int es = 4) {
    if (rows <= 0 || cols <= 0) return true;
    long long lo, hi;
    operand_span(rows, cols, ld, stride, batch, &lo, &hi, es);
    const char *start = (const char *)p + lo;
    if (find_range(start, (size_t)(hi - lo))) return true;
    fault(cudaErrorIllegalAddress, "%s: operand %s (%lld × %lld, ld %lld, stride %lld, batch "
          "%d) at %p: bytes [%lld, %lld) from it are not inside one device allocation",
          who, name, rows, cols, ld, stride, batch, p, lo, hi);
    return false;
}

/* C = alpha op(A) op(B) + beta C for each product of the batch (column-major), each
 * element summed as DATH_EMU_GEMM says (see above), then alpha and beta as cuBLAS's
 * epilogue applies them in fp32: fma(alpha, acc, beta·C), or alpha·acc when beta = 0
 * (C is then not read). The double model keeps its former epilogue (in double). With a
 * bias (cuBLASLt's BIAS epilogues) bias[r] is then added to row r in fp32, and with relu
 * max(0, ·) taken (a NaN stays). Operands of type At / Bt / Ct (CUDA_R_32F, or CUDA_R_16BF:
 * bf16 A and B on the bf16 tensor cores whatever the compute type, as cuBLAS runs them; a
 * bf16 C rounded to nearest once, after the epilogue; the bias is of C's type). */
void gemm_reference(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha,
                    const void *A, int lda, long long sA, const void *B, int ldb, long long sB,
                    float beta, void *C, int ldc, long long sC, int batch,
                    cublasComputeType_t ct, const char *who, const void *bias = nullptr, bool relu = false,
                    cudaDataType_t At = CUDA_R_32F, cudaDataType_t Bt = CUDA_R_32F, cudaDataType_t Ct = CUDA_R_32F) {
    const int ea = type_size(At), eb = type_size(Bt), ec = type_size(Ct);
    const int kr = alpha != 0.0f ? k : 0;   /* terms read: A and B are not read when alpha = 0 */
    const long long ar = ta == CUBLAS_OP_N ? m : kr, ac = ta == CUBLAS_OP_N ? kr : m;
    const long long br = tb == CUBLAS_OP_N ? kr : n, bc = tb == CUBLAS_OP_N ? n : kr;
    if (!operand_ok("A", A, ar, ac, lda, sA, batch, who, ea) ||
        !operand_ok("B", B, br, bc, ldb, sB, batch, who, eb) ||
        !operand_ok("C", C, m, n, ldc, sC, batch, who, ec) ||
        (bias && !operand_ok("bias", bias, m, 1, m, 0, 1, who, ec)))
        return;
    open_guard og;
    og.add(operand_alloc(A, ar, ac, lda, sA, batch, ea));
    og.add(operand_alloc(B, br, bc, ldb, sB, batch, eb));
    og.add(operand_alloc(C, m, n, ldc, sC, batch, ec));
    if (bias) og.add(operand_alloc(bias, m, 1, m, 0, 1, ec));
    const bool b16 = At == CUDA_R_16BF;   /* bf16 operands: the bf16 tensor cores */
    const bool tc = ct != CUBLAS_COMPUTE_32F || b16;
    const int bk = ct == CUBLAS_COMPUTE_32F_FAST_16BF || b16 ? TC_K_BF16 : TC_K_TF32;
    /* scratch kept between calls (fc6's operand is 150 MB: allocating and faulting it in
     * again for every GEMM cost more than the GEMM) */
    static std::vector<float> fbuf;
    static std::vector<double> dbuf;
    const size_t na = (size_t)kr * m, nbo = (size_t)n * kr, nacc = (size_t)m * n;
    const size_t nd = 4 * (size_t)m + (gemm_model == GEMM_DOUBLE ? nacc : 0);
    if (fbuf.size() < na + nbo + nacc + 1) fbuf.resize(na + nbo + nacc + 1);
    if (dbuf.size() < nd + 1) dbuf.resize(nd + 1);
    float *pa = fbuf.data(), *pb = pa + na, *acc = pb + nbo;   /* [kr,m], [n,kr], [n,m] */
    double *s0 = dbuf.data(), *s1 = s0 + m, *s2 = s1 + m, *s3 = s2 + m, *dacc = s3 + m;
    for (int i = 0; i < batch; i++) {
        const size_t oa = (size_t)(i * sA), ob = (size_t)(i * sB), oc = (size_t)(i * sC);
        for (int p = 0; p < kr; p++)         /* pa: row p holds column p of op(A) */
            for (int r = 0; r < m; r++)
                pa[(size_t)p * m + r] = operand(type_load(A, At, oa + (ta == CUBLAS_OP_N ? r + (size_t)p * lda
                                                                                         : p + (size_t)r * lda)), ct);
        for (int c = 0; c < n; c++)          /* pb: column c of op(B) */
            for (int p = 0; p < kr; p++)
                pb[(size_t)c * kr + p] = operand(type_load(B, Bt, ob + (tb == CUBLAS_OP_N ? p + (size_t)c * ldb
                                                                                          : c + (size_t)p * ldb)), ct);
        for (int c = 0; c < n; c++) {
            float *o = &acc[(size_t)c * m];
            const float *bcol = &pb[(size_t)c * kr];
            if (gemm_model == GEMM_DOUBLE) chain_double(&dacc[(size_t)c * m], pa, bcol, m, kr);
            else if (gemm_model == GEMM_HW && tc) chain_block(o, pa, bcol, m, kr, bk, s0, s1, s2, s3);
            else chain_fma(o, pa, bcol, m, kr);
        }
        if (gemm_model == GEMM_DOUBLE) {    /* the former reference's epilogue, in double */
            for (int c = 0; c < n; c++)
                for (int r = 0; r < m; r++) {
                    double v = (double)alpha * dacc[(size_t)c * m + r];
                    if (beta != 0.0f) v += (double)beta * type_load(C, Ct, oc + r + (size_t)c * ldc);
                    acc[(size_t)c * m + r] = (float)v;
                }
        } else {
            for (int c = 0; c < n; c++)
                for (int r = 0; r < m; r++) {
                    float &v = acc[(size_t)c * m + r];
                    v = beta != 0.0f ? std::fma(alpha, v, beta * type_load(C, Ct, oc + r + (size_t)c * ldc))
                                     : alpha * v;
                }
        }
        if (bias || relu)                    /* cuBLASLt's bias and ReLU epilogues */
            for (int c = 0; c < n; c++)
                for (int r = 0; r < m; r++) {
                    float &v = acc[(size_t)c * m + r];
                    if (bias) v += type_load(bias, Ct, (size_t)r);
                    if (relu && v < 0.0f) v = 0.0f;
                }
        for (int c = 0; c < n; c++)          /* written after reading: C may alias A or B */
            for (int r = 0; r < m; r++) type_store(C, Ct, oc + r + (size_t)c * ldc, acc[(size_t)c * m + r]);
    }
    stats.gemm_flops += 2.0 * m * n * (double)kr * batch;
}

cublasStatus_t gemm_enqueue(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,
                            int m, int n, int k, const void *alpha, const void *A,
                            cudaDataType_t At, int lda, long long sA, const void *B,
                            cudaDataType_t Bt, int ldb, long long sB, const void *beta,
                            void *C, cudaDataType_t Ct, int ldc, long long sC, int batch,
                            cublasComputeType_t ct, const char *who) {
    API_LOCK();
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (sticky_error != cudaSuccess) return CUBLAS_STATUS_EXECUTION_FAILED;
    const bool f32 = At == CUDA_R_32F && Bt == CUDA_R_32F && Ct == CUDA_R_32F &&
                     (ct == CUBLAS_COMPUTE_32F || ct == CUBLAS_COMPUTE_32F_FAST_TF32 ||
                      ct == CUBLAS_COMPUTE_32F_FAST_16BF);
    const bool b16 = At == CUDA_R_16BF && Bt == CUDA_R_16BF && (Ct == CUDA_R_32F || Ct == CUDA_R_16BF) &&
                     ct == CUBLAS_COMPUTE_32F;
    if (!f32 && !b16) {
        fprintf(stderr, "emu: %s: only CUDA_R_32F operands with the 32F, 32F_FAST_TF32 and "
                "32F_FAST_16BF compute types, and CUDA_R_16BF A and B (C CUDA_R_32F or CUDA_R_16BF) with "
                "32F, are emulated\n", who);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    const int ar = ta == CUBLAS_OP_N ? m : k, br = tb == CUBLAS_OP_N ? k : n;
    if (m < 0 || n < 0 || k < 0 || batch < 0 || (ta != CUBLAS_OP_N && ta != CUBLAS_OP_T) ||
        (tb != CUBLAS_OP_N && tb != CUBLAS_OP_T) || lda < (ar > 1 ? ar : 1) ||
        ldb < (br > 1 ? br : 1) || ldc < (m > 1 ? m : 1) || !alpha || !beta) {
        fprintf(stderr, "emu: %s: invalid arguments (m %d, n %d, k %d, lda %d, ldb %d, ldc %d, "
                "batch %d, trans %d/%d)\n", who, m, n, k, lda, ldb, ldc, batch, (int)ta, (int)tb);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    stats.gemms++;
    stats.gemm_by_type[ct == CUBLAS_COMPUTE_32F_FAST_TF32 ? 1 : ct == CUBLAS_COMPUTE_32F_FAST_16BF || b16 ? 2 : 0]++;
    if (!m || !n || !batch) return CUBLAS_STATUS_SUCCESS;
    const float a = *(const float *)alpha, b = *(const float *)beta;   /* host pointer mode */
    cudaError_t e = enqueue(h->st, [=] {
        if (sticky_error == cudaSuccess)
            gemm_reference(ta, tb, m, n, k, a, A, lda, sA, B, ldb, sB, b, C, ldc, sC, batch,
                           ct, who, nullptr, false, At, Bt, Ct);
    });
    if (e != cudaSuccess) {
        note(e);
        return CUBLAS_STATUS_EXECUTION_FAILED;
    }
    return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

extern "C" {

cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,
                            int m, int n, int k, const void *alpha, const void *A,
                            cudaDataType_t Atype, int lda, const void *B, cudaDataType_t Btype,
                            int ldb, const void *beta, void *C, cudaDataType_t Ctype, int ldc,
                            cublasComputeType_t compute, cublasGemmAlgo_t algo) {
    return gemm_enqueue(h, ta, tb, m, n, k, alpha, A, Atype, lda, 0, B, Btype, ldb, 0, beta, C,
                        Ctype, ldc, 0, 1, compute, "cublasGemmEx");
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta,
                                          cublasOperation_t tb, int m, int n, int k,
                                          const void *alpha, const void *A, cudaDataType_t Atype,
                                          int lda, long long strideA, const void *B,
                                          cudaDataType_t Btype, int ldb, long long strideB,
                                          const void *beta, void *C, cudaDataType_t Ctype,
                                          int ldc, long long strideC, int batch,
                                          cublasComputeType_t compute, cublasGemmAlgo_t algo) {
    return gemm_enqueue(h, ta, tb, m, n, k, alpha, A, Atype, lda, strideA, B, Btype, ldb,
                        strideB, beta, C, Ctype, ldc, strideC, batch, compute,
                        "cublasGemmStridedBatchedEx");
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t compute, cudaDataType_t scale) {
    if (!d) return CUBLAS_STATUS_INVALID_VALUE;
    *d = new emu_lt_desc{compute, scale, CUBLAS_OP_N, CUBLAS_OP_N, CUBLASLT_EPILOGUE_DEFAULT, nullptr};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) {
    delete d;
    return CUBLAS_STATUS_SUCCESS;
}

/* The four attributes dath sets, each of its documented type and size; others refused. */
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr,
                                              const void *buf, size_t size) {
    if (!d || !buf) return CUBLAS_STATUS_INVALID_VALUE;
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA:
    case CUBLASLT_MATMUL_DESC_TRANSB: {
        if (size != sizeof(int32_t)) return CUBLAS_STATUS_INVALID_VALUE;
        const cublasOperation_t op = (cublasOperation_t)*(const int32_t *)buf;
        if (op != CUBLAS_OP_N && op != CUBLAS_OP_T) return CUBLAS_STATUS_NOT_SUPPORTED;
        (attr == CUBLASLT_MATMUL_DESC_TRANSA ? d->ta : d->tb) = op;
        return CUBLAS_STATUS_SUCCESS;
    }
    case CUBLASLT_MATMUL_DESC_EPILOGUE: {
        if (size != sizeof(uint32_t)) return CUBLAS_STATUS_INVALID_VALUE;
        const cublasLtEpilogue_t e = (cublasLtEpilogue_t)*(const uint32_t *)buf;
        if (e != CUBLASLT_EPILOGUE_DEFAULT && e != CUBLASLT_EPILOGUE_RELU && e != CUBLASLT_EPILOGUE_BIAS &&
            e != CUBLASLT_EPILOGUE_RELU_BIAS)
            return CUBLAS_STATUS_NOT_SUPPORTED;
        d->epi = e;
        return CUBLAS_STATUS_SUCCESS;
    }
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
        if (size != sizeof(void *)) return CUBLAS_STATUS_INVALID_VALUE;
        d->bias = *(const void *const *)buf;
        return CUBLAS_STATUS_SUCCESS;
    }
    fprintf(stderr, "emu: cublasLtMatmulDescSetAttribute: attribute %d is not emulated\n", (int)attr);
    return CUBLAS_STATUS_NOT_SUPPORTED;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType_t type, uint64_t rows,
                                          uint64_t cols, int64_t ld) {
    if (!l) return CUBLAS_STATUS_INVALID_VALUE;
    *l = new emu_lt_layout{type, rows, cols, ld};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
    delete l;
    return CUBLAS_STATUS_SUCCESS;
}

/* D = epilogue(alpha op(A) op(B) + beta C), column-major, in place (C = D, one layout):
 * the cuBLAS model's product and epilogue (gemm_reference), then the bias and ReLU. The
 * descriptor's values are taken now (the caller may destroy it before the stream runs). */
cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void *alpha, const void *A,
                              cublasLtMatrixLayout_t Ad, const void *B, cublasLtMatrixLayout_t Bd,
                              const void *beta, const void *C, cublasLtMatrixLayout_t Cd, void *D,
                              cublasLtMatrixLayout_t Dd, const cublasLtMatmulAlgo_t *algo, void *workspace,
                              size_t workspace_bytes, cudaStream_t stream) {
    API_LOCK();
    const char *who = "cublasLtMatmul";
    if (!h || !d || !Ad || !Bd || !Cd || !Dd || !alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
    if (sticky_error != cudaSuccess) return CUBLAS_STATUS_EXECUTION_FAILED;
    const char *dec = getenv("DATH_EMU_LT_DECLINE");
    if (dec && *dec && strcmp(dec, "0")) return CUBLAS_STATUS_NOT_SUPPORTED;   /* the caller's fallback */
    const cublasComputeType_t ct = d->ct;
    const bool f32 = Ad->type == CUDA_R_32F && Bd->type == CUDA_R_32F && Cd->type == CUDA_R_32F &&
                     (ct == CUBLAS_COMPUTE_32F || ct == CUBLAS_COMPUTE_32F_FAST_TF32 ||
                      ct == CUBLAS_COMPUTE_32F_FAST_16BF);
    const bool b16 = Ad->type == CUDA_R_16BF && Bd->type == CUDA_R_16BF &&
                     (Cd->type == CUDA_R_32F || Cd->type == CUDA_R_16BF) && ct == CUBLAS_COMPUTE_32F;
    if (C != D || Cd->rows != Dd->rows || Cd->cols != Dd->cols || Cd->ld != Dd->ld || Cd->type != Dd->type ||
        d->scale != CUDA_R_32F || (!f32 && !b16)) {
        fprintf(stderr, "emu: %s: only C = D, CUDA_R_32F scale, and CUDA_R_32F matrices with the 32F, "
                "32F_FAST_TF32 and 32F_FAST_16BF compute types or CUDA_R_16BF A and B (C CUDA_R_32F or "
                "CUDA_R_16BF) with 32F are emulated\n", who);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    const long long m = (long long)Dd->rows, n = (long long)Dd->cols;
    const long long k = (long long)(d->ta == CUBLAS_OP_N ? Ad->cols : Ad->rows);
    const long long am = (long long)(d->ta == CUBLAS_OP_N ? Ad->rows : Ad->cols);
    const long long bk = (long long)(d->tb == CUBLAS_OP_N ? Bd->rows : Bd->cols);
    const long long bn = (long long)(d->tb == CUBLAS_OP_N ? Bd->cols : Bd->rows);
    const bool with_bias = d->epi == CUBLASLT_EPILOGUE_BIAS || d->epi == CUBLASLT_EPILOGUE_RELU_BIAS;
    if (am != m || bk != k || bn != n || Ad->ld < (int64_t)(Ad->rows > 1 ? Ad->rows : 1) ||
        Bd->ld < (int64_t)(Bd->rows > 1 ? Bd->rows : 1) || Dd->ld < (int64_t)(m > 1 ? m : 1) ||
        m > INT32_MAX || n > INT32_MAX || k > INT32_MAX || (with_bias && !d->bias)) {
        fprintf(stderr, "emu: %s: invalid arguments (op(A) %lld × %lld, op(B) %lld × %lld, D %lld × %lld, "
                "ld %lld/%lld/%lld%s)\n", who, am, k, bk, bn, m, n, (long long)Ad->ld, (long long)Bd->ld,
                (long long)Dd->ld, with_bias && !d->bias ? ", no bias pointer" : "");
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    stats.gemms++;
    stats.gemm_by_type[ct == CUBLAS_COMPUTE_32F_FAST_TF32 ? 1 : ct == CUBLAS_COMPUTE_32F_FAST_16BF || b16 ? 2 : 0]++;
    if (!m || !n) return CUBLAS_STATUS_SUCCESS;
    const float a = *(const float *)alpha, b = *(const float *)beta;   /* host pointer mode */
    const void *bias = with_bias ? d->bias : nullptr;
    const cudaDataType_t At = Ad->type, Bt = Bd->type, Dt = Dd->type;
    const cublasOperation_t ta = d->ta, tb = d->tb;
    const int lda = (int)Ad->ld, ldb = (int)Bd->ld, ldd = (int)Dd->ld;
    const bool relu = d->epi == CUBLASLT_EPILOGUE_RELU || d->epi == CUBLASLT_EPILOGUE_RELU_BIAS;
    (void)algo; (void)workspace; (void)workspace_bytes;
    cudaError_t e = enqueue(stream, [=] {
        if (sticky_error == cudaSuccess)
            gemm_reference(ta, tb, (int)m, (int)n, (int)k, a, A, lda, 0, B, ldb, 0, b, D, ldd, 0, 1, ct, who,
                           bias, relu, At, Bt, Dt);
    });
    if (e != cudaSuccess) {
        note(e);
        return CUBLAS_STATUS_EXECUTION_FAILED;
    }
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSaxpy(cublasHandle_t h, int n, const float *alpha, const float *x,
                           int incx, float *y, int incy) {
    API_LOCK();
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (sticky_error != cudaSuccess) return CUBLAS_STATUS_EXECUTION_FAILED;
    if (n < 0 || incx <= 0 || incy <= 0 || !alpha) return CUBLAS_STATUS_INVALID_VALUE;
    stats.gemms++;
    if (!n) return CUBLAS_STATUS_SUCCESS;
    const float a = *alpha;
    cudaError_t e = enqueue(h->st, [=] {
        if (sticky_error != cudaSuccess) return;
        if (!operand_ok("x", x, 1, n, incx, 0, 1, "cublasSaxpy") ||
            !operand_ok("y", y, 1, n, incy, 0, 1, "cublasSaxpy"))
            return;
        open_guard og;
        og.add(find_alloc(x));
        og.add(find_alloc(y));
        for (int i = 0; i < n; i++)
            y[(size_t)i * incy] = gemm_model == GEMM_DOUBLE
                ? (float)((double)a * x[(size_t)i * incx] + y[(size_t)i * incy])
                : std::fma(a, x[(size_t)i * incx], y[(size_t)i * incy]);
        stats.gemm_flops += 2.0 * n;
    });
    if (e != cudaSuccess) {
        note(e);
        return CUBLAS_STATUS_EXECUTION_FAILED;
    }
    return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"

/* ---- warp matrix operations (WMMA; emu/mma.h) --------------------------------------
 * Run by the last lane of the warp to arrive, with every lane's call. The fragments'
 * element mapping is the schedule's (mma.h), the arithmetic the tensor-core block FMA
 * of the cuBLAS model above (chain_block), one block of k products per element. */

namespace {

int wmma_rows(const emu::wmma_frag &f) { return f.use == emu::WMMA_B ? f.k : f.m; }
int wmma_cols(const emu::wmma_frag &f) { return f.use == emu::WMMA_A ? f.k : f.n; }
int wmma_esize(const emu::wmma_frag &f) { return f.type == emu::WMMA_BF16 ? 2 : 4; }

/* The whole matrix of fragment `slot` of the warp's calls into m [rows][cols] as floats:
 * tf32 operands as the hardware reads an fp32 register (the 13 low mantissa bits
 * ignored), bf16 exactly. */
void wmma_gather(emu::wmma_call *const *lanes, int slot, float *m) {
    const emu::wmma_frag &f = lanes[0]->f[slot];
    const int rows = wmma_rows(f), cols = wmma_cols(f), ne = rows * cols / 32;
    for (int l = 0; l < 32; l++) {
        const char *x = (const char *)lanes[l]->f[slot].x;
        for (int i = 0; i < ne; i++) {
            const int idx = !sched_reversed ? l * ne + i : i * 32 + l;
            float v;
            if (f.type == emu::WMMA_BF16) {
                uint16_t h;
                memcpy(&h, x + 2 * i, 2);
                const uint32_t u = (uint32_t)h << 16;
                memcpy(&v, &u, 4);
            } else {
                memcpy(&v, x + 4 * i, 4);
                if (f.type == emu::WMMA_TF32 && std::isfinite(v)) {
                    uint32_t u;
                    memcpy(&u, &v, 4);
                    u &= ~0x1fffu;
                    memcpy(&v, &u, 4);
                }
            }
            m[idx] = v;
        }
    }
}

/* D [16][16] = A [16][K] · B [K][16] + C as chain_block sums one block of K products for
 * each element: the same operations in the same order, row by row across the 16
 * columns (so that it vectorises), so that a WMMA product and cuBLAS's FAST_TF32 /
 * FAST_16BF model of the same operands agree bit for bit (emu/test_wmma.cu). */
void tc_mma_16x16(float *__restrict__ D, const float *__restrict__ A, const float *__restrict__ B,
                  const float *__restrict__ C, int K) {
    enum { N = 16 };
    for (int r = 0; r < 16; r++) {
        double mx[N], sc[N], isc[N], s[N];
        for (int c = 0; c < N; c++) mx[c] = std::fabs((double)C[r * N + c]);
        for (int p = 0; p < K; p++) {
            const double a = A[r * K + p];
            for (int c = 0; c < N; c++) {
                const double t = std::fabs((double)B[p * N + c] * a);
                mx[c] = mx[c] < t ? t : mx[c];
            }
        }
        for (int c = 0; c < N; c++) {
            uint64_t u;
            memcpy(&u, &mx[c], 8);
            int64_t e = (int64_t)(u >> 52) - 1023;
            e = e < -126 ? -126 : e;
            uint64_t us = (uint64_t)(1023 + 23 + TC_EXTRA - e) << 52;
            uint64_t ui = (uint64_t)(1023 - 23 - TC_EXTRA + e) << 52;
            memcpy(&sc[c], &us, 8);
            memcpy(&isc[c], &ui, 8);
        }
        for (int c = 0; c < N; c++) s[c] = std::trunc((double)C[r * N + c] * sc[c]);
        for (int p = 0; p < K; p++) {
            const double a = A[r * K + p];
            for (int c = 0; c < N; c++) s[c] += std::trunc((double)B[p * N + c] * a * sc[c]);
        }
        for (int c = 0; c < N; c++) D[r * N + c] = rz_float(s[c] * isc[c]);
    }
}

bool wmma_same_frag(const emu::wmma_frag &a, const emu::wmma_frag &b) {
    return a.use == b.use && a.m == b.m && a.n == b.n && a.k == b.k && a.type == b.type &&
           a.layout == b.layout;
}

void wmma_run(const uint64_t *vals) {
    emu::wmma_call *lanes[32];
    for (int l = 0; l < 32; l++) lanes[l] = (emu::wmma_call *)(uintptr_t)vals[l];
    const emu::wmma_call &c0 = *lanes[0];
    static const char *const opname[] = {"load_matrix_sync", "store_matrix_sync", "mma_sync"};
    char msg[320];
    const int nf = c0.op == emu::WMMA_MMA ? 4 : 1;
    for (int l = 1; l < 32; l++) {
        const emu::wmma_call &c = *lanes[l];
        bool same = c.op == c0.op && c.ptr == c0.ptr && c.ldm == c0.ldm && c.mem_layout == c0.mem_layout;
        for (int j = 0; j < nf && same; j++) same = wmma_same_frag(c.f[j], c0.f[j]);
        if (!same) {
            snprintf(msg, sizeof msg, "wmma::%s: lane %d's arguments differ from lane 0's (pointer %p "
                     "vs %p, ldm %u vs %u): the warp matrix functions need the same arguments in all "
                     "32 lanes", opname[c0.op > 2 ? 2 : c0.op], l, c.ptr, c0.ptr, c.ldm, c0.ldm);
            block_error(cudaErrorIllegalAddress, msg);
        }
    }
    stats.wmma_ops++;
    if (c0.op == emu::WMMA_LOAD || c0.op == emu::WMMA_STORE) {
        const emu::wmma_frag &f = c0.f[0];
        const int cols = wmma_cols(f), es = wmma_esize(f), ne = wmma_rows(f) * cols / 32;
        if ((uintptr_t)c0.ptr % 32 || (c0.ldm * es) % 16 || c0.ldm == 0) {
            snprintf(msg, sizeof msg, "wmma::%s at %p with ldm %u: the pointer must be 256-bit "
                     "aligned and ldm a multiple of %d elements (16 bytes)", opname[c0.op], c0.ptr,
                     c0.ldm, 16 / es);
            block_error(cudaErrorIllegalAddress, msg);
        }
        char *mem = (char *)c0.ptr;
        const int cshift = cols == 16 ? 4 : 3;   /* cols is 8 or 16 */
        const size_t rs = c0.mem_layout == emu::WMMA_ROW ? c0.ldm : 1, cs = c0.mem_layout == emu::WMMA_ROW ? 1 : c0.ldm;
        for (int l = 0; l < 32; l++) {
            char *x = (char *)lanes[l]->f[0].x;
            for (int i = 0; i < ne; i++) {
                const int idx = !sched_reversed ? l * ne + i : i * 32 + l;
                const size_t at = (size_t)(idx >> cshift) * rs + (size_t)(idx & (cols - 1)) * cs;
                if (c0.op == emu::WMMA_LOAD) memcpy(x + (size_t)i * es, mem + at * es, es);
                else memcpy(mem + at * es, x + (size_t)i * es, es);
            }
        }
        return;
    }
    /* mma_sync: d = a·b + c, every element one block FMA of k products */
    if (c0.mem_layout) block_error(cudaErrorIllegalAddress, "wmma::mma_sync with satf: not emulated");
    const int K = c0.f[1].k;
    if (c0.f[1].m != 16 || c0.f[1].n != 16 || K > 16)
        block_error(cudaErrorIllegalAddress, "wmma::mma_sync: a shape the emulator does not know");
    float A[16 * 16], B[16 * 16], C[16 * 16], D[16 * 16];
    wmma_gather(lanes, 1, A);   /* [16][K] */
    wmma_gather(lanes, 2, B);   /* [K][16] */
    wmma_gather(lanes, 3, C);   /* [16][16] */
    tc_mma_16x16(D, A, B, C, K);
    for (int l = 0; l < 32; l++) {   /* written after reading: d may be c */
        char *x = (char *)lanes[l]->f[0].x;
        for (int i = 0; i < 8; i++) memcpy(x + 4 * i, &D[!sched_reversed ? l * 8 + i : i * 32 + l], 4);
    }
}

}  // namespace
