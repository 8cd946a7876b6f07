/* emu/mma.h — CUDA's warp matrix functions (nvcuda::wmma) for the CPU emulator
 * (README.md, "Warp matrix operations"), the shapes dath's kernels use:
 *   tf32  fragment<matrix_a, 16, 16, 8, precision::tf32, L>, matrix_b likewise,
 *         fragment<accumulator, 16, 16, 8, float>       (sm_80+)
 *   bf16  fragment<matrix_a, 16, 16, 16, __nv_bfloat16, L>, matrix_b likewise,
 *         fragment<accumulator, 16, 16, 16, float>      (sm_80+)
 * with the CUDA Programming Guide's semantics:
 *   - a fragment holds num_elements elements a lane in x[]; which matrix element a lane's
 *     x[i] is is unspecified. The emulator uses one mapping in schedule A (lane l holds
 *     row-major elements l·ne .. l·ne + ne − 1) and another in schedule B (element e in
 *     lane e mod 32), so a kernel that relies on a mapping gives schedule-dependent
 *     results, while element-wise work on every x[i] (scaling, __float_to_tf32) is fine;
 *   - load_matrix_sync / store_matrix_sync / mma_sync are warp-wide: all 32 lanes of the
 *     warp call them with the same arguments (checked); mptr is 256-bit aligned and ldm a
 *     multiple of 16 bytes in elements (checked); memory may be shared or global;
 *   - fill_fragment sets every element of the calling lane's fragment (not a collective);
 *   - mma_sync(d, a, b, c): d = a·b + c with the tensor cores' arithmetic as
 *     emu/emu.cpp models cuBLAS's (one block FMA of the k exact products and c per
 *     element: 8 for tf32, 16 for bf16, as sm_90); tf32 operands are read as the hardware
 *     reads an fp32 register: its 10 high mantissa bits (truncation), so a kernel that
 *     converts with __float_to_tf32 (round to nearest, ties away: cvt.rna.tf32.f32) first
 *     gets that rounding, and one that does not gets truncation; satf is not emulated.
 * Any other shape or type fails to compile here. */
#ifndef DATH_EMU_MMA_H
#define DATH_EMU_MMA_H

#include "cuda_bf16.h"
#include "cuda_runtime.h"

#ifdef __cplusplus
#include <type_traits>

