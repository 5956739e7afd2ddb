/*
 * quiltc kernel matmul_cuda (target cuda)
 * size M in [1, 4096]
 * size K in [1, 4096]
 * size N in [1, 4096]
 *
 * schedule:
 *     i_o, i_i = sch.split('i', 16)
 *     j_o, j_i = sch.split('j', 16)
 *     k_o, k_i = sch.split('k', 16)
 *     sch.reorder('i_o', 'j_o', 'k_o', 'i_i', 'j_i', 'k_i')
 *     A_shared = sch.cache_read('A', 'shared', at='k_o')
 *     B_shared = sch.cache_read('B', 'shared', at='k_o')
 *     sch.bind('i_o', 'blockIdx.y')
 *     sch.bind('j_o', 'blockIdx.x')
 *     sch.bind('i_i', 'threadIdx.y')
 *     sch.bind('j_i', 'threadIdx.x')
 *     sch.bind('A_shared_1', 'threadIdx.x')
 *     sch.bind('A_shared_0', 'threadIdx.y')
 *     sch.bind('B_shared_1', 'threadIdx.x')
 *     sch.bind('B_shared_0', 'threadIdx.y')
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

static __host__ __device__ inline int64_t quiltc_max_index(int64_t a, int64_t b) { return a > b ? a : b; }

extern "C" __global__ void __launch_bounds__(256) matmul_cuda_launch0(
    float* __restrict__ A,
    float* __restrict__ B,
    float* __restrict__ C,
    int64_t M,
    int64_t K,
    int64_t N)
{
    {
        const int64_t i_o = (int64_t)blockIdx.y;
        {
            const int64_t j_o = (int64_t)blockIdx.x;
            for (int64_t k_o = 0; k_o < (15 + K) / 16; ++k_o) {
                __shared__ float B_shared[256];
                {
                    const int64_t B_shared_0 = (int64_t)threadIdx.y;
                    {
                        const int64_t B_shared_1 = (int64_t)threadIdx.x;
                        if (((B_shared_0 + (16 * k_o)) < K) && ((B_shared_1 + (16 * j_o)) < N)) {
                            B_shared[B_shared_1 + (16 * B_shared_0)] = B[B_shared_1 + (16 * j_o) + (B_shared_0 * N) + (16 * N * k_o)];
                        }
                    }
                }
                __syncthreads();
                __shared__ float A_shared[256];
                {
                    const int64_t A_shared_0 = (int64_t)threadIdx.y;
                    {
                        const int64_t A_shared_1 = (int64_t)threadIdx.x;
                        if (((A_shared_0 + (16 * i_o)) < M) && ((A_shared_1 + (16 * k_o)) < K)) {
                            A_shared[A_shared_1 + (16 * A_shared_0)] = A[A_shared_1 + (16 * k_o) + (A_shared_0 * K) + (16 * K * i_o)];
                        }
                    }
                }
                __syncthreads();
                {
                    const int64_t i_i = (int64_t)threadIdx.y;
                    {
                        const int64_t j_i = (int64_t)threadIdx.x;
                        for (int64_t k_i = 0; k_i < 16; ++k_i) {
                            if (((i_i + (16 * i_o)) < M) && ((j_i + (16 * j_o)) < N) && ((k_i + (16 * k_o)) < K)) {
                                if (k_i + (16 * k_o) == 0) C[j_i + (16 * j_o) + (N * i_i) + (16 * N * i_o)] = 0.0f;
                                C[j_i + (16 * j_o) + (N * i_i) + (16 * N * i_o)] += A_shared[k_i + (16 * i_i)] * B_shared[j_i + (16 * k_i)];
                            }
                        }
                    }
                }
                __syncthreads();
                __syncthreads();
            }
        }
    }
}

extern "C" void matmul_cuda(
    float* __restrict__ A,
    float* __restrict__ B,
    float* __restrict__ C,
    int64_t M,
    int64_t K,
    int64_t N)
{
    quiltc_cuda_error[0] = 0;
    float* quiltc_device_A = (float*)quiltc_to_device(A, sizeof(float) * (K * M));
    float* quiltc_device_B = (float*)quiltc_to_device(B, sizeof(float) * (K * N));
    float* quiltc_device_C = (float*)quiltc_to_device(C, sizeof(float) * (M * N));
    {
        int64_t quiltc_grid_x = 0;
        quiltc_grid_x = quiltc_max_index(quiltc_grid_x, (15 + N) / 16);
        int64_t quiltc_grid_y = 0;
        quiltc_grid_y = quiltc_max_index(quiltc_grid_y, (15 + M) / 16);
        int64_t quiltc_grid_z = 1;
        int64_t quiltc_block_x = 16;
        int64_t quiltc_block_y = 16;
        int64_t quiltc_block_z = 1;
        if (quiltc_grid_x > 0 && quiltc_grid_y > 0 && quiltc_grid_z > 0) {
            QUILTC_LAUNCH(matmul_cuda_launch0, dim3((unsigned)quiltc_grid_x, (unsigned)quiltc_grid_y, (unsigned)quiltc_grid_z), dim3((unsigned)quiltc_block_x, (unsigned)quiltc_block_y, (unsigned)quiltc_block_z),
                    quiltc_device_A, quiltc_device_B, quiltc_device_C, M, K, N);
            quiltc_cuda_check(cudaGetLastError(), "launching matmul_cuda_launch0");
        }
    }
    quiltc_cuda_check(cudaDeviceSynchronize(), "running the kernels");
    quiltc_to_host(C, quiltc_device_C, sizeof(float) * (M * N));
    cudaFree((void*)quiltc_device_C);
    cudaFree((void*)quiltc_device_B);
    cudaFree((void*)quiltc_device_A);
}

extern "C" const char* matmul_cuda_error(void) { return quiltc_cuda_error; }
