/*
 * cuda_emu.h: run quiltc's generated CUDA C++ on the CPU, unchanged.
 *
 * g++ -std=c++17 -x c++ -I<this folder> kernel.cu compiles the same text nvcc does: the
 * CUDA qualifiers become plain C++, cudaMalloc/cudaMemcpy work on host memory, and
 * QUILTC_LAUNCH runs a grid block after block. Within a block every thread is a fiber
 * (ucontext) with a stack of its own, so thread-private variables stay private, and the
 * fibers run in turn: each runs until it reaches __syncthreads() or returns, and a
 * barrier releases only once every live thread of the block has reached it. Shared
 * memory (`__shared__` = a static local) is therefore written and read in the order a
 * GPU allows, and a kernel missing a barrier reads what a GPU could read: stale data.
 *
 * The index variables are `inline thread_local` (C++17): one object for the whole
 * program, private to each OS thread. `static thread_local` would give each translation
 * unit its own copy, and a kernel would read indices the launcher never set.
 */
#ifndef QUILTC_CUDA_EMU_H
#define QUILTC_CUDA_EMU_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#include <functional>
#include <memory>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
/* One array per function and OS thread: a block's fibers share it, and blocks that
   separate Python threads launch at once do not. */
#define __shared__ static thread_local
#define __launch_bounds__(...)

struct uint3 {
    unsigned x, y, z;
};

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;

typedef int cudaError_t;
enum {
    cudaSuccess = 0,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
};
enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
};

namespace quiltc_emu {

/* Bytes of stack per emulated thread: generated kernels keep small local arrays. */
constexpr size_t STACK_BYTES = 256 * 1024;
constexpr unsigned MAX_THREADS = 1024;

inline thread_local cudaError_t last_error = cudaSuccess;

struct Fiber {
    ucontext_t context;
    bool finished;
};

inline thread_local ucontext_t scheduler;
inline thread_local Fiber* current = nullptr;
inline thread_local const std::function<void()>* body = nullptr;

inline void fiber_main()
{
    (*body)();
    current->finished = true;
}

/* The calling thread waits for the rest of its block (no effect outside a launch). */
inline void barrier()
{
    if (current != nullptr) {
        swapcontext(&current->context, &scheduler);
    }
}

/* Run one block: start a fiber per thread, then resume the live ones in thread order,
   round after round; one round takes every live thread to its next barrier or its end. */
inline void run_block(const dim3& block, std::vector<Fiber>& fibers, char* stacks)
{
    size_t threads = fibers.size();
    for (size_t t = 0; t < threads; ++t) {
        Fiber& fiber = fibers[t];
        fiber.finished = false;
        getcontext(&fiber.context);
        fiber.context.uc_stack.ss_sp = stacks + t * STACK_BYTES;
        fiber.context.uc_stack.ss_size = STACK_BYTES;
        fiber.context.uc_link = &scheduler;
        makecontext(&fiber.context, fiber_main, 0);
    }
    bool live = true;
    while (live) {
        live = false;
        for (size_t t = 0; t < threads; ++t) {
            Fiber& fiber = fibers[t];
            if (fiber.finished) {
                continue;
            }
            threadIdx.x = (unsigned)(t % block.x);
            threadIdx.y = (unsigned)(t / block.x % block.y);
            threadIdx.z = (unsigned)(t / block.x / block.y);
            current = &fiber;
            swapcontext(&scheduler, &fiber.context);
            current = nullptr;
            live = live || !fiber.finished;
        }
    }
}

/* Run `kernel` (a call of a __global__ function) over the grid, one block at a time. */
inline void launch(dim3 grid, dim3 block, const std::function<void()>& kernel)
{
    size_t threads = (size_t)block.x * block.y * block.z;
    if (threads == 0 || threads > MAX_THREADS || grid.x == 0 || grid.y == 0 || grid.z == 0) {
        last_error = cudaErrorInvalidConfiguration;
        return;
    }
    std::unique_ptr<char[]> stacks(new char[threads * STACK_BYTES]);
    std::vector<Fiber> fibers(threads);
    body = &kernel;
    gridDim = grid;
    blockDim = block;
    for (unsigned z = 0; z < grid.z; ++z) {
        for (unsigned y = 0; y < grid.y; ++y) {
            for (unsigned x = 0; x < grid.x; ++x) {
                blockIdx.x = x;
                blockIdx.y = y;
                blockIdx.z = z;
                run_block(block, fibers, stacks.get());
            }
        }
    }
    body = nullptr;
}

}  // namespace quiltc_emu

#define QUILTC_LAUNCH(kernel, grid, block, ...) \
    quiltc_emu::launch((grid), (block), [&]() { kernel(__VA_ARGS__); })

inline void __syncthreads() { quiltc_emu::barrier(); }

inline cudaError_t cudaMalloc(void** pointer, size_t bytes)
{
    *pointer = malloc(bytes);
    return *pointer != nullptr ? cudaSuccess : cudaErrorMemoryAllocation;
}

inline cudaError_t cudaFree(void* pointer)
{
    free(pointer);
    return cudaSuccess;
}

inline cudaError_t cudaMemcpy(void* target, const void* source, size_t bytes, cudaMemcpyKind)
{
    memcpy(target, source, bytes);
    return cudaSuccess;
}

inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }

inline cudaError_t cudaGetLastError()
{
    cudaError_t error = quiltc_emu::last_error;
    quiltc_emu::last_error = cudaSuccess;
    return error;
}

inline const char* cudaGetErrorString(cudaError_t error)
{
    switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    default: return "unknown error";
    }
}

#endif
