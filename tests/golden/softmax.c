/*
 * quiltc kernel softmax (target c)
 * size R in [1, 1048576]
 * size C in [1, 65536]
 *
 * schedule:
 *     sch.compute_at('row_sum', 'i_3')
 *     sch.compute_at('exps', 'i_3')
 *     sch.compute_at('row_max', 'i_3')
 *     sch.decompose('row_max', 'j')
 *     sch.decompose('row_sum', 'j_2')
 *     sch.vectorize('exps_j_1')
 *     sch.vectorize('j_3')
 *     sch.share_storage('exps', 'softmax')
 *     sch.parallel('i_3')
 */

#define _POSIX_C_SOURCE 200112L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void* quiltc_alloc(size_t bytes)
{
    void* memory = NULL;
    if (posix_memalign(&memory, 64, bytes > 0 ? bytes : 64) != 0) {
        fprintf(stderr, "quiltc: out of memory allocating %zu bytes\n", bytes);
        abort();
    }
    return memory;
}

static inline float quiltc_expf_nonpositive(float x)
{
    x = x < -104.0f ? -104.0f : x;
    float shifted = x * 1.44269504088896341f + 12583103.0f;
    float n = shifted - 12583103.0f;
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float r2 = r * r;
    uint32_t biased;
    memcpy(&biased, &shifted, sizeof biased);
    float low = 1.66665226e-1f * r + 4.99999940e-1f;
    float high = 8.36853217e-3f * r + 4.16682921e-2f;
    float p = (1.38182787e-3f * r2 + high) * r2 + low;
    float y = (p * r2 + r) + 1.0f;
    uint32_t scale_bits = biased << 23;
    float scale;
    memcpy(&scale, &scale_bits, sizeof scale);
    return y * scale * 0x1p-64f;
}

#if defined(__SANITIZE_ADDRESS__)
enum { QUILTC_KEPT_LIMIT = 0 };
#else
enum { QUILTC_KEPT_LIMIT = 1 << 28 };
#endif

static void* quiltc_take(void** slot, size_t bytes)
{
    size_t* block = __atomic_exchange_n((size_t**)slot, NULL, __ATOMIC_ACQUIRE);
    if (block == NULL || block[0] < bytes) {
        free(block);
        block = quiltc_alloc(64 + bytes);
        block[0] = bytes;
    }
    return (char*)block + 64;
}

static void quiltc_give(void** slot, void* memory)
{
    size_t* block = (size_t*)((char*)memory - 64);
    if (block[0] > QUILTC_KEPT_LIMIT) {
        free(block);
        return;
    }
    free(__atomic_exchange_n((size_t**)slot, block, __ATOMIC_RELEASE));
}

void softmax(float* restrict X, float* restrict softmax, int64_t R, int64_t C)
{
    static void* quiltc_kept_row_max = NULL;
    float* restrict row_max = quiltc_take(&quiltc_kept_row_max, sizeof(float) * R);
    static void* quiltc_kept_row_sum = NULL;
    float* restrict row_sum = quiltc_take(&quiltc_kept_row_sum, sizeof(float) * R);
    #pragma omp parallel for
    for (int64_t i_3 = 0; i_3 < R; ++i_3) {
        row_max[i_3] = -INFINITY;
        for (int64_t j = 0; j < C; ++j) {
            {
                float quiltc_value = X[j + (C * i_3)];
                row_max[i_3] = quiltc_value > row_max[i_3] ? quiltc_value : row_max[i_3];
            }
        }
        #pragma omp simd
        for (int64_t exps_j_1 = 0; exps_j_1 < C; ++exps_j_1) {
            softmax[exps_j_1 + (C * i_3)] = quiltc_expf_nonpositive(X[exps_j_1 + (C * i_3)] - row_max[i_3]);
        }
        row_sum[i_3] = 0.0f;
        for (int64_t j_2 = 0; j_2 < C; ++j_2) {
            row_sum[i_3] += softmax[j_2 + (C * i_3)];
        }
        #pragma omp simd
        for (int64_t j_3 = 0; j_3 < C; ++j_3) {
            softmax[j_3 + (C * i_3)] = softmax[j_3 + (C * i_3)] / row_sum[i_3];
        }
    }
    quiltc_give(&quiltc_kept_row_sum, row_sum);
    quiltc_give(&quiltc_kept_row_max, row_max);
}
