// On-device greedy sampling: out[0] = the index of the largest of x (n,), the lowest index on ties,
// NaN never chosen, 0 when nothing beats -inf: exactly runtime's `sampler::argmax`.
//
// Launch: grid 1, block 1024 (a power of two, at most 1024). Thread i scans i, i + 1024, ... in
// increasing order (strict >, so it keeps its first maximum), then the block reduces (value,
// index) pairs preferring the larger value and, on equal values, the lower index. Thread 0 writes
// out[0].
#include "common.cuh"

extern "C" __global__ void argmax(const float* __restrict__ x, int n, uint32_t* __restrict__ out) {
    __shared__ float sv[1024];
    __shared__ int si[1024];
    float best = -INFINITY;
    int bi = 0x7fffffff;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        if (x[i] > best) {
            best = x[i];
            bi = i;
        }
    }
    sv[threadIdx.x] = best;
    si[threadIdx.x] = bi;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) {
            const float ov = sv[threadIdx.x + s];
            const int oi = si[threadIdx.x + s];
            if (ov > sv[threadIdx.x] || (ov == sv[threadIdx.x] && oi < si[threadIdx.x])) {
                sv[threadIdx.x] = ov;
                si[threadIdx.x] = oi;
            }
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) out[0] = si[0] == 0x7fffffff ? 0u : (uint32_t)si[0];
}
