// One time step's elementwise work of the tanh RNN and the GRU, forward and backward,
// fused into a single pass over (batch, hidden). The matrix products stay in PyTorch (MKL); the
// autograd Functions in recurrences.py call these between them. Plain C++ without PyTorch headers.
// gcc vectorises the loops with glibc's vector exp (libmvec), declared below; tanh is written
// through exp, which vectorises where PyTorch's tanh kernel is several times slower here. IEEE
// arithmetic throughout (no -ffast-math, whose finite-math assumption turned tanh of a large
// input into NaN): tanh and sigmoid saturate, NaN propagates.
//
// Layouts (row-major, contiguous): a step's gate blocks are (batch, gates * hidden) in torch.nn's
// order (GRU: r, z, n); hidden-sized tensors are (batch, hidden).
#include <cstdint>

extern "C" {
#pragma omp declare simd notinbranch
float expf(float);
#pragma omp declare simd notinbranch
double exp(double);
}

namespace {

inline float exp_of(float x) { return expf(x); }
inline double exp_of(double x) { return exp(x); }

// exp's argument is kept within [-limit, limit] (NaN passes through): glibc's vector exp leaves its
// fast path, ten times slower, for arguments whose result is subnormal or overflows, which
// saturated gates of a trained model give at every step. Both functions are saturated well
// before the limits: sigmoid(-80) = 1.8e-35, and tanh(20) is 1 to rounding in float and double.
// The limits are read at run time (`Limits`): as constants, gcc computed exp of the unclamped
// argument and blended the clamped lanes' constant results in afterwards, slow path included.
volatile double limit_scale = 1.0;

template <typename T> struct Limits {
  T sigmoid = T(80 * limit_scale), tanh = T(40 * limit_scale);
};

template <typename T> inline T clamped(T x, T limit) {
  return x < -limit ? -limit : (x > limit ? limit : x);
}
template <typename T> inline T sigmoid(T x, const Limits<T>& lim) {
  return T(1) / (T(1) + exp_of(clamped(-x, lim.sigmoid)));
}
// tanh(x) = 1 - 2 / (1 + e^{2x}): exact to rounding.
template <typename T> inline T tanh_exp(T x, const Limits<T>& lim) {
  return T(1) - T(2) / (T(1) + exp_of(clamped(T(2) * x, lim.tanh)));
}

// The forward kernels receive the step's recurrent product H W_hh in the output buffer and add
// the input projection themselves; the backward kernels receive the next step's product g W_hh^T
// (zeros at the last step) and add it to the gradient arriving from the loss. Every matrix
// product is then a plain one, with no copy of an addend into its output first.

// H' = tanh(A + H W), with H W in h on entry.
template <typename T> void tanh_forward(const T* __restrict__ a, T* __restrict__ h, int64_t size) {
  const Limits<T> lim;
  for (int64_t k = 0; k < size; ++k) h[k] = tanh_exp(h[k] + a[k], lim);
}

// dA = (dL/dH' + the next step's dA W^T) * (1 - H'^2).
template <typename T>
void tanh_backward(const T* __restrict__ given, const T* __restrict__ next,
                   const T* __restrict__ h, T* __restrict__ da, int64_t size) {
  for (int64_t k = 0; k < size; ++k) da[k] = (given[k] + next[k]) * (T(1) - h[k] * h[k]);
}

// With hh = H W_hh on entry: r, z = sigmoid(P_rz + hh_rz + b_rz); n = tanh(P_n + r * (hh_n + b_n));
// H' = n + z (H - n). Saves r, z (batch, 2 hidden), n and hh_n + b_n (batch, hidden).
template <typename T>
void gru_forward(const T* __restrict__ p, const T* __restrict__ hh, const T* __restrict__ bias,
                 const T* __restrict__ prev, T* __restrict__ rz, T* __restrict__ n,
                 T* __restrict__ hn, T* __restrict__ h, int64_t batch, int64_t hidden) {
  const Limits<T> lim;
  for (int64_t b = 0; b < batch; ++b) {
    const T* pb = p + b * 3 * hidden;
    const T* hhb = hh + b * 3 * hidden;
    const T* prevb = prev + b * hidden;
    T* rzb = rz + b * 2 * hidden;
    T* nb = n + b * hidden;
    T* hnb = hn + b * hidden;
    T* hb = h + b * hidden;
    for (int64_t j = 0; j < hidden; ++j) {
      T r = sigmoid(pb[j] + (hhb[j] + bias[j]), lim);
      T z = sigmoid(pb[hidden + j] + (hhb[hidden + j] + bias[hidden + j]), lim);
      T hn_j = hhb[2 * hidden + j] + bias[2 * hidden + j];
      T n_j = tanh_exp(pb[2 * hidden + j] + r * hn_j, lim);
      rzb[j] = r;
      rzb[hidden + j] = z;
      nb[j] = n_j;
      hnb[j] = hn_j;
      hb[j] = n_j + z * (prevb[j] - n_j);
    }
  }
}

// dH' = `carry` (dL/dH' plus the part through z from the step after) + `next` (the step after's
// g_hh W_hh^T). Writes the pre-activations' gradients on the hidden side, g_hh = (dA_r, dA_z,
// dA_n * r), and on the input side, g_p = (dA_r, dA_z, dA_n), and replaces `carry` by
// dH' z + `given_prev` (dL/dH at this step's input state; null at the first step).
template <typename T>
void gru_backward(const T* __restrict__ next, T* __restrict__ carry,
                  const T* __restrict__ given_prev, const T* __restrict__ rz,
                  const T* __restrict__ n, const T* __restrict__ hn, const T* __restrict__ prev,
                  T* __restrict__ g_hh, T* __restrict__ g_p, int64_t batch, int64_t hidden) {
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t o1 = b * hidden, o2 = b * 2 * hidden, o3 = b * 3 * hidden;
    for (int64_t j = 0; j < hidden; ++j) {
      T d = carry[o1 + j] + next[o1 + j];
      T r = rz[o2 + j], z = rz[o2 + hidden + j], n_j = n[o1 + j];
      T a_n = d * (T(1) - z) * (T(1) - n_j * n_j);
      T a_r = a_n * hn[o1 + j] * r * (T(1) - r);
      T a_z = d * (prev[o1 + j] - n_j) * z * (T(1) - z);
      g_hh[o3 + j] = a_r;
      g_hh[o3 + hidden + j] = a_z;
      g_hh[o3 + 2 * hidden + j] = a_n * r;
      g_p[o3 + j] = a_r;
      g_p[o3 + hidden + j] = a_z;
      g_p[o3 + 2 * hidden + j] = a_n;
      carry[o1 + j] = d * z;
    }
  }
  if (given_prev) {  // a loop of its own: a conditional load would stop the one above vectorising
    for (int64_t k = 0; k < batch * hidden; ++k) carry[k] += given_prev[k];
  }
}

}  // namespace

