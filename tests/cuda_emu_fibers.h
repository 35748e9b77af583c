/*
 * tests/cuda_emu_fibers.h — the grid emulator (tests/cuda_emu.h) extended to
 * kernels whose threads cooperate within a block, so that the FP32 kernels
 * (model/cuda/cuda_kernels.cu) run on the CPU as they are. Included first
 * (-include) in a host C++ compile of a copy of that file whose launches
 * `k<<<grid, block, shmem, stream>>>(args)` tests/cuda_emu.cmake has
 * rewritten to `k % pnx_emu_cfg(grid, block, shmem, stream)(args)`.
 *
 * How a launch runs: block after block (in pnx_emu's order), each block's
 * threads as fibers (ucontext) on small stacks of their own. A fiber runs
 * until it reaches __syncthreads() or returns; when every live thread of the
 * block has stopped, all must wait at the same barrier, or all have
 * returned having passed the same number of barriers — anything else is a
 * divergent __syncthreads, undefined on the GPU, and aborts the test with a
 * message. Since blocks never overlap, `__shared__` variables are function
 * statics: one copy, which each block reuses as a block reuses its shared
 * memory (contents undefined at start on both).
 *
 * Grids may be 2-D (x ≤ 2^31−1, y ≤ 65535, z = 1); blocks are 1-D (≤ 1024
 * threads). pnx_emu.max_grid caps gridDim.x and gridDim.y (only for kernels
 * whose loops stride over the grid); pnx_emu.max_block is not applied here:
 * these kernels size their reductions by a compile-time block size. An
 * invalid configuration is reported as CUDA does, by cudaGetLastError.
 * The runtime calls the launchers make (cudaGetLastError, cudaMemcpyAsync,
 * cudaStreamSynchronize) are macros for host equivalents: launches run at
 * once, in order, so a stream is always idle.
 */
#ifndef PNX_TESTS_CUDA_EMU_FIBERS_H
#define PNX_TESTS_CUDA_EMU_FIBERS_H

/* Before CUDA's headers, which keep an existing definition. */
#define __shared__ static

#include "tests/cuda_emu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

/* AddressSanitizer must be told of each stack switch, or it misreads the
 * fibers' stacks (-DPNEUMOSEG_SANITIZE=ON). */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define PNX_EMU_ASAN_START(save, bottom, size) __sanitizer_start_switch_fiber(save, bottom, size)
#define PNX_EMU_ASAN_FINISH(save, bottom, size) __sanitizer_finish_switch_fiber(save, bottom, size)
#else
#define PNX_EMU_ASAN_START(save, bottom, size) ((void)(save), (void)(bottom), (void)(size))
#define PNX_EMU_ASAN_FINISH(save, bottom, size) ((void)(save), (void)(bottom), (void)(size))
#endif

#include <tuple>
#include <utility>
#include <vector>

/* ---- device functions the kernels call, on the host ------------------------
 */

/* Rounded products that nvcc never fuses into an FMA; the host compile runs
 * with -ffp-contract=off, so a plain product is the same. */
inline float __fmul_rn(float a, float b)
{
    return a * b;
}

/* ---- fibers
 * ---------------------------------------------------------------------- */

struct pnx_emu_fiber {
    ucontext_t ctx;
    unsigned barriers; /* __syncthreads passed (or reached) so far */
    bool done;
};

struct pnx_emu_block_state {
    ucontext_t sched;
    const void *sched_bottom; /* the scheduler's stack, for AddressSanitizer */
    size_t sched_size;
    pnx_emu_fiber *fibers;
    char *stacks;
    unsigned current;
    void (*body)(void *);
    void *arg;
    const void *kernel; /* for messages: addr2line -f -e <test> <address> names it */
};
inline pnx_emu_block_state *pnx_emu_block = nullptr;

constexpr size_t pnx_emu_fiber_stack = 64 * 1024;

/* Fibers and their stacks, grown once to the largest block and reused. */
inline std::vector<pnx_emu_fiber> pnx_emu_fiber_pool;
inline std::vector<char> pnx_emu_stack_pool;

[[noreturn]] inline void pnx_emu_die(const char *why, const void *kernel)
{
    fprintf(stderr, "cuda emulator: %s (kernel at %p, block %u,%u, thread %u)\n", why, kernel,
            blockIdx.x, blockIdx.y, threadIdx.x);
    abort();
}