namespace nvcuda {
namespace wmma {

struct row_major {};
struct col_major {};
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
namespace precision {
struct tf32 {};
}
enum layout_t { mem_row_major, mem_col_major };

/* Round to nearest, ties away from zero, to tf32's 10 mantissa bits (cvt.rna.tf32.f32),
 * kept in a float whose 13 low mantissa bits are 0; infinities and NaN unchanged. */
static inline float __float_to_tf32(float in) {
    unsigned int u;
    memcpy(&u, &in, 4);
    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & ~0x1fffu;
    float r;
    memcpy(&r, &u, 4);
    return r;
}

namespace detail {
template <class T> struct elem;
template <> struct elem<precision::tf32> { typedef float storage; enum { code = ::emu::WMMA_TF32 }; };
template <> struct elem<float> { typedef float storage; enum { code = ::emu::WMMA_F32 }; };
template <> struct elem<__nv_bfloat16> { typedef __nv_bfloat16 storage; enum { code = ::emu::WMMA_BF16 }; };
template <class U> struct use;
template <> struct use<matrix_a> { enum { code = ::emu::WMMA_A }; };
template <> struct use<matrix_b> { enum { code = ::emu::WMMA_B }; };
template <> struct use<accumulator> { enum { code = ::emu::WMMA_ACC }; };
template <class L> struct lay { enum { code = ::emu::WMMA_NOLAYOUT }; };
template <> struct lay<row_major> { enum { code = ::emu::WMMA_ROW }; };
template <> struct lay<col_major> { enum { code = ::emu::WMMA_COL }; };
}  // namespace detail

template <class Use, int M, int N, int K, class T, class Layout = void> class fragment {
    static constexpr bool tf32 = M == 16 && N == 16 && K == 8 &&
        ((std::is_same<T, precision::tf32>::value && !std::is_same<Use, accumulator>::value) ||
         (std::is_same<T, float>::value && std::is_same<Use, accumulator>::value));
    static constexpr bool bf16 = M == 16 && N == 16 && K == 16 &&
        ((std::is_same<T, __nv_bfloat16>::value && !std::is_same<Use, accumulator>::value) ||
         (std::is_same<T, float>::value && std::is_same<Use, accumulator>::value));
    static_assert(tf32 || bf16, "emu/mma.h emulates the tf32 m16n16k8 and bf16 m16n16k16 "
                                "fragments only");
    static_assert(std::is_same<Use, accumulator>::value == std::is_same<Layout, void>::value,
                  "matrix_a/matrix_b fragments take row_major or col_major, accumulators none");

  public:
    typedef typename detail::elem<T>::storage storage_element_type;
    typedef storage_element_type element_type;
    enum {
        rows = std::is_same<Use, matrix_b>::value ? K : M,
        cols = std::is_same<Use, matrix_a>::value ? K : N,
        num_elements = rows * cols / 32
    };
    storage_element_type x[num_elements];

    ::emu::wmma_frag desc() const {
        ::emu::wmma_frag f;
        f.use = detail::use<Use>::code;
        f.m = M;
        f.n = N;
        f.k = K;
        f.type = detail::elem<T>::code;
        f.layout = detail::lay<Layout>::code;
        f.x = (void *)x;
        return f;
    }
};

template <class Use, int M, int N, int K, class T, class L, class V>
static inline void fill_fragment(fragment<Use, M, N, K, T, L> &f, const V &v) {
    typedef typename fragment<Use, M, N, K, T, L>::storage_element_type S;
    S s;
    if constexpr (std::is_same<S, __nv_bfloat16>::value) {
        if constexpr (std::is_same<V, __nv_bfloat16>::value) s = v;
        else s = __float2bfloat16((float)v);
    } else {
        s = (S)v;
    }
    for (int i = 0; i < (int)fragment<Use, M, N, K, T, L>::num_elements; i++) f.x[i] = s;
}

/* matrix_a / matrix_b: the layout is the fragment's */
template <class Use, int M, int N, int K, class T, class L>
static inline void load_matrix_sync(fragment<Use, M, N, K, T, L> &f,
                                    const typename fragment<Use, M, N, K, T, L>::storage_element_type *p,
                                    unsigned ldm) {
    static_assert(!std::is_same<Use, accumulator>::value, "an accumulator load takes a layout_t");
    ::emu::wmma_call c;
    memset(&c, 0, sizeof c);
    c.op = ::emu::WMMA_LOAD;
    c.f[0] = f.desc();
    c.ptr = p;
    c.ldm = ldm;
    c.mem_layout = c.f[0].layout;
    ::emu::wmma(&c);
}

template <int M, int N, int K>
static inline void load_matrix_sync(fragment<accumulator, M, N, K, float> &f, const float *p,
                                    unsigned ldm, layout_t layout) {
    ::emu::wmma_call c;
    memset(&c, 0, sizeof c);
    c.op = ::emu::WMMA_LOAD;
    c.f[0] = f.desc();
    c.ptr = p;
    c.ldm = ldm;
    c.mem_layout = layout == mem_row_major ? ::emu::WMMA_ROW : ::emu::WMMA_COL;
    ::emu::wmma(&c);
}

template <int M, int N, int K>
static inline void store_matrix_sync(float *p, const fragment<accumulator, M, N, K, float> &f,
                                     unsigned ldm, layout_t layout) {
    ::emu::wmma_call c;
    memset(&c, 0, sizeof c);
    c.op = ::emu::WMMA_STORE;
    c.f[0] = f.desc();
    c.ptr = p;
    c.ldm = ldm;
    c.mem_layout = layout == mem_row_major ? ::emu::WMMA_ROW : ::emu::WMMA_COL;
    ::emu::wmma(&c);
}

template <int M, int N, int K, class TA, class LA, class TB, class LB>
static inline void mma_sync(fragment<accumulator, M, N, K, float> &d,
                            const fragment<matrix_a, M, N, K, TA, LA> &a,
                            const fragment<matrix_b, M, N, K, TB, LB> &b,
                            const fragment<accumulator, M, N, K, float> &c, bool satf = false) {
    static_assert(std::is_same<TA, TB>::value, "mma_sync: a and b of one element type");
    ::emu::wmma_call call;
    memset(&call, 0, sizeof call);
    call.op = ::emu::WMMA_MMA;
    call.f[0] = d.desc();
    call.f[1] = a.desc();
    call.f[2] = b.desc();
    call.f[3] = c.desc();
    call.mem_layout = satf ? 1 : 0;   /* emu.cpp refuses satf */
    ::emu::wmma(&call);
}

}  // namespace wmma
}  // namespace nvcuda
#endif

#endif
