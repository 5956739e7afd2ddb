/*
 * quiltc kernel ragged_scale (target c)
 * size B in [0, 8]
 *
 * schedule:
 *     b_l = sch.fuse('b', 'l')
 *     b_l_o, b_l_i = sch.split('b_l', 8)
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

void ragged_scale(float* restrict X, float* restrict Y, int64_t B, const int32_t* restrict L_len)
{
    int64_t* restrict L_off1 = quiltc_alloc(sizeof(int64_t) * (B + 1));
    L_off1[0] = 0;
    for (int64_t quiltc_row = 0; quiltc_row < B; ++quiltc_row) {
        L_off1[quiltc_row + 1] = L_off1[quiltc_row] + (int64_t)L_len[quiltc_row];
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
    for (int64_t b_l_o = 0; b_l_o < (7 + L_off1[B]) / 8; ++b_l_o) {
        for (int64_t b_l_i = 0; b_l_i < 8; ++b_l_i) {
            if ((b_l_i + (8 * b_l_o)) < L_off1[B]) {
                for (int64_t f = 0; f < 3; ++f) {
                    Y[f + (3 * b_l_i) + (24 * b_l_o)] = (X[f + (3 * b_l_i) + (24 * b_l_o)] * 2.0f) + 1.0f;
                }
            }
        }
    }
    free(L_row);
    free(L_pos);
    free(L_off1);
}
