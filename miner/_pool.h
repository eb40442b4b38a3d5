/* Worker threads that persist across calls: a call wakes them instead of spawning new ones.
 *
 * pool_run(fn, arg, threads) runs fn(arg) on `threads` threads (the caller is one of them) and
 * returns nonzero if any returned non-NULL.  The work inside fn is taken from a shared counter,
 * so the threads split it evenly whatever their speed.  One run at a time: a second caller waits
 * (pool_run) or does the work alone (pool_run_or_alone).
 * Workers are started on first use (more when a call asks for more) and sleep between runs; a
 * forked child starts with none (they do not survive fork).  On Linux they are named pouw-kernel. */
#include <pthread.h>

typedef void *(*pool_fn)(void *);

static struct {
    pthread_mutex_t call, lock;
    pthread_cond_t wake, done;
    int started, want, pending, failed;
    unsigned long generation;
    pool_fn fn;
    void *arg;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
          PTHREAD_COND_INITIALIZER};

static void *pool_main(void *index_ptr) {
    const int index = (int)(intptr_t)index_ptr;
#ifdef __linux__
    pthread_setname_np(pthread_self(), "pouw-kernel");
#endif
    pthread_mutex_lock(&pool.lock);
    /* started by pool_run for the run it is about to announce: that run is ours to join */
    unsigned long seen = pool.generation - 1;
    for (;;) {
        while (pool.generation == seen) pthread_cond_wait(&pool.wake, &pool.lock);
        seen = pool.generation;
        if (index >= pool.want) continue;
        const pool_fn fn = pool.fn;
        void *arg = pool.arg;
        pthread_mutex_unlock(&pool.lock);
        const int failed = fn(arg) != NULL;
        pthread_mutex_lock(&pool.lock);
        pool.failed |= failed;
        if (--pool.pending == 0) pthread_cond_signal(&pool.done);
    }
    return NULL;
}

static void pool_after_fork(void) {
    pthread_mutex_init(&pool.call, NULL);
    pthread_mutex_init(&pool.lock, NULL);
    pthread_cond_init(&pool.wake, NULL);
    pthread_cond_init(&pool.done, NULL);
    pool.started = pool.want = pool.pending = 0;
}

static void register_fork_handler(void) { pthread_atfork(NULL, NULL, pool_after_fork); }

/* The run itself, pool.call held. */
static int pool_run_held(pool_fn fn, void *arg, int threads) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, register_fork_handler);
    pthread_mutex_lock(&pool.lock);
    /* a worker is told its index when started; one that fails to start leaves the rest to us */
    while (pool.started < threads - 1) {
        pthread_t tid;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        const int err = pthread_create(&tid, &attr, pool_main, (void *)(intptr_t)pool.started);
        pthread_attr_destroy(&attr);
        if (err) break;
        pool.started++;
    }
    const int helpers = threads - 1 < pool.started ? threads - 1 : pool.started;
    pool.fn = fn, pool.arg = arg, pool.want = helpers, pool.pending = helpers, pool.failed = 0;
    pool.generation++;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    const int failed = fn(arg) != NULL;
    pthread_mutex_lock(&pool.lock);
    while (pool.pending) pthread_cond_wait(&pool.done, &pool.lock);
    const int any_failed = failed | pool.failed;
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&pool.call);
    return any_failed;
}

static int pool_run(pool_fn fn, void *arg, int threads) {
    pthread_mutex_lock(&pool.call);
    return pool_run_held(fn, arg, threads);
}

/* pool_run, or fn(arg) on the caller alone while another run holds the pool: for work beside a
 * mining call (hashing a matrix), which should neither wait for it nor add threads to it. */
static int pool_run_or_alone(pool_fn fn, void *arg, int threads) {
    if (pthread_mutex_trylock(&pool.call)) return fn(arg) != NULL;
    return pool_run_held(fn, arg, threads);
}