// The C entry points, one per function and dtype (suffix f32 / f64), called through ctypes.
#define RNNLM_EXPORT(T, S)                                                                      \
  extern "C" void rnnlm_tanh_forward_##S(const T* a, T* h, int64_t size) {                     \
    tanh_forward(a, h, size);                                                                   \
  }                                                                                             \
  extern "C" void rnnlm_tanh_backward_##S(const T* given, const T* next, const T* h, T* da,    \
                                          int64_t size) {                                       \
    tanh_backward(given, next, h, da, size);                                                    \
  }                                                                                             \
  extern "C" void rnnlm_gru_forward_##S(const T* p, const T* hh, const T* bias, const T* prev,  \
                                        T* rz, T* n, T* hn, T* h, int64_t batch,                \
                                        int64_t hidden) {                                       \
    gru_forward(p, hh, bias, prev, rz, n, hn, h, batch, hidden);                                \
  }                                                                                             \
  extern "C" void rnnlm_gru_backward_##S(const T* next, T* carry, const T* given_prev,         \
                                         const T* rz, const T* n, const T* hn, const T* prev,  \
                                         T* g_hh, T* g_p, int64_t batch, int64_t hidden) {      \
    gru_backward(next, carry, given_prev, rz, n, hn, prev, g_hh, g_p, batch, hidden);           \
  }

RNNLM_EXPORT(float, f32)
RNNLM_EXPORT(double, f64)