inline void __syncthreads()
{
    pnx_emu_block_state *st = pnx_emu_block;
    if (!st)
        pnx_emu_die("__syncthreads outside a launch", nullptr);
    pnx_emu_fiber &f = st->fibers[st->current];
    f.barriers++;
    void *fake = nullptr;
    PNX_EMU_ASAN_START(&fake, st->sched_bottom, st->sched_size);
    if (swapcontext(&f.ctx, &st->sched) != 0)
        pnx_emu_die("swapcontext failed", st->kernel);
    PNX_EMU_ASAN_FINISH(fake, nullptr, nullptr);
}

/* makecontext passes int arguments only; the state is global instead. */
inline void pnx_emu_fiber_main()
{
    pnx_emu_block_state *st = pnx_emu_block;
    PNX_EMU_ASAN_FINISH(nullptr, &st->sched_bottom, &st->sched_size);
    st->body(st->arg);
    st->fibers[st->current].done = true;
    /* uc_link returns to the scheduler; this stack is done with */
    PNX_EMU_ASAN_START(nullptr, st->sched_bottom, st->sched_size);
}

/* Out of line: getcontext returns twice, which would clobber a caller's loop.
 */
__attribute__((noinline)) inline void pnx_emu_fiber_init(pnx_emu_block_state &st, unsigned t)
{
    pnx_emu_fiber &f = st.fibers[t];
    f.barriers = 0;
    f.done = false;
    if (getcontext(&f.ctx) != 0)
        pnx_emu_die("getcontext failed", st.kernel);
    f.ctx.uc_stack.ss_sp = st.stacks + (size_t)t * pnx_emu_fiber_stack;
    f.ctx.uc_stack.ss_size = pnx_emu_fiber_stack;
    f.ctx.uc_link = &st.sched;
    makecontext(&f.ctx, pnx_emu_fiber_main, 0);
}

/* Runs body(arg) as every thread of the current block. */
inline void pnx_emu_run_block(pnx_emu_block_state &st, unsigned threads, int reverse)
{
    for (unsigned t = 0; t < threads; t++)
        pnx_emu_fiber_init(st, t);
    for (;;) {
        for (unsigned i = 0; i < threads; i++) {
            const unsigned t = reverse ? threads - 1 - i : i;
            if (st.fibers[t].done)
                continue;
            st.current = t;
            threadIdx = make_uint3(t, 0, 0);
            void *fake = nullptr;
            PNX_EMU_ASAN_START(&fake, st.stacks + (size_t)t * pnx_emu_fiber_stack,
                               pnx_emu_fiber_stack);
            if (swapcontext(&st.sched, &st.fibers[t].ctx) != 0)
                pnx_emu_die("swapcontext failed", st.kernel);
            PNX_EMU_ASAN_FINISH(fake, nullptr, nullptr);
        }
        /* Every thread now waits at a barrier or has returned. */
        const unsigned count = st.fibers[0].barriers;
        const bool done = st.fibers[0].done;
        for (unsigned t = 1; t < threads; t++)
            if (st.fibers[t].barriers != count || st.fibers[t].done != done)
                pnx_emu_die("divergent __syncthreads: threads of one block reached different "
                            "barriers",
                            st.kernel);
        if (done)
            return;
    }
}

/* ---- launches
 * --------------------------------------------------------------------- */

inline thread_local cudaError_t pnx_emu_last_error = cudaSuccess;

inline cudaError_t pnx_emu_get_last_error()
{
    cudaError_t e = pnx_emu_last_error;
    pnx_emu_last_error = cudaSuccess;
    return e;
}

template <typename... P, typename Tuple, size_t... I>
void pnx_emu_invoke(void (*kernel)(P...), Tuple &args, std::index_sequence<I...>)
{
    kernel(std::get<I>(args)...);
}

