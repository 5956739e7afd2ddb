/*
 * quiltc kernel matmul (target c)
 * size M in [1, 4096]
 * size K in [1, 4096]
 * size N in [1, 4096]
 *
 * schedule:
 *     i_o, i_i = sch.split('i', 8)
 *     j_o, j_i = sch.split('j', 32)
 *     sch.reorder('j_o', 'i_o', 'k', 'i_i', 'j_i')
 *     C_local = sch.cache_write('C', 'local', at='i_o')
 *     sch.decompose('C_local', 'k')
 *     j_i_o, j_i_i = sch.split('j_i', 16)
 *     sch.unroll('i_i')
 *     sch.unroll('j_i_o')
 *     sch.vectorize('j_i_i')
 *     sch.parallel('j_o')
 */

#define _POSIX_C_SOURCE 200112L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void matmul(
    float* restrict A,
    float* restrict B,
    float* restrict C,
    int64_t M,
    int64_t K,
    int64_t N)
{
    #pragma omp parallel for
    for (int64_t j_o = 0; j_o < (31 + N) / 32; ++j_o) {
        for (int64_t i_o = 0; i_o < (7 + M) / 8; ++i_o) {
            float C_local[256];
            for (int64_t i_i_init = 0; i_i_init < 8; ++i_i_init) {
                for (int64_t j_i_init = 0; j_i_init < 32; ++j_i_init) {
                    if (((i_i_init + (8 * i_o)) < M) && ((j_i_init + (32 * j_o)) < N)) {
                        C_local[j_i_init + (32 * i_i_init)] = 0.0f;
                    }
                }
            }
            for (int64_t k = 0; k < K; ++k) {
                #pragma GCC unroll 8
                for (int64_t i_i = 0; i_i < 8; ++i_i) {
                    #pragma GCC unroll 2
                    for (int64_t j_i_o = 0; j_i_o < 2; ++j_i_o) {
                        #pragma omp simd
                        for (int64_t j_i_i = 0; j_i_i < 16; ++j_i_i) {
                            if (((i_i + (8 * i_o)) < M) && ((j_i_i + (16 * j_i_o) + (32 * j_o)) < N)) {
                                C_local[j_i_i + (16 * j_i_o) + (32 * i_i)] += A[k + (K * i_i) + (8 * K * i_o)] * B[j_i_i + (16 * j_i_o) + (32 * j_o) + (N * k)];
                            }
                        }
                    }
                }
            }
            for (int64_t C_local_0 = 0; C_local_0 < 8; ++C_local_0) {
                for (int64_t C_local_1 = 0; C_local_1 < 32; ++C_local_1) {
                    if (((C_local_0 + (8 * i_o)) < M) && ((C_local_1 + (32 * j_o)) < N)) {
                        C[C_local_1 + (32 * j_o) + (C_local_0 * N) + (8 * N * i_o)] = C_local[C_local_1 + (32 * C_local_0)];
                    }
                }
            }
        }
    }
}
