/* The physical int8 limit of one core, measured: a throughput loop of the path's multiply
 * instruction (TDPBSSD on AMX, vpdpbusd zmm / ymm; on AVX2 vpmaddubsw and the vpmaddwd that widens
 * its int16 pair sums to int32, which int8 MACs into int32 need there and which share its
 * multiply ports: the pair gives 32 MACs) timed against the core clock,
 * which a chain of dependent imul (3 cycles each on every x86 core since 2006) measures.
 * peak_core() returns int8 MACs per cycle and the clock in GHz from the fastest of a few short
 * trials of each loop, timed in the thread's own CPU time: time spent preempted on a shared
 * machine does not count, and what still slows a trial (a virtual CPU's stolen time) is taken
 * out by keeping the fastest. */
#include <time.h>

/* Seconds on `clock`: the thread's CPU time for one core's peak, the wall clock for threads together. */
static double seconds(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#ifdef POUW_X86

enum { PEAK_CHAINS = 12, PEAK_TRIALS = 15 };

/* 8 imul per iteration, 3 cycles each. */
__attribute__((noinline)) static uint64_t imul_chain(long iters) {
    uint64_t v = 3;
    for (long i = 0; i < iters; i++)
        __asm__ volatile("imul %0, %0\n\timul %0, %0\n\timul %0, %0\n\timul %0, %0\n\t"
                         "imul %0, %0\n\timul %0, %0\n\timul %0, %0\n\timul %0, %0" : "+r"(v));
    return v;
}

/* PEAK_CHAINS independent accumulators, so that latency never limits the issue rate; the empty asm
 * keeps them in registers and the loop from being folded away. */
#define PEAK_LOOP(T, ZERO, OP)                                                                   \
    T s0 = ZERO, s1 = ZERO, s2 = ZERO, s3 = ZERO, s4 = ZERO, s5 = ZERO, s6 = ZERO, s7 = ZERO,    \
      s8 = ZERO, s9 = ZERO, s10 = ZERO, s11 = ZERO;                                              \
    for (long it = 0; it < iters; it++) {                                                        \
        s0 = OP(s0), s1 = OP(s1), s2 = OP(s2), s3 = OP(s3), s4 = OP(s4), s5 = OP(s5);            \
        s6 = OP(s6), s7 = OP(s7), s8 = OP(s8), s9 = OP(s9), s10 = OP(s10), s11 = OP(s11);        \
        __asm__ volatile("" : "+x"(s0), "+x"(s1), "+x"(s2), "+x"(s3), "+x"(s4), "+x"(s5),        \
                         "+x"(s6), "+x"(s7), "+x"(s8), "+x"(s9), "+x"(s10), "+x"(s11));          \
    }                                                                                            \
    __asm__ volatile("" : : "x"(s0), "x"(s1), "x"(s2), "x"(s3), "x"(s4), "x"(s5), "x"(s6),       \
                     "x"(s7), "x"(s8), "x"(s9), "x"(s10), "x"(s11))

__attribute__((target("avx512f,avx512bw,avx512vnni"), noinline)) static void peak_loop_avx512(long iters) {
    const __m512i u = _mm512_set1_epi8(3), s = _mm512_set1_epi8(-5);
#define OP512(x) _mm512_dpbusd_epi32(x, u, s)
    PEAK_LOOP(__m512i, _mm512_setzero_si512(), OP512);
#undef OP512
}

__attribute__((target("avx2,avxvnni"), noinline)) static void peak_loop_avxvnni(long iters) {
    const __m256i u = _mm256_set1_epi8(3), s = _mm256_set1_epi8(-5);
#define OPVNNI(x) _mm256_dpbusd_avx_epi32(x, u, s)
    PEAK_LOOP(__m256i, _mm256_setzero_si256(), OPVNNI);
#undef OPVNNI
}

__attribute__((target("avx2"), noinline)) static void peak_loop_avx2(long iters) {
    const __m256i s = _mm256_set1_epi8(-5), ones = _mm256_set1_epi16(1);
#define OPMADD(x) _mm256_madd_epi16(_mm256_maddubs_epi16(x, s), ones)
    PEAK_LOOP(__m256i, _mm256_set1_epi8(3), OPMADD);
#undef OPMADD
}
#undef PEAK_LOOP
#endif

typedef struct {
    void (*loop)(long);
    double macs_per_op;   /* a TDPBSSD is 16 × 16 × 64 MACs */
    int chains;           /* ops an iteration: the AMX loop runs 4, the others PEAK_CHAINS */
    long iters;
} peak_loop_t;

/* The path's throughput loop (loop NULL where nothing is measured). */
static peak_loop_t peak_loop_of(int path) {
    peak_loop_t L = {NULL, 32, PEAK_CHAINS, 1 << 19};
#ifdef POUW_X86
    L.loop = path == PATH_AVX512 ? peak_loop_avx512 : path == PATH_AVXVNNI ? peak_loop_avxvnni
           : path == PATH_AVX2 ? peak_loop_avx2 : NULL;
    if (path == PATH_AVX512) L.macs_per_op = 64;
#ifdef POUW_AMX
    if (path == PATH_AMX) L = (peak_loop_t){peak_loop_amx, 16384, 4, 1 << 15};
#endif
#else
    (void)path;
#endif
    return L;
}

/* MACs per cycle of one core on `path` and the clock (GHz); 0, 0 where nothing is measured. */
static void peak_core(int path, double *macs_per_cycle, double *ghz) {
    *macs_per_cycle = *ghz = 0;
#ifdef POUW_X86
    const peak_loop_t L = peak_loop_of(path);
    if (!L.loop) return;
    const long clock_iters = 1 << 20;
    double hz = 0, ops = 0;
    for (int trial = 0; trial < PEAK_TRIALS; trial++) {
        double t = seconds(CLOCK_THREAD_CPUTIME_ID);
        imul_chain(clock_iters);
        const double trial_hz = 24.0 * clock_iters / (seconds(CLOCK_THREAD_CPUTIME_ID) - t);
        t = seconds(CLOCK_THREAD_CPUTIME_ID);
        L.loop(L.iters);
        const double trial_ops = (double)L.chains * L.iters / (seconds(CLOCK_THREAD_CPUTIME_ID) - t);
        hz = trial_hz > hz ? trial_hz : hz, ops = trial_ops > ops ? trial_ops : ops;
    }
    *macs_per_cycle = L.macs_per_op * ops / hz;
    *ghz = hz / 1e9;
#else
    (void)path;
#endif
}

typedef struct {
    peak_loop_t L;
    const int *go;
} peak_run_t;

static void *peak_run(void *arg) {
    const peak_run_t *run = arg;
    while (!__atomic_load_n(run->go, __ATOMIC_ACQUIRE)) {
    }
    run->L.loop(run->L.iters);
    return NULL;
}

/* int8 MACs per second of `threads` threads running the path's loop at once: the fastest of a few
 * trials, by the wall clock from their common start until the last is done.  Where threads share
 * a core's vector units (SMT siblings, or virtual CPUs that are), this is far below threads × one
 * core's figure.  0 where nothing is measured; −1 where the threads could not be started. */
static double peak_together(int path, int threads) {
    const peak_loop_t L = peak_loop_of(path);
    if (!L.loop) return 0;
    pthread_t *tid = malloc((size_t)threads * sizeof *tid);
    if (!tid) return -1;
    double best = 0;
    for (int trial = 0; trial < PEAK_TRIALS && best >= 0; trial++) {
        int go = 0, started = 0;
        const peak_run_t run = {L, &go};
        while (started < threads - 1 && pthread_create(&tid[started], NULL, peak_run, (void *)&run) == 0) started++;
        const double t = seconds(CLOCK_MONOTONIC);
        __atomic_store_n(&go, 1, __ATOMIC_RELEASE);
        L.loop(L.iters);
        for (int i = 0; i < started; i++) pthread_join(tid[i], NULL);
        const double trial = L.macs_per_op * L.chains * (double)L.iters * threads / (seconds(CLOCK_MONOTONIC) - t);
        best = started < threads - 1 ? -1 : trial > best ? trial : best;
    }
    free(tid);
    return best;
}