/* One launch: checks the configuration, then runs the grid block by block. */
template <typename... P, typename... A>
void pnx_emu_launch_fibers(dim3 grid, dim3 block, void (*kernel)(P...), std::tuple<A...> &args)
{
    if (grid.x < 1 || grid.x > pnx_emu_grid_limit || grid.y < 1 || grid.y > 65535 || grid.z != 1 ||
        block.x < 1 || block.x > pnx_emu_block_limit || block.y != 1 || block.z != 1) {
        pnx_emu_last_error = cudaErrorInvalidConfiguration;
        return;
    }
    pnx_emu_count.launches++;
    if (grid.x > pnx_emu_count.largest_grid)
        pnx_emu_count.largest_grid = grid.x;
    const unsigned gx = pnx_emu.max_grid && grid.x > pnx_emu.max_grid ? pnx_emu.max_grid : grid.x;
    const unsigned gy = pnx_emu.max_grid && grid.y > pnx_emu.max_grid ? pnx_emu.max_grid : grid.y;
    const unsigned b = block.x;
    gridDim = dim3(gx, gy, 1);
    blockDim = dim3(b, 1, 1);

    pnx_emu_block_state st;
    if (pnx_emu_fiber_pool.size() < b) {
        pnx_emu_fiber_pool.resize(b);
        pnx_emu_stack_pool.resize((size_t)b * pnx_emu_fiber_stack);
    }
    st.fibers = pnx_emu_fiber_pool.data();
    st.stacks = pnx_emu_stack_pool.data();
    st.kernel = (const void *)kernel;
    struct call {
        void (*kernel)(P...);
        std::tuple<A...> *args;
    } c = {kernel, &args};
    st.arg = &c;
    st.body = [](void *p) {
        call *cp = (call *)p;
        pnx_emu_invoke(cp->kernel, *cp->args, std::index_sequence_for<A...>{});
    };
    pnx_emu_block_state *outer = pnx_emu_block;
    if (outer)
        pnx_emu_die("a launch inside a kernel", st.kernel);
    pnx_emu_block = &st;
    for (unsigned j = 0; j < gy; j++)
        for (unsigned i = 0; i < gx; i++) {
            const unsigned bx = pnx_emu.reverse ? gx - 1 - i : i;
            const unsigned by = pnx_emu.reverse ? gy - 1 - j : j;
            blockIdx = make_uint3(bx, by, 0);
            pnx_emu_run_block(st, b, pnx_emu.reverse);
        }
    pnx_emu_block = nullptr;
    pnx_emu_count.threads += (unsigned long long)gx * gy * b;
}

/* `kernel % pnx_emu_cfg(grid, block, shmem, stream)(args…)`: the rewritten
 * `kernel<<<grid, block, shmem, stream>>>(args…)`. */
template <typename... A> struct pnx_emu_call {
    dim3 grid, block;
    std::tuple<A...> args;
};

struct pnx_emu_cfg {
    dim3 grid, block;
    pnx_emu_cfg(dim3 g, dim3 b, size_t shmem = 0, cudaStream_t s = nullptr) : grid(g), block(b)
    {
        if (shmem != 0)
            pnx_emu_die("dynamic shared memory is not emulated", nullptr);
        (void)s;
    }
    template <typename... A> pnx_emu_call<A...> operator()(A... a) const
    {
        return pnx_emu_call<A...>{grid, block, std::tuple<A...>(a...)};
    }
};

template <typename... P, typename... A> void operator%(void (*kernel)(P...), pnx_emu_call<A...> c)
{
    static_assert(sizeof...(P) == sizeof...(A), "kernel launched with a wrong argument count");
    pnx_emu_launch_fibers(c.grid, c.block, kernel, c.args);
}

/* A kernel template launched without template arguments (nvcc deduces them
 * from the call): the arguments' types pick the specialisation, so they must
 * equal the parameters' types, as they do in cuda_kernels.cu. */
template <typename... A> void operator%(void (*kernel)(A...), pnx_emu_call<A...> c)
{
    pnx_emu_launch_fibers(c.grid, c.block, kernel, c.args);
}

/* ---- the runtime calls of the launchers
 * --------------------------------------------- */

inline cudaError_t pnx_emu_memcpy_async(void *dst, const void *src, size_t n, cudaMemcpyKind k,
                                        cudaStream_t s)
{
    (void)k;
    (void)s;
    memcpy(dst, src, n);
    return cudaSuccess;
}

inline cudaError_t pnx_emu_stream_synchronize(cudaStream_t s)
{
    (void)s;
    return cudaSuccess;
}

#define cudaGetLastError pnx_emu_get_last_error
#define cudaMemcpyAsync pnx_emu_memcpy_async
#define cudaStreamSynchronize pnx_emu_stream_synchronize

#endif
