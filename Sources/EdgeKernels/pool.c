// Persistent worker pool (EdgeKernelsPool.h). A job is published by bumping `generation` (release);
// workers spin on it (acquire) for EDGE_POOL_SPIN_NS, then sleep on `wake`. Each worker runs a
// fixed stride of the task indices and then bumps `finished`; the caller runs its own stride and
// spins until every worker has finished, which is also each worker's last touch of the job, so the
// next job can be published at once.
#include "EdgeKernelsPool.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

struct edge_pool {
    size_t participants;
    pthread_t *threads;
    _Atomic uint64_t generation;   // bumped once per job (and once to stop)
    _Atomic size_t finished;       // workers done with the current job
    _Atomic int sleepers;          // workers waiting on `wake`
    atomic_flag busy;              // a job is in progress
    bool stop;
    // The current job, written before `generation` is bumped.
    size_t n;
    edge_pool_fn fn;
    void *ctx;
    pthread_mutex_t lock;
    pthread_cond_t wake;
};

typedef struct {
    edge_pool *pool;
    size_t index;  // participant number, 1...participants-1
} worker_arg;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void run_stride(edge_pool *p, size_t first) {
    for (size_t i = first; i < p->n; i += p->participants) p->fn(p->ctx, i);
}

static void *worker_main(void *arg) {
    worker_arg a = *(worker_arg *)arg;
    free(arg);
    edge_pool *p = a.pool;
    uint64_t seen = 0;  // the generation at creation: no job is published before every worker exists
    for (;;) {
        uint64_t g = atomic_load_explicit(&p->generation, memory_order_acquire);
        if (g == seen) {
            uint64_t start = now_ns();
            for (unsigned spins = 1;; spins++) {
                cpu_relax();
                g = atomic_load_explicit(&p->generation, memory_order_acquire);
                if (g != seen) break;
                if ((spins & 255) == 0) {
                    if (now_ns() - start > EDGE_POOL_SPIN_NS) break;
                    sched_yield();  // lets a runnable thread in when the cores are oversubscribed
                }
            }
        }
        if (g == seen) {  // idle: sleep until the next job
            pthread_mutex_lock(&p->lock);
            atomic_fetch_add_explicit(&p->sleepers, 1, memory_order_seq_cst);
            while ((g = atomic_load_explicit(&p->generation, memory_order_seq_cst)) == seen)
                pthread_cond_wait(&p->wake, &p->lock);
            atomic_fetch_sub_explicit(&p->sleepers, 1, memory_order_relaxed);
            pthread_mutex_unlock(&p->lock);
        }
        seen = g;
        if (p->stop) return NULL;
        run_stride(p, a.index);
        atomic_fetch_add_explicit(&p->finished, 1, memory_order_release);
    }
}

edge_pool *edge_pool_create(size_t participants) {
    if (participants == 0) participants = 1;
    edge_pool *p = (edge_pool *)calloc(1, sizeof *p);
    if (!p) return NULL;
    p->participants = participants;
    atomic_init(&p->generation, 0);
    atomic_init(&p->finished, 0);
    atomic_init(&p->sleepers, 0);
    atomic_flag_clear(&p->busy);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    p->threads = (pthread_t *)calloc(participants, sizeof(pthread_t));
    if (!p->threads) { free(p); return NULL; }
    for (size_t i = 1; i < participants; i++) {
        worker_arg *a = (worker_arg *)malloc(sizeof *a);
        if (a) *a = (worker_arg){.pool = p, .index = i};
        if (!a || pthread_create(&p->threads[i], NULL, worker_main, a) != 0) {
            free(a);
            p->participants = i;  // the workers started so far; stop and join them
            edge_pool_destroy(p);
            return NULL;
        }
    }
    return p;
}

/// Publishes the job in p->n/fn/ctx/stop to the workers.
static void publish(edge_pool *p) {
    atomic_store_explicit(&p->finished, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&p->sleepers, memory_order_seq_cst) > 0) {
        pthread_mutex_lock(&p->lock);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->lock);
    }
}

void edge_pool_destroy(edge_pool *pool) {
    if (!pool) return;
    pool->stop = true;
    publish(pool);
    for (size_t i = 1; i < pool->participants; i++) pthread_join(pool->threads[i], NULL);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
    free(pool->threads);
    free(pool);
}

size_t edge_pool_participants(const edge_pool *pool) { return pool->participants; }

bool edge_pool_run(edge_pool *p, size_t n, edge_pool_fn fn, void *ctx) {
    if (atomic_flag_test_and_set_explicit(&p->busy, memory_order_acquire)) return false;
    size_t workers = p->participants - 1;
    if (n <= 1 || workers == 0) {
        for (size_t i = 0; i < n; i++) fn(ctx, i);
    } else {
        p->n = n;
        p->fn = fn;
        p->ctx = ctx;
        publish(p);
        run_stride(p, 0);
        for (unsigned spins = 1; atomic_load_explicit(&p->finished, memory_order_acquire) < workers; spins++) {
            cpu_relax();
            if ((spins & 1023) == 0) sched_yield();  // a descheduled worker gets the core back sooner
        }
    }
    atomic_flag_clear_explicit(&p->busy, memory_order_release);
    return true;
}
