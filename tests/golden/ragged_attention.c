/*
 * quiltc kernel ragged_attention (target c)
 * size B in [0, 4096]
 *
 * schedule:
 *     sch.reorder('h_8', 'i_6')
 *     sch.compute_at('context', 'h_8')
 *     sch.compute_at('values', 'h_8')
 *     sch.compute_at('row_sum', 'h_8')
 *     sch.compute_at('exps', 'h_8')
 *     sch.compute_at('row_max', 'h_8')
 *     sch.compute_at('masked', 'h_8')
 *     sch.compute_at('scores', 'h_8')
 *     sch.compute_at('keys_t', 'h_8')
 *     sch.reorder('keys_t_j', 'keys_t_d')
 *     keys_t_j_o, keys_t_j_i, keys_t_j_r = sch.split_op('keys_t_j', 16)
 *     sch.reorder('keys_t_d', 'keys_t_j_i')
 *     sch.vectorize('keys_t_j_i')
 *     sch.pad_storage('keys_t', 3, 32)
 *     sch.pad_storage('scores', 3, 32)
 *     scores_j_1 = sch.pad_loop('scores_j_1', 32)
 *     scores_i_o, scores_i_i, scores_i_r = sch.split_op('scores_i', 6)
 *     scores_j_1_o, scores_j_1_i = sch.split('scores_j_1', 32)
 *     sch.reorder('scores_j_1_o', 'd_1', 'scores_i_i', 'scores_j_1_i')
 *     scores_local = sch.cache_write('scores', 'local', at='scores_j_1_o')
 *     sch.decompose('scores_local', 'd_1')
 *     sch.unroll('scores_i_i')
 *     scores_j_1_i_o, scores_j_1_i_i = sch.split('scores_j_1_i', 16)
 *     sch.unroll('scores_j_1_i_o')
 *     sch.vectorize('scores_j_1_i_i')
 *     scores_j_1_r_o, scores_j_1_r_i = sch.split('scores_j_1_r', 32)
 *     sch.reorder('scores_j_1_r_o', 'd_1_r', 'scores_j_1_r_i')
 *     scores_local_1 = sch.cache_write('scores', 'local', at='scores_j_1_r_o')
 *     sch.decompose('scores_local_1', 'd_1_r')
 *     scores_j_1_r_i_o, scores_j_1_r_i_i = sch.split('scores_j_1_r_i', 16)
 *     sch.unroll('scores_j_1_r_i_o')
 *     sch.vectorize('scores_j_1_r_i_i')
 *     sch.reorder('j_6', 'context_e_1')
 *     context_i_4_o, context_i_4_i, context_i_4_r = sch.split_op('context_i_4', 6)
 *     sch.reorder('j_6', 'context_i_4_i')
 *     context_local = sch.cache_write('context', 'local', at='context_i_4_o')
 *     sch.decompose('context_local', 'j_6')
 *     sch.unroll('context_i_4_i')
 *     context_e_1_o, context_e_1_i = sch.split('context_e_1', 16)
 *     sch.unroll('context_e_1_o')
 *     sch.vectorize('context_e_1_i')
 *     context_local_1 = sch.cache_write('context', 'local', at='context_i_4_r')
 *     sch.decompose('context_local_1', 'j_6_r')
 *     context_e_1_r_o, context_e_1_r_i = sch.split('context_e_1_r', 16)
 *     sch.unroll('context_e_1_r_o')
 *     sch.vectorize('context_e_1_r_i')
 *     sch.vectorize('exps_j_4')
 *     sch.vectorize('values_e')
 *     sch.vectorize('masked_j_2')
 *     sch.decompose('row_max', 'j_3')
 *     sch.vectorize('j_3')
 *     sch.decompose('row_sum', 'j_7')
 *     sch.vectorize('j_7')
 *     sch.vectorize('e_2')
 *     b_8_h_8 = sch.fuse('b_8', 'h_8')
 *     sch.parallel('b_8_h_8')
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

static inline float quiltc_select_float32(int condition, float then, float otherwise) { return condition ? then : otherwise; }

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

void ragged_attention(
    float* restrict QKV,
    float* restrict attention,
    int64_t B,
    const int32_t* restrict L_len)
{
    int64_t* restrict L_off1 = quiltc_alloc(sizeof(int64_t) * (B + 1));
    L_off1[0] = 0;
    for (int64_t quiltc_row = 0; quiltc_row < B; ++quiltc_row) {
        L_off1[quiltc_row + 1] = L_off1[quiltc_row] + (int64_t)L_len[quiltc_row];
    }
    int64_t* restrict L_off1_pad32 = quiltc_alloc(sizeof(int64_t) * (B + 1));
    L_off1_pad32[0] = 0;
    for (int64_t quiltc_row = 0; quiltc_row < B; ++quiltc_row) {
        L_off1_pad32[quiltc_row + 1] = L_off1_pad32[quiltc_row] + (((int64_t)L_len[quiltc_row] + 31) / 32 * 32);
    }
    int64_t* restrict L_off2 = quiltc_alloc(sizeof(int64_t) * (B + 1));
    L_off2[0] = 0;
    for (int64_t quiltc_row = 0; quiltc_row < B; ++quiltc_row) {
        L_off2[quiltc_row + 1] = L_off2[quiltc_row] + (int64_t)L_len[quiltc_row] * (int64_t)L_len[quiltc_row];
    }
    int64_t* restrict L_off2_pad32 = quiltc_alloc(sizeof(int64_t) * (B + 1));
    L_off2_pad32[0] = 0;
    for (int64_t quiltc_row = 0; quiltc_row < B; ++quiltc_row) {
        L_off2_pad32[quiltc_row + 1] = L_off2_pad32[quiltc_row] + (((int64_t)L_len[quiltc_row] + 31) / 32 * 32) * (((int64_t)L_len[quiltc_row] + 31) / 32 * 32);
    }
    static void* quiltc_kept_keys_t = NULL;
    float* restrict keys_t = quiltc_take(&quiltc_kept_keys_t, sizeof(float) * 64 * L_off1_pad32[B]);
    static void* quiltc_kept_scores = NULL;
    float* restrict scores = quiltc_take(&quiltc_kept_scores, sizeof(float) * 4 * L_off2_pad32[B]);
    static void* quiltc_kept_masked = NULL;
    float* restrict masked = quiltc_take(&quiltc_kept_masked, sizeof(float) * 4 * L_off2[B]);
    static void* quiltc_kept_row_max = NULL;
    float* restrict row_max = quiltc_take(&quiltc_kept_row_max, sizeof(float) * 4 * L_off1[B]);
    static void* quiltc_kept_exps = NULL;
    float* restrict exps = quiltc_take(&quiltc_kept_exps, sizeof(float) * 4 * L_off2[B]);
    static void* quiltc_kept_values = NULL;
    float* restrict values = quiltc_take(&quiltc_kept_values, sizeof(float) * 64 * L_off1[B]);
    static void* quiltc_kept_context = NULL;
    float* restrict context = quiltc_take(&quiltc_kept_context, sizeof(float) * 64 * L_off1[B]);
    static void* quiltc_kept_row_sum = NULL;
    float* restrict row_sum = quiltc_take(&quiltc_kept_row_sum, sizeof(float) * 4 * L_off1[B]);
    #pragma omp parallel for schedule(dynamic)
    for (int64_t b_8_h_8 = 0; b_8_h_8 < 4 * B; ++b_8_h_8) {
        for (int64_t keys_t_j_o = 0; keys_t_j_o < L_len[(b_8_h_8 / 4)] / 16; ++keys_t_j_o) {
            for (int64_t keys_t_d = 0; keys_t_d < 16; ++keys_t_d) {
                const int64_t quiltc_L_len_0 = L_len[(b_8_h_8 / 4)];
                const int64_t quiltc_L_off1_1 = L_off1[(b_8_h_8 / 4)];
                const int64_t quiltc_L_off1_pad32_2 = L_off1_pad32[(b_8_h_8 / 4)];
                #pragma omp simd
                for (int64_t keys_t_j_i = 0; keys_t_j_i < 16; ++keys_t_j_i) {
                    keys_t[keys_t_j_i + (16 * keys_t_j_o) + (64 * quiltc_L_off1_pad32_2) + (keys_t_d * quiltc_L_len_0) + (keys_t_d * ((31 * quiltc_L_len_0) % 32)) + (16 * quiltc_L_len_0 * (b_8_h_8 % 4)) + (16 * (b_8_h_8 % 4) * ((31 * quiltc_L_len_0) % 32))] = QKV[64 + keys_t_d + (16 * (b_8_h_8 % 4)) + (192 * keys_t_j_i) + (192 * quiltc_L_off1_1) + (3072 * keys_t_j_o)];
                }
            }
        }
        for (int64_t keys_t_j_r = 0; keys_t_j_r < L_len[(b_8_h_8 / 4)] - (16 * (L_len[(b_8_h_8 / 4)] / 16)); ++keys_t_j_r) {
            for (int64_t keys_t_d_r = 0; keys_t_d_r < 16; ++keys_t_d_r) {
                keys_t[keys_t_j_r + (16 * (L_len[(b_8_h_8 / 4)] / 16)) + (64 * L_off1_pad32[(b_8_h_8 / 4)]) + (keys_t_d_r * L_len[(b_8_h_8 / 4)]) + (keys_t_d_r * ((31 * L_len[(b_8_h_8 / 4)]) % 32)) + (16 * L_len[(b_8_h_8 / 4)] * (b_8_h_8 % 4)) + (16 * (b_8_h_8 % 4) * ((31 * L_len[(b_8_h_8 / 4)]) % 32))] = QKV[64 + keys_t_d_r + (16 * (b_8_h_8 % 4)) + (192 * keys_t_j_r) + (192 * L_off1[(b_8_h_8 / 4)]) + (3072 * (L_len[(b_8_h_8 / 4)] / 16))];
            }
        }
        for (int64_t scores_i_o = 0; scores_i_o < L_len[(b_8_h_8 / 4)] / 6; ++scores_i_o) {
            for (int64_t scores_j_1_o = 0; scores_j_1_o < (31 + L_len[(b_8_h_8 / 4)] + ((31 * L_len[(b_8_h_8 / 4)]) % 32)) / 32; ++scores_j_1_o) {
                float scores_local[192];
                for (int64_t scores_i_i_init = 0; scores_i_i_init < 6; ++scores_i_i_init) {
                    for (int64_t scores_j_1_i_init = 0; scores_j_1_i_init < 32; ++scores_j_1_i_init) {
                        scores_local[scores_j_1_i_init + (32 * scores_i_i_init)] = 0.0f;
                    }
                }
                for (int64_t d_1 = 0; d_1 < 16; ++d_1) {
                    #pragma GCC unroll 6
                    for (int64_t scores_i_i = 0; scores_i_i < 6; ++scores_i_i) {
                        #pragma GCC unroll 2
                        for (int64_t scores_j_1_i_o = 0; scores_j_1_i_o < 2; ++scores_j_1_i_o) {
                            const int64_t quiltc_L_len_3 = L_len[(b_8_h_8 / 4)];
                            const int64_t quiltc_L_off1_4 = L_off1[(b_8_h_8 / 4)];
                            const int64_t quiltc_L_off1_pad32_5 = L_off1_pad32[(b_8_h_8 / 4)];
                            #pragma omp simd
                            for (int64_t scores_j_1_i_i = 0; scores_j_1_i_i < 16; ++scores_j_1_i_i) {
                                scores_local[scores_j_1_i_i + (16 * scores_j_1_i_o) + (32 * scores_i_i)] += QKV[d_1 + (16 * (b_8_h_8 % 4)) + (192 * quiltc_L_off1_4) + (192 * scores_i_i) + (1152 * scores_i_o)] * keys_t[scores_j_1_i_i + (16 * scores_j_1_i_o) + (32 * scores_j_1_o) + (64 * quiltc_L_off1_pad32_5) + (d_1 * quiltc_L_len_3) + (d_1 * ((31 * quiltc_L_len_3) % 32)) + (16 * quiltc_L_len_3 * (b_8_h_8 % 4)) + (16 * (b_8_h_8 % 4) * ((31 * quiltc_L_len_3) % 32))];
                            }
                        }
                    }
                }
                for (int64_t scores_local_2 = 0; scores_local_2 < 6; ++scores_local_2) {
                    for (int64_t scores_local_3 = 0; scores_local_3 < 32; ++scores_local_3) {
                        scores[scores_local_3 + (4 * L_off2_pad32[(b_8_h_8 / 4)]) + (32 * scores_j_1_o) + (scores_local_2 * L_len[(b_8_h_8 / 4)]) + (scores_local_2 * ((31 * L_len[(b_8_h_8 / 4)]) % 32)) + ((L_len[(b_8_h_8 / 4)] * L_len[(b_8_h_8 / 4)]) * (b_8_h_8 % 4)) + ((((31 * L_len[(b_8_h_8 / 4)]) % 32) * ((31 * L_len[(b_8_h_8 / 4)]) % 32)) * (b_8_h_8 % 4)) + (6 * scores_i_o * L_len[(b_8_h_8 / 4)]) + (6 * scores_i_o * ((31 * L_len[(b_8_h_8 / 4)]) % 32)) + (2 * L_len[(b_8_h_8 / 4)] * (b_8_h_8 % 4) * ((31 * L_len[(b_8_h_8 / 4)]) % 32))] = scores_local[scores_local_3 + (32 * scores_local_2)];
                    }
                }
            }
        }
        for (int64_t scores_i_r = 0; scores_i_r < L_len[(b_8_h_8 / 4)] - (6 * (L_len[(b_8_h_8 / 4)] / 6)); ++scores_i_r) {
            for (int64_t scores_j_1_r_o = 0; scores_j_1_r_o < (31 + L_len[(b_8_h_8 / 4)] + ((31 * L_len[(b_8_h_8 / 4)]) % 32)) / 32; ++scores_j_1_r_o) {
                float scores_local_1[32];
                for (int64_t scores_j_1_r_i_init = 0; scores_j_1_r_i_init < 32; ++scores_j_1_r_i_init) {
                    scores_local_1[scores_j_1_r_i_init] = 0.0f;
                }
                for (int64_t d_1_r = 0; d_1_r < 16; ++d_1_r) {
                    #pragma GCC unroll 2
                    for (int64_t scores_j_1_r_i_o = 0; scores_j_1_r_i_o < 2; ++scores_j_1_r_i_o) {
                        const int64_t quiltc_L_len_6 = L_len[(b_8_h_8 / 4)];
                        const int64_t quiltc_L_off1_7 = L_off1[(b_8_h_8 / 4)];
                        const int64_t quiltc_L_off1_pad32_8 = L_off1_pad32[(b_8_h_8 / 4)];
                        #pragma omp simd
                        for (int64_t scores_j_1_r_i_i = 0; scores_j_1_r_i_i < 16; ++scores_j_1_r_i_i) {
                            scores_local_1[scores_j_1_r_i_i + (16 * scores_j_1_r_i_o)] += QKV[d_1_r + (16 * (b_8_h_8 % 4)) + (192 * quiltc_L_off1_7) + (192 * scores_i_r) + (1152 * (quiltc_L_len_6 / 6))] * keys_t[scores_j_1_r_i_i + (16 * scores_j_1_r_i_o) + (32 * scores_j_1_r_o) + (64 * quiltc_L_off1_pad32_8) + (d_1_r * quiltc_L_len_6) + (d_1_r * ((31 * quiltc_L_len_6) % 32)) + (16 * quiltc_L_len_6 * (b_8_h_8 % 4)) + (16 * (b_8_h_8 % 4) * ((31 * quiltc_L_len_6) % 32))];
                        }
                    }
                }
                for (int64_t scores_local_1_3 = 0; scores_local_1_3 < 32; ++scores_local_1_3) {
                    scores[scores_local_1_3 + (4 * L_off2_pad32[(b_8_h_8 / 4)]) + (32 * scores_j_1_r_o) + (scores_i_r * L_len[(b_8_h_8 / 4)]) + (scores_i_r * ((31 * L_len[(b_8_h_8 / 4)]) % 32)) + ((L_len[(b_8_h_8 / 4)] * L_len[(b_8_h_8 / 4)]) * (b_8_h_8 % 4)) + ((((31 * L_len[(b_8_h_8 / 4)]) % 32) * ((31 * L_len[(b_8_h_8 / 4)]) % 32)) * (b_8_h_8 % 4)) + (6 * L_len[(b_8_h_8 / 4)] * (L_len[(b_8_h_8 / 4)] / 6)) + (6 * ((31 * L_len[(b_8_h_8 / 4)]) % 32) * (L_len[(b_8_h_8 / 4)] / 6)) + (2 * L_len[(b_8_h_8 / 4)] * (b_8_h_8 % 4) * ((31 * L_len[(b_8_h_8 / 4)]) % 32))] = scores_local_1[scores_local_1_3];
                }
            }
        }
        for (int64_t masked_i_1 = 0; masked_i_1 < L_len[(b_8_h_8 / 4)]; ++masked_i_1) {
            const int64_t quiltc_L_len_9 = L_len[(b_8_h_8 / 4)];
            const int64_t quiltc_L_off2_10 = L_off2[(b_8_h_8 / 4)];
            const int64_t quiltc_L_off2_pad32_11 = L_off2_pad32[(b_8_h_8 / 4)];
            #pragma omp simd
            for (int64_t masked_j_2 = 0; masked_j_2 < quiltc_L_len_9; ++masked_j_2) {
                masked[masked_j_2 + (4 * quiltc_L_off2_10) + (masked_i_1 * quiltc_L_len_9) + ((quiltc_L_len_9 * quiltc_L_len_9) * (b_8_h_8 % 4))] = quiltc_select_float32(masked_j_2 <= masked_i_1, scores[masked_j_2 + (4 * quiltc_L_off2_pad32_11) + (masked_i_1 * quiltc_L_len_9) + (masked_i_1 * ((31 * quiltc_L_len_9) % 32)) + ((quiltc_L_len_9 * quiltc_L_len_9) * (b_8_h_8 % 4)) + ((((31 * quiltc_L_len_9) % 32) * ((31 * quiltc_L_len_9) % 32)) * (b_8_h_8 % 4)) + (2 * quiltc_L_len_9 * (b_8_h_8 % 4) * ((31 * quiltc_L_len_9) % 32))], -INFINITY);
            }
        }
        for (int64_t row_max_i_2 = 0; row_max_i_2 < L_len[(b_8_h_8 / 4)]; ++row_max_i_2) {
            row_max[row_max_i_2 + (4 * L_off1[(b_8_h_8 / 4)]) + (L_len[(b_8_h_8 / 4)] * (b_8_h_8 % 4))] = -INFINITY;
            const int64_t quiltc_L_len_12 = L_len[(b_8_h_8 / 4)];
            const int64_t quiltc_L_off1_13 = L_off1[(b_8_h_8 / 4)];
            const int64_t quiltc_L_off2_14 = L_off2[(b_8_h_8 / 4)];
            {
                float quiltc_accumulator = row_max[row_max_i_2 + (4 * quiltc_L_off1_13) + (quiltc_L_len_12 * (b_8_h_8 % 4))];
                #pragma omp simd reduction(max:quiltc_accumulator)
                for (int64_t j_3 = 0; j_3 < quiltc_L_len_12; ++j_3) {
                    {
                        float quiltc_value = masked[j_3 + (4 * quiltc_L_off2_14) + (quiltc_L_len_12 * row_max_i_2) + ((quiltc_L_len_12 * quiltc_L_len_12) * (b_8_h_8 % 4))];
                        quiltc_accumulator = quiltc_value > quiltc_accumulator ? quiltc_value : quiltc_accumulator;
                    }
                }
                row_max[row_max_i_2 + (4 * quiltc_L_off1_13) + (quiltc_L_len_12 * (b_8_h_8 % 4))] = quiltc_accumulator;
            }
        }
        for (int64_t exps_i_3 = 0; exps_i_3 < L_len[(b_8_h_8 / 4)]; ++exps_i_3) {
            const int64_t quiltc_L_len_15 = L_len[(b_8_h_8 / 4)];
            const int64_t quiltc_L_off1_16 = L_off1[(b_8_h_8 / 4)];
            const int64_t quiltc_L_off2_17 = L_off2[(b_8_h_8 / 4)];
            #pragma omp simd
            for (int64_t exps_j_4 = 0; exps_j_4 < quiltc_L_len_15; ++exps_j_4) {
                exps[exps_j_4 + (4 * quiltc_L_off2_17) + (exps_i_3 * quiltc_L_len_15) + ((quiltc_L_len_15 * quiltc_L_len_15) * (b_8_h_8 % 4))] = quiltc_expf_nonpositive((masked[exps_j_4 + (4 * quiltc_L_off2_17) + (exps_i_3 * quiltc_L_len_15) + ((quiltc_L_len_15 * quiltc_L_len_15) * (b_8_h_8 % 4))] - row_max[exps_i_3 + (4 * quiltc_L_off1_16) + (quiltc_L_len_15 * (b_8_h_8 % 4))]) * 0.25f);
            }
        }
        for (int64_t row_sum_i_5 = 0; row_sum_i_5 < L_len[(b_8_h_8 / 4)]; ++row_sum_i_5) {
            row_sum[row_sum_i_5 + (4 * L_off1[(b_8_h_8 / 4)]) + (L_len[(b_8_h_8 / 4)] * (b_8_h_8 % 4))] = 0.0f;
            const int64_t quiltc_L_len_18 = L_len[(b_8_h_8 / 4)];
            const int64_t quiltc_L_off1_19 = L_off1[(b_8_h_8 / 4)];
            const int64_t quiltc_L_off2_20 = L_off2[(b_8_h_8 / 4)];
            {
                float quiltc_partial[64] = {0};
                const int64_t quiltc_whole = (quiltc_L_len_18) / 64 * 64;
                for (int64_t quiltc_block = 0; quiltc_block < quiltc_whole; quiltc_block += 64) {
                    #pragma omp simd
                    for (int64_t j_7 = quiltc_block; j_7 < quiltc_block + 64; ++j_7) {
                        quiltc_partial[j_7 - quiltc_block] += exps[j_7 + (4 * quiltc_L_off2_20) + (quiltc_L_len_18 * row_sum_i_5) + ((quiltc_L_len_18 * quiltc_L_len_18) * (b_8_h_8 % 4))];
                    }
                }
                float quiltc_accumulator = row_sum[row_sum_i_5 + (4 * quiltc_L_off1_19) + (quiltc_L_len_18 * (b_8_h_8 % 4))];
                #pragma omp simd reduction(+:quiltc_accumulator)
                for (int64_t j_7 = quiltc_whole; j_7 < quiltc_L_len_18; ++j_7) {
                    quiltc_accumulator += exps[j_7 + (4 * quiltc_L_off2_20) + (quiltc_L_len_18 * row_sum_i_5) + ((quiltc_L_len_18 * quiltc_L_len_18) * (b_8_h_8 % 4))];
                }
                if (quiltc_whole > 0) {
                    #pragma omp simd reduction(+:quiltc_accumulator)
                    for (int64_t quiltc_lane = 0; quiltc_lane < 64; ++quiltc_lane) {
                        quiltc_accumulator += quiltc_partial[quiltc_lane];
                    }
                }
                row_sum[row_sum_i_5 + (4 * quiltc_L_off1_19) + (quiltc_L_len_18 * (b_8_h_8 % 4))] = quiltc_accumulator;
            }
        }
        for (int64_t values_j_5 = 0; values_j_5 < L_len[(b_8_h_8 / 4)]; ++values_j_5) {
            const int64_t quiltc_L_len_21 = L_len[(b_8_h_8 / 4)];
            const int64_t quiltc_L_off1_22 = L_off1[(b_8_h_8 / 4)];
            #pragma omp simd
            for (int64_t values_e = 0; values_e < 16; ++values_e) {
                values[values_e + (16 * values_j_5) + (64 * quiltc_L_off1_22) + (16 * quiltc_L_len_21 * (b_8_h_8 % 4))] = QKV[128 + values_e + (16 * (b_8_h_8 % 4)) + (192 * quiltc_L_off1_22) + (192 * values_j_5)];
            }
        }
        for (int64_t context_i_4_o = 0; context_i_4_o < L_len[(b_8_h_8 / 4)] / 6; ++context_i_4_o) {
            float context_local[96];
            for (int64_t context_i_4_i_init = 0; context_i_4_i_init < 6; ++context_i_4_i_init) {
                for (int64_t context_e_1_init = 0; context_e_1_init < 16; ++context_e_1_init) {
                    context_local[context_e_1_init + (16 * context_i_4_i_init)] = 0.0f;
                }
            }
            for (int64_t j_6 = 0; j_6 < L_len[(b_8_h_8 / 4)]; ++j_6) {
                #pragma GCC unroll 6
                for (int64_t context_i_4_i = 0; context_i_4_i < 6; ++context_i_4_i) {
                    #pragma GCC unroll 1
                    for (int64_t context_e_1_o = 0; context_e_1_o < 1; ++context_e_1_o) {
                        const int64_t quiltc_L_len_23 = L_len[(b_8_h_8 / 4)];
                        const int64_t quiltc_L_off1_24 = L_off1[(b_8_h_8 / 4)];
                        const int64_t quiltc_L_off2_25 = L_off2[(b_8_h_8 / 4)];
                        #pragma omp simd
                        for (int64_t context_e_1_i = 0; context_e_1_i < 16; ++context_e_1_i) {
                            context_local[context_e_1_i + (16 * context_e_1_o) + (16 * context_i_4_i)] += exps[j_6 + (4 * quiltc_L_off2_25) + (context_i_4_i * quiltc_L_len_23) + ((quiltc_L_len_23 * quiltc_L_len_23) * (b_8_h_8 % 4)) + (6 * context_i_4_o * quiltc_L_len_23)] * values[context_e_1_i + (16 * context_e_1_o) + (16 * j_6) + (64 * quiltc_L_off1_24) + (16 * quiltc_L_len_23 * (b_8_h_8 % 4))];
                        }
                    }
                }
            }
            for (int64_t context_local_2 = 0; context_local_2 < 6; ++context_local_2) {
                for (int64_t context_local_3 = 0; context_local_3 < 16; ++context_local_3) {
                    context[context_local_3 + (16 * context_local_2) + (64 * L_off1[(b_8_h_8 / 4)]) + (96 * context_i_4_o) + (16 * L_len[(b_8_h_8 / 4)] * (b_8_h_8 % 4))] = context_local[context_local_3 + (16 * context_local_2)];
                }
            }
        }
        for (int64_t context_i_4_r = 0; context_i_4_r < L_len[(b_8_h_8 / 4)] - (6 * (L_len[(b_8_h_8 / 4)] / 6)); ++context_i_4_r) {
            float context_local_1[16];
            for (int64_t context_e_1_r_init = 0; context_e_1_r_init < 16; ++context_e_1_r_init) {
                context_local_1[context_e_1_r_init] = 0.0f;
            }
            for (int64_t j_6_r = 0; j_6_r < L_len[(b_8_h_8 / 4)]; ++j_6_r) {
                #pragma GCC unroll 1
                for (int64_t context_e_1_r_o = 0; context_e_1_r_o < 1; ++context_e_1_r_o) {
                    const int64_t quiltc_L_len_26 = L_len[(b_8_h_8 / 4)];
                    const int64_t quiltc_L_off1_27 = L_off1[(b_8_h_8 / 4)];
                    const int64_t quiltc_L_off2_28 = L_off2[(b_8_h_8 / 4)];
                    #pragma omp simd
                    for (int64_t context_e_1_r_i = 0; context_e_1_r_i < 16; ++context_e_1_r_i) {
                        context_local_1[context_e_1_r_i + (16 * context_e_1_r_o)] += exps[j_6_r + (4 * quiltc_L_off2_28) + (context_i_4_r * quiltc_L_len_26) + ((quiltc_L_len_26 * quiltc_L_len_26) * (b_8_h_8 % 4)) + (6 * quiltc_L_len_26 * (quiltc_L_len_26 / 6))] * values[context_e_1_r_i + (16 * context_e_1_r_o) + (16 * j_6_r) + (64 * quiltc_L_off1_27) + (16 * quiltc_L_len_26 * (b_8_h_8 % 4))];
                    }
                }
            }
            for (int64_t context_local_1_3 = 0; context_local_1_3 < 16; ++context_local_1_3) {
                context[context_local_1_3 + (16 * context_i_4_r) + (64 * L_off1[(b_8_h_8 / 4)]) + (96 * (L_len[(b_8_h_8 / 4)] / 6)) + (16 * L_len[(b_8_h_8 / 4)] * (b_8_h_8 % 4))] = context_local_1[context_local_1_3];
            }
        }
        for (int64_t i_6 = 0; i_6 < L_len[(b_8_h_8 / 4)]; ++i_6) {
            const int64_t quiltc_L_len_29 = L_len[(b_8_h_8 / 4)];
            const int64_t quiltc_L_off1_30 = L_off1[(b_8_h_8 / 4)];
            #pragma omp simd
            for (int64_t e_2 = 0; e_2 < 16; ++e_2) {
                attention[e_2 + (16 * (b_8_h_8 % 4)) + (64 * i_6) + (64 * quiltc_L_off1_30)] = context[e_2 + (16 * i_6) + (64 * quiltc_L_off1_30) + (16 * quiltc_L_len_29 * (b_8_h_8 % 4))] / row_sum[i_6 + (4 * quiltc_L_off1_30) + (quiltc_L_len_29 * (b_8_h_8 % 4))];
            }
        }
    }
    quiltc_give(&quiltc_kept_row_sum, row_sum);
    quiltc_give(&quiltc_kept_context, context);
    quiltc_give(&quiltc_kept_values, values);
    quiltc_give(&quiltc_kept_exps, exps);
    quiltc_give(&quiltc_kept_row_max, row_max);
    quiltc_give(&quiltc_kept_masked, masked);
    quiltc_give(&quiltc_kept_scores, scores);
    quiltc_give(&quiltc_kept_keys_t, keys_t);
    free(L_off2_pad32);
    free(L_off2);
    free(L_off1_pad32);
    free(L_off1);
}
