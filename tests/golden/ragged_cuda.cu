/*
 * quiltc kernel ragged_scale (target cuda)
 * size B in [0, 8]
 *
 * schedule:
 *     l_o, l_i = sch.split('l', 32)
 *     sch.bind('b', 'blockIdx.x')
 *     sch.bind('l_o', 'blockIdx.y')
 *     sch.bind('l_i', 'threadIdx.x')
 *     b = sch.remap('b', 'length-desc')
 *     sch.bind('f', 'threadIdx.y')
 */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __CUDACC__
#include <cuda_runtime.h>
#define QUILTC_LAUNCH(kernel, grid, block, ...) kernel<<<(grid), (block)>>>(__VA_ARGS__)
#else
#include "cuda_emu.h"
#endif

static char quiltc_cuda_error[512];

static void quiltc_cuda_check(cudaError_t status, const char* what)
{
    if (status != cudaSuccess && quiltc_cuda_error[0] == 0) {
        snprintf(quiltc_cuda_error, sizeof quiltc_cuda_error, "%s: %s", what,
                 cudaGetErrorString(status));
    }
}

static void* quiltc_to_device(const void* host, size_t bytes)
{
    void* device = NULL;
    quiltc_cuda_check(cudaMalloc(&device, bytes > 0 ? bytes : 64), "cudaMalloc");
    if (host != NULL && device != NULL && bytes > 0) {
        quiltc_cuda_check(cudaMemcpy(device, host, bytes, cudaMemcpyHostToDevice), "cudaMemcpy");
    }
    return device;
}

static void quiltc_to_host(void* host, const void* device, size_t bytes)
{
    if (device != NULL && bytes > 0) {
        quiltc_cuda_check(cudaMemcpy(host, device, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy");
    }
}

struct quiltc_host_memory
{
    void* memory;
    template <typename T> operator T*() const { return static_cast<T*>(memory); }
};

static quiltc_host_memory quiltc_alloc(size_t bytes)
{
    void* memory = malloc(bytes > 0 ? bytes : 64);
    if (memory == NULL) {
        fprintf(stderr, "quiltc: out of memory allocating %zu bytes\n", bytes);
        abort();
    }
    return quiltc_host_memory{memory};
}

static __host__ __device__ inline int64_t quiltc_max_index(int64_t a, int64_t b) { return a > b ? a : b; }

extern "C" __global__ void __launch_bounds__(96) ragged_scale_launch0(
    float* __restrict__ X,
    float* __restrict__ Y,
    int64_t B,
    const int32_t* __restrict__ L_len,
    const int64_t* __restrict__ L_off1,
    const int64_t* __restrict__ L_order_desc)
{
    {
        const int64_t b = (int64_t)blockIdx.x;
        {
            const int64_t l_o = (int64_t)blockIdx.y;
            if (l_o < (31 + L_len[L_order_desc[b]]) / 32) {
                {
                    const int64_t l_i = (int64_t)threadIdx.x;
                    {
                        const int64_t f = (int64_t)threadIdx.y;
                        if ((l_i + (32 * l_o)) < L_len[L_order_desc[b]]) {
                            Y[f + (3 * l_i) + (3 * L_off1[L_order_desc[b]]) + (96 * l_o)] = (X[f + (3 * l_i) + (3 * L_off1[L_order_desc[b]]) + (96 * l_o)] * 2.0f) + 1.0f;
                        }
                    }
                }
            }
        }
    }
}

extern "C" void ragged_scale(
    float* __restrict__ X,
    float* __restrict__ Y,
    int64_t B,
    const int32_t* __restrict__ L_len)
{
    quiltc_cuda_error[0] = 0;
    int64_t* __restrict__ L_off1 = quiltc_alloc(sizeof(int64_t) * (B + 1));
    L_off1[0] = 0;
    for (int64_t quiltc_row = 0; quiltc_row < B; ++quiltc_row) {
        L_off1[quiltc_row + 1] = L_off1[quiltc_row] + (int64_t)L_len[quiltc_row];
    }
    int64_t* __restrict__ L_order_desc = quiltc_alloc(sizeof(int64_t) * (B + 1));
    {
        int64_t quiltc_next = 0;
        for (int64_t quiltc_length = 9; quiltc_length >= 0; --quiltc_length) {
            for (int64_t quiltc_row = 0; quiltc_row < B; ++quiltc_row) {
                if (L_len[quiltc_row] == quiltc_length) L_order_desc[quiltc_next++] = quiltc_row;
            }
        }
    }
    float* quiltc_device_X = (float*)quiltc_to_device(X, sizeof(float) * (3 * L_off1[B]));
    float* quiltc_device_Y = (float*)quiltc_to_device(Y, sizeof(float) * (3 * L_off1[B]));
    const int32_t* quiltc_device_L_len = (const int32_t*)quiltc_to_device(L_len, sizeof(int32_t) * (B));
    const int64_t* quiltc_device_L_off1 = (const int64_t*)quiltc_to_device(L_off1, sizeof(int64_t) * (B + 1));
    const int64_t* quiltc_device_L_order_desc = (const int64_t*)quiltc_to_device(L_order_desc, sizeof(int64_t) * (B + 1));
    {
        int64_t quiltc_grid_x = 0;
        quiltc_grid_x = quiltc_max_index(quiltc_grid_x, B);
        int64_t quiltc_grid_y = 0;
        for (int64_t b = 0; b < B; ++b) {
            quiltc_grid_y = quiltc_max_index(quiltc_grid_y, (31 + L_len[L_order_desc[b]]) / 32);
        }
        int64_t quiltc_grid_z = 1;
        int64_t quiltc_block_x = 32;
        int64_t quiltc_block_y = 3;
        int64_t quiltc_block_z = 1;
        if (quiltc_grid_x > 0 && quiltc_grid_y > 0 && quiltc_grid_z > 0) {
            QUILTC_LAUNCH(ragged_scale_launch0, dim3((unsigned)quiltc_grid_x, (unsigned)quiltc_grid_y, (unsigned)quiltc_grid_z), dim3((unsigned)quiltc_block_x, (unsigned)quiltc_block_y, (unsigned)quiltc_block_z),
                    quiltc_device_X, quiltc_device_Y, B, quiltc_device_L_len, quiltc_device_L_off1, quiltc_device_L_order_desc);
            quiltc_cuda_check(cudaGetLastError(), "launching ragged_scale_launch0");
        }
    }
    quiltc_cuda_check(cudaDeviceSynchronize(), "running the kernels");
    quiltc_to_host(Y, quiltc_device_Y, sizeof(float) * (3 * L_off1[B]));
    cudaFree((void*)quiltc_device_L_order_desc);
    cudaFree((void*)quiltc_device_L_off1);
    cudaFree((void*)quiltc_device_L_len);
    cudaFree((void*)quiltc_device_Y);
    cudaFree((void*)quiltc_device_X);
    free(L_order_desc);
    free(L_off1);
}

extern "C" const char* ragged_scale_error(void) { return quiltc_cuda_error; }
