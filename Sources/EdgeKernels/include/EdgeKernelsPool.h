// EdgeKernelsPool: persistent worker threads for the runtime's parallel loops.
//
// A decoding step runs a few hundred small matrix products (a 576x576 int8 product is ~30 us of
// memory traffic); waking a sleeping thread per product costs about as much as the product. A pool's
// workers stay alive between calls and spin for a short while (EDGE_POOL_SPIN_NS) after each job
// before they sleep, so back-to-back jobs start within a fraction of a microsecond.
#ifndef EDGE_KERNELS_POOL_H
#define EDGE_KERNELS_POOL_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// How long an idle worker spins (checking for a new job) before it sleeps on a condition variable.
#define EDGE_POOL_SPIN_NS 2000000

/// A pool of `participants - 1` worker threads; the calling thread is the last participant.
typedef struct edge_pool edge_pool;

/// One task of a job: `fn(ctx, index)`.
typedef void (*edge_pool_fn)(void *ctx, size_t index);

/// A pool for `participants` (>= 1) threads in all, its workers started now. NULL when threads cannot
/// be created (callers then run their loops another way).
edge_pool *edge_pool_create(size_t participants);

/// Stops and joins the workers and frees the pool. No job may be running.
void edge_pool_destroy(edge_pool *pool);

/// The participants the pool was created for.
size_t edge_pool_participants(const edge_pool *pool);

/// Runs fn(ctx, i) for every i < n and returns when all have returned: participant p (the caller is
/// participant 0) runs i = p, p + P, p + 2P, ... (P = participants), so which thread runs a task is
/// fixed by its index. Returns false, running nothing, when another job is in progress on this pool
/// (a nested or concurrent call): the caller runs its loop another way. Tasks must not call
/// edge_pool_run on the same pool expecting it to run (it returns false there).
bool edge_pool_run(edge_pool *pool, size_t n, edge_pool_fn fn, void *ctx);

#ifdef __cplusplus
}
#endif

#endif
