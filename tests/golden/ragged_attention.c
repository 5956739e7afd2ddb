/*
 * quiltc kernel ragged_attention (target c)
 * size B in [0, 4096]
 *
 * schedule:
 *     i_o, i_i, i_r = sch.split_op('i', 4)
 *     j_1_o, j_1_i, j_1_r_1 = sch.split_op('j_1', 32)
 *     i_i, i_i_1 = sch.distribute('i_i')
 *     sch.reorder('j_1_o', 'i_i')
 *     sch.reorder('d_1', 'i_i', 'j_1_i')
 *     scores_local = sch.cache_write('scores', 'local', at='j_1_o')
 *     sch.decompose('scores_local', 'd_1')
 *     sch.unroll('i_i')
 *     j_1_i_o, j_1_i_i = sch.split('j_1_i', 16)
 *     sch.unroll('j_1_i_o')
 *     sch.vectorize('j_1_i_i')
 *     sch.reorder('d_1_r_1', 'j_1_r_1')
 *     sch.vectorize('j_1_r_1')
 *     j_1_r_o, j_1_r_i, j_1_r_r = sch.split_op('j_1_r', 32)
 *     sch.reorder('d_1_r', 'j_1_r_i')
 *     scores_local_1 = sch.cache_write('scores', 'local', at='j_1_r_o')
 *     sch.decompose('scores_local_1', 'd_1_r')
 *     j_1_r_i_o, j_1_r_i_i = sch.split('j_1_r_i', 16)
 *     sch.unroll('j_1_r_i_o')
 *     sch.vectorize('j_1_r_i_i')
 *     sch.reorder('d_1_r_r', 'j_1_r_r')
 *     sch.vectorize('j_1_r_r')
 *     sch.reorder('j_6', 'e_1')
 *     context_local = sch.cache_write('context', 'local', at='i_4')
 *     sch.decompose('context_local', 'j_6')
 *     e_1_o, e_1_i = sch.split('e_1', 16)
 *     sch.unroll('e_1_o')
 *     sch.vectorize('e_1_i')
 *     sch.vectorize('j')
 *     sch.vectorize('j_4')
 *     sch.vectorize('e')
 *     sch.vectorize('j_2')
 *     sch.decompose('row_max', 'j_3')
 *     sch.vectorize('j_3')
 *     sch.decompose('row_sum', 'j_7')
 *     sch.vectorize('j_7')
 *     sch.vectorize('e_2')
 *     b_h = sch.fuse('b', 'h')
 *     sch.parallel('b_h')
 *     b_1_h_1 = sch.fuse('b_1', 'h_1')
 *     sch.parallel('b_1_h_1')
 *     b_3_h_3 = sch.fuse('b_3', 'h_3')
 *     sch.parallel('b_3_h_3')
 *     b_4_h_4 = sch.fuse('b_4', 'h_4')
 *     sch.parallel('b_4_h_4')
 *     b_7_h_7 = sch.fuse('b_7', 'h_7')
 *     sch.parallel('b_7_h_7')
 *     b_5_h_5 = sch.fuse('b_5', 'h_5')
 *     sch.parallel('b_5_h_5')
 *     b_6_h_6 = sch.fuse('b_6', 'h_6')
 *     sch.parallel('b_6_h_6')
 *     b_2_h_2 = sch.fuse('b_2', 'h_2')
 *     sch.parallel('b_2_h_2')
 *     b_8_i_6 = sch.fuse('b_8', 'i_6')
 *     sch.parallel('b_8_i_6')
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

static inline float quiltc_expf(float x)
{
    x = x < -104.0f ? -104.0f : (x > 89.0f ? 89.0f : x);
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    int32_t half = (int32_t)n >> 1;
    uint32_t first_bits = (uint32_t)(half + 127) << 23;
    uint32_t second_bits = (uint32_t)((int32_t)n - half + 127) << 23;
    float first_scale, second_scale;
    memcpy(&first_scale, &first_bits, sizeof first_scale);
    memcpy(&second_scale, &second_bits, sizeof second_scale);
    return y * first_scale * second_scale;
}

static inline float quiltc_max_float32(float a, float b) { return (a > b || a != a) ? a : b; }

static inline float quiltc_select_float32(int condition, float then, float otherwise) { return condition ? then : otherwise; }

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
    int64_t* restrict L_off2 = quiltc_alloc(sizeof(int64_t) * (B + 1));
    L_off2[0] = 0;
    for (int64_t quiltc_row = 0; quiltc_row < B; ++quiltc_row) {
        L_off2[quiltc_row + 1] = L_off2[quiltc_row] + (int64_t)L_len[quiltc_row] * (int64_t)L_len[quiltc_row];
    }
    int64_t quiltc_total_L_row = 0;
    for (int64_t quiltc_row = 0; quiltc_row < B; ++quiltc_row) quiltc_total_L_row += L_len[quiltc_row];
    int64_t* restrict L_row = quiltc_alloc(sizeof(int64_t) * (quiltc_total_L_row + 1));
    int64_t* restrict L_pos = quiltc_alloc(sizeof(int64_t) * (quiltc_total_L_row + 1));
    {
        int64_t quiltc_next = 0;
        for (int64_t quiltc_row = 0; quiltc_row < B; ++quiltc_row) {
            for (int64_t quiltc_place = 0; quiltc_place < L_len[quiltc_row]; ++quiltc_place, ++quiltc_next) {
                L_row[quiltc_next] = quiltc_row;
                L_pos[quiltc_next] = quiltc_place;
            }
        }
    }
    float* restrict keys_t = quiltc_alloc(sizeof(float) * 64 * L_off1[B]);
    float* restrict scores = quiltc_alloc(sizeof(float) * 4 * L_off2[B]);
    float* restrict masked = quiltc_alloc(sizeof(float) * 4 * L_off2[B]);
    float* restrict row_max = quiltc_alloc(sizeof(float) * 4 * L_off1[B]);
    float* restrict exps = quiltc_alloc(sizeof(float) * 4 * L_off2[B]);
    float* restrict values = quiltc_alloc(sizeof(float) * 64 * L_off1[B]);
    float* restrict context = quiltc_alloc(sizeof(float) * 64 * L_off1[B]);
    float* restrict row_sum = quiltc_alloc(sizeof(float) * 4 * L_off1[B]);
    #pragma omp parallel for schedule(dynamic)
    for (int64_t b_h = 0; b_h < 4 * B; ++b_h) {
        for (int64_t d = 0; d < 16; ++d) {
            #pragma omp simd
            for (int64_t j = 0; j < L_len[(b_h / 4)]; ++j) {
                keys_t[j + (64 * L_off1[(b_h / 4)]) + (d * L_len[(b_h / 4)]) + (16 * L_len[(b_h / 4)] * (b_h % 4))] = QKV[64 + d + (16 * (b_h % 4)) + (192 * j) + (192 * L_off1[(b_h / 4)])];
            }
        }
    }
    #pragma omp parallel for schedule(dynamic)
    for (int64_t b_1_h_1 = 0; b_1_h_1 < 4 * B; ++b_1_h_1) {
        for (int64_t i_o = 0; i_o < L_len[(b_1_h_1 / 4)] / 4; ++i_o) {
            for (int64_t j_1_o = 0; j_1_o < L_len[(b_1_h_1 / 4)] / 32; ++j_1_o) {
                float scores_local[128];
                for (int64_t i_i_init = 0; i_i_init < 4; ++i_i_init) {
                    for (int64_t j_1_i_init = 0; j_1_i_init < 32; ++j_1_i_init) {
                        scores_local[j_1_i_init + (32 * i_i_init)] = 0.0f;
                    }
                }
                for (int64_t d_1 = 0; d_1 < 16; ++d_1) {
                    #pragma GCC unroll 4
                    for (int64_t i_i = 0; i_i < 4; ++i_i) {
                        #pragma GCC unroll 2
                        for (int64_t j_1_i_o = 0; j_1_i_o < 2; ++j_1_i_o) {
                            #pragma omp simd
                            for (int64_t j_1_i_i = 0; j_1_i_i < 16; ++j_1_i_i) {
                                scores_local[j_1_i_i + (16 * j_1_i_o) + (32 * i_i)] += QKV[d_1 + (16 * (b_1_h_1 % 4)) + (192 * i_i) + (192 * L_off1[(b_1_h_1 / 4)]) + (768 * i_o)] * keys_t[j_1_i_i + (16 * j_1_i_o) + (32 * j_1_o) + (64 * L_off1[(b_1_h_1 / 4)]) + (d_1 * L_len[(b_1_h_1 / 4)]) + (16 * L_len[(b_1_h_1 / 4)] * (b_1_h_1 % 4))];
                            }
                        }
                    }
                }
                for (int64_t scores_local_2 = 0; scores_local_2 < 4; ++scores_local_2) {
                    for (int64_t scores_local_3 = 0; scores_local_3 < 32; ++scores_local_3) {
                        scores[scores_local_3 + (4 * L_off2[(b_1_h_1 / 4)]) + (32 * j_1_o) + (scores_local_2 * L_len[(b_1_h_1 / 4)]) + ((L_len[(b_1_h_1 / 4)] * L_len[(b_1_h_1 / 4)]) * (b_1_h_1 % 4)) + (4 * i_o * L_len[(b_1_h_1 / 4)])] = scores_local[scores_local_3 + (32 * scores_local_2)];
                    }
                }
            }
            for (int64_t i_i_1 = 0; i_i_1 < 4; ++i_i_1) {
                for (int64_t d_1_r_1 = 0; d_1_r_1 < 16; ++d_1_r_1) {
                    #pragma omp simd
                    for (int64_t j_1_r_1 = 0; j_1_r_1 < L_len[(b_1_h_1 / 4)] - (32 * (L_len[(b_1_h_1 / 4)] / 32)); ++j_1_r_1) {
                        if (d_1_r_1 == 0) scores[j_1_r_1 + (4 * L_off2[(b_1_h_1 / 4)]) + (32 * (L_len[(b_1_h_1 / 4)] / 32)) + (i_i_1 * L_len[(b_1_h_1 / 4)]) + ((L_len[(b_1_h_1 / 4)] * L_len[(b_1_h_1 / 4)]) * (b_1_h_1 % 4)) + (4 * i_o * L_len[(b_1_h_1 / 4)])] = 0.0f;
                        scores[j_1_r_1 + (4 * L_off2[(b_1_h_1 / 4)]) + (32 * (L_len[(b_1_h_1 / 4)] / 32)) + (i_i_1 * L_len[(b_1_h_1 / 4)]) + ((L_len[(b_1_h_1 / 4)] * L_len[(b_1_h_1 / 4)]) * (b_1_h_1 % 4)) + (4 * i_o * L_len[(b_1_h_1 / 4)])] += QKV[d_1_r_1 + (16 * (b_1_h_1 % 4)) + (192 * i_i_1) + (192 * L_off1[(b_1_h_1 / 4)]) + (768 * i_o)] * keys_t[j_1_r_1 + (32 * (L_len[(b_1_h_1 / 4)] / 32)) + (64 * L_off1[(b_1_h_1 / 4)]) + (d_1_r_1 * L_len[(b_1_h_1 / 4)]) + (16 * L_len[(b_1_h_1 / 4)] * (b_1_h_1 % 4))];
                    }
                }
            }
        }
        for (int64_t i_r = 0; i_r < L_len[(b_1_h_1 / 4)] - (4 * (L_len[(b_1_h_1 / 4)] / 4)); ++i_r) {
            for (int64_t j_1_r_o = 0; j_1_r_o < L_len[(b_1_h_1 / 4)] / 32; ++j_1_r_o) {
                float scores_local_1[32];
                for (int64_t j_1_r_i_init = 0; j_1_r_i_init < 32; ++j_1_r_i_init) {
                    scores_local_1[j_1_r_i_init] = 0.0f;
                }
                for (int64_t d_1_r = 0; d_1_r < 16; ++d_1_r) {
                    #pragma GCC unroll 2
                    for (int64_t j_1_r_i_o = 0; j_1_r_i_o < 2; ++j_1_r_i_o) {
                        #pragma omp simd
                        for (int64_t j_1_r_i_i = 0; j_1_r_i_i < 16; ++j_1_r_i_i) {
                            scores_local_1[j_1_r_i_i + (16 * j_1_r_i_o)] += QKV[d_1_r + (16 * (b_1_h_1 % 4)) + (192 * i_r) + (192 * L_off1[(b_1_h_1 / 4)]) + (768 * (L_len[(b_1_h_1 / 4)] / 4))] * keys_t[j_1_r_i_i + (16 * j_1_r_i_o) + (32 * j_1_r_o) + (64 * L_off1[(b_1_h_1 / 4)]) + (d_1_r * L_len[(b_1_h_1 / 4)]) + (16 * L_len[(b_1_h_1 / 4)] * (b_1_h_1 % 4))];
                        }
                    }
                }
                for (int64_t scores_local_1_3 = 0; scores_local_1_3 < 32; ++scores_local_1_3) {
                    scores[scores_local_1_3 + (4 * L_off2[(b_1_h_1 / 4)]) + (32 * j_1_r_o) + (i_r * L_len[(b_1_h_1 / 4)]) + ((L_len[(b_1_h_1 / 4)] * L_len[(b_1_h_1 / 4)]) * (b_1_h_1 % 4)) + (4 * L_len[(b_1_h_1 / 4)] * (L_len[(b_1_h_1 / 4)] / 4))] = scores_local_1[scores_local_1_3];
                }
            }
            for (int64_t d_1_r_r = 0; d_1_r_r < 16; ++d_1_r_r) {
                #pragma omp simd
                for (int64_t j_1_r_r = 0; j_1_r_r < L_len[(b_1_h_1 / 4)] - (32 * (L_len[(b_1_h_1 / 4)] / 32)); ++j_1_r_r) {
                    if (d_1_r_r == 0) scores[j_1_r_r + (4 * L_off2[(b_1_h_1 / 4)]) + (32 * (L_len[(b_1_h_1 / 4)] / 32)) + (i_r * L_len[(b_1_h_1 / 4)]) + ((L_len[(b_1_h_1 / 4)] * L_len[(b_1_h_1 / 4)]) * (b_1_h_1 % 4)) + (4 * L_len[(b_1_h_1 / 4)] * (L_len[(b_1_h_1 / 4)] / 4))] = 0.0f;
                    scores[j_1_r_r + (4 * L_off2[(b_1_h_1 / 4)]) + (32 * (L_len[(b_1_h_1 / 4)] / 32)) + (i_r * L_len[(b_1_h_1 / 4)]) + ((L_len[(b_1_h_1 / 4)] * L_len[(b_1_h_1 / 4)]) * (b_1_h_1 % 4)) + (4 * L_len[(b_1_h_1 / 4)] * (L_len[(b_1_h_1 / 4)] / 4))] += QKV[d_1_r_r + (16 * (b_1_h_1 % 4)) + (192 * i_r) + (192 * L_off1[(b_1_h_1 / 4)]) + (768 * (L_len[(b_1_h_1 / 4)] / 4))] * keys_t[j_1_r_r + (32 * (L_len[(b_1_h_1 / 4)] / 32)) + (64 * L_off1[(b_1_h_1 / 4)]) + (d_1_r_r * L_len[(b_1_h_1 / 4)]) + (16 * L_len[(b_1_h_1 / 4)] * (b_1_h_1 % 4))];
                }
            }
        }
    }
    #pragma omp parallel for schedule(dynamic)
    for (int64_t b_2_h_2 = 0; b_2_h_2 < 4 * B; ++b_2_h_2) {
        for (int64_t i_1 = 0; i_1 < L_len[(b_2_h_2 / 4)]; ++i_1) {
            #pragma omp simd
            for (int64_t j_2 = 0; j_2 < L_len[(b_2_h_2 / 4)]; ++j_2) {
                masked[j_2 + (4 * L_off2[(b_2_h_2 / 4)]) + (i_1 * L_len[(b_2_h_2 / 4)]) + ((L_len[(b_2_h_2 / 4)] * L_len[(b_2_h_2 / 4)]) * (b_2_h_2 % 4))] = quiltc_select_float32(j_2 <= i_1, scores[j_2 + (4 * L_off2[(b_2_h_2 / 4)]) + (i_1 * L_len[(b_2_h_2 / 4)]) + ((L_len[(b_2_h_2 / 4)] * L_len[(b_2_h_2 / 4)]) * (b_2_h_2 % 4))], -INFINITY);
            }
        }
    }
    #pragma omp parallel for schedule(dynamic)
    for (int64_t b_3_h_3 = 0; b_3_h_3 < 4 * B; ++b_3_h_3) {
        for (int64_t i_2 = 0; i_2 < L_len[(b_3_h_3 / 4)]; ++i_2) {
            row_max[i_2 + (4 * L_off1[(b_3_h_3 / 4)]) + (L_len[(b_3_h_3 / 4)] * (b_3_h_3 % 4))] = -INFINITY;
            {
                float quiltc_accumulator = row_max[i_2 + (4 * L_off1[(b_3_h_3 / 4)]) + (L_len[(b_3_h_3 / 4)] * (b_3_h_3 % 4))];
                #pragma omp simd reduction(max:quiltc_accumulator)
                for (int64_t j_3 = 0; j_3 < L_len[(b_3_h_3 / 4)]; ++j_3) {
                    quiltc_accumulator = quiltc_max_float32(quiltc_accumulator, masked[j_3 + (4 * L_off2[(b_3_h_3 / 4)]) + (i_2 * L_len[(b_3_h_3 / 4)]) + ((L_len[(b_3_h_3 / 4)] * L_len[(b_3_h_3 / 4)]) * (b_3_h_3 % 4))]);
                }
                row_max[i_2 + (4 * L_off1[(b_3_h_3 / 4)]) + (L_len[(b_3_h_3 / 4)] * (b_3_h_3 % 4))] = quiltc_accumulator;
            }
        }
    }
    #pragma omp parallel for schedule(dynamic)
    for (int64_t b_4_h_4 = 0; b_4_h_4 < 4 * B; ++b_4_h_4) {
        for (int64_t i_3 = 0; i_3 < L_len[(b_4_h_4 / 4)]; ++i_3) {
            #pragma omp simd
            for (int64_t j_4 = 0; j_4 < L_len[(b_4_h_4 / 4)]; ++j_4) {
                exps[j_4 + (4 * L_off2[(b_4_h_4 / 4)]) + (i_3 * L_len[(b_4_h_4 / 4)]) + ((L_len[(b_4_h_4 / 4)] * L_len[(b_4_h_4 / 4)]) * (b_4_h_4 % 4))] = quiltc_expf((masked[j_4 + (4 * L_off2[(b_4_h_4 / 4)]) + (i_3 * L_len[(b_4_h_4 / 4)]) + ((L_len[(b_4_h_4 / 4)] * L_len[(b_4_h_4 / 4)]) * (b_4_h_4 % 4))] - row_max[i_3 + (4 * L_off1[(b_4_h_4 / 4)]) + (L_len[(b_4_h_4 / 4)] * (b_4_h_4 % 4))]) * 0.25f);
            }
        }
    }
    #pragma omp parallel for schedule(dynamic)
    for (int64_t b_5_h_5 = 0; b_5_h_5 < 4 * B; ++b_5_h_5) {
        for (int64_t j_5 = 0; j_5 < L_len[(b_5_h_5 / 4)]; ++j_5) {
            #pragma omp simd
            for (int64_t e = 0; e < 16; ++e) {
                values[e + (16 * j_5) + (64 * L_off1[(b_5_h_5 / 4)]) + (16 * L_len[(b_5_h_5 / 4)] * (b_5_h_5 % 4))] = QKV[128 + e + (16 * (b_5_h_5 % 4)) + (192 * j_5) + (192 * L_off1[(b_5_h_5 / 4)])];
            }
        }
    }
    #pragma omp parallel for schedule(dynamic)
    for (int64_t b_6_h_6 = 0; b_6_h_6 < 4 * B; ++b_6_h_6) {
        for (int64_t i_4 = 0; i_4 < L_len[(b_6_h_6 / 4)]; ++i_4) {
            float context_local[16];
            for (int64_t e_1_init = 0; e_1_init < 16; ++e_1_init) {
                context_local[e_1_init] = 0.0f;
            }
            for (int64_t j_6 = 0; j_6 < L_len[(b_6_h_6 / 4)]; ++j_6) {
                #pragma GCC unroll 1
                for (int64_t e_1_o = 0; e_1_o < 1; ++e_1_o) {
                    #pragma omp simd
                    for (int64_t e_1_i = 0; e_1_i < 16; ++e_1_i) {
                        context_local[e_1_i + (16 * e_1_o)] += exps[j_6 + (4 * L_off2[(b_6_h_6 / 4)]) + (i_4 * L_len[(b_6_h_6 / 4)]) + ((L_len[(b_6_h_6 / 4)] * L_len[(b_6_h_6 / 4)]) * (b_6_h_6 % 4))] * values[e_1_i + (16 * e_1_o) + (16 * j_6) + (64 * L_off1[(b_6_h_6 / 4)]) + (16 * L_len[(b_6_h_6 / 4)] * (b_6_h_6 % 4))];
                    }
                }
            }
            for (int64_t context_local_3 = 0; context_local_3 < 16; ++context_local_3) {
                context[context_local_3 + (16 * i_4) + (64 * L_off1[(b_6_h_6 / 4)]) + (16 * L_len[(b_6_h_6 / 4)] * (b_6_h_6 % 4))] = context_local[context_local_3];
            }
        }
    }
    #pragma omp parallel for schedule(dynamic)
    for (int64_t b_7_h_7 = 0; b_7_h_7 < 4 * B; ++b_7_h_7) {
        for (int64_t i_5 = 0; i_5 < L_len[(b_7_h_7 / 4)]; ++i_5) {
            row_sum[i_5 + (4 * L_off1[(b_7_h_7 / 4)]) + (L_len[(b_7_h_7 / 4)] * (b_7_h_7 % 4))] = 0.0f;
            {
                float quiltc_accumulator = row_sum[i_5 + (4 * L_off1[(b_7_h_7 / 4)]) + (L_len[(b_7_h_7 / 4)] * (b_7_h_7 % 4))];
                #pragma omp simd reduction(+:quiltc_accumulator)
                for (int64_t j_7 = 0; j_7 < L_len[(b_7_h_7 / 4)]; ++j_7) {
                    quiltc_accumulator += exps[j_7 + (4 * L_off2[(b_7_h_7 / 4)]) + (i_5 * L_len[(b_7_h_7 / 4)]) + ((L_len[(b_7_h_7 / 4)] * L_len[(b_7_h_7 / 4)]) * (b_7_h_7 % 4))];
                }
                row_sum[i_5 + (4 * L_off1[(b_7_h_7 / 4)]) + (L_len[(b_7_h_7 / 4)] * (b_7_h_7 % 4))] = quiltc_accumulator;
            }
        }
    }
    #pragma omp parallel for
    for (int64_t b_8_i_6 = 0; b_8_i_6 < L_off1[B]; ++b_8_i_6) {
        for (int64_t h_8 = 0; h_8 < 4; ++h_8) {
            #pragma omp simd
            for (int64_t e_2 = 0; e_2 < 16; ++e_2) {
                attention[e_2 + (16 * h_8) + (64 * b_8_i_6)] = context[e_2 + (16 * L_pos[b_8_i_6]) + (64 * L_off1[L_row[b_8_i_6]]) + (16 * h_8 * L_len[L_row[b_8_i_6]])] / row_sum[(4 * L_off1[L_row[b_8_i_6]]) + (h_8 * L_len[L_row[b_8_i_6]]) + L_pos[b_8_i_6]];
            }
        }
    }
    free(row_sum);
    free(context);
    free(values);
    free(exps);
    free(row_max);
    free(masked);
    free(scores);
    free(keys_t);
    free(L_row);
    free(L_pos);
    free(L_off2);
    free(L_off1);
}
