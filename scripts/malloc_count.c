/*
 * Counts calls to the C allocator (malloc, calloc, realloc, posix_memalign, aligned_alloc,
 * memalign, valloc) in a whole process: the allocations ONNX Runtime (C++) and SQLite (C)
 * make, which a Rust global allocator never sees. For tests/alloc_hot_path.rs, which reads
 * the count through `endface_c_allocations` when this library is preloaded:
 *
 *   cc -O2 -shared -fPIC -o target/malloc_count.so scripts/malloc_count.c -ldl
 *   LD_PRELOAD=$PWD/target/malloc_count.so \
 *       cargo test --release --test alloc_hot_path -- --nocapture
 *
 * Rust's own allocations go through malloc too (std's System allocator), so they are
 * counted here as well: C-side calls = this count - the Rust count.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static atomic_ulong calls;

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static void *(*real_memalign)(size_t, size_t);
static void *(*real_valloc)(size_t);

/* dlsym may calloc before the real functions are known: serve that from here. */
static _Alignas(16) char boot[8192];
static size_t boot_used;
static int initializing;

static int in_boot(void *p) {
    return (char *)p >= boot && (char *)p < boot + sizeof boot;
}

static void *boot_alloc(size_t n) {
    size_t at = (boot_used + 15) & ~(size_t)15;
    if (at + n > sizeof boot) return NULL;
    boot_used = at + n;
    return boot + at;
}

static void init(void) {
    if (real_malloc || initializing) return;
    initializing = 1;
    real_malloc = dlsym(RTLD_NEXT, "malloc");
    real_calloc = dlsym(RTLD_NEXT, "calloc");
    real_realloc = dlsym(RTLD_NEXT, "realloc");
    real_free = dlsym(RTLD_NEXT, "free");
    real_posix_memalign = dlsym(RTLD_NEXT, "posix_memalign");
    real_aligned_alloc = dlsym(RTLD_NEXT, "aligned_alloc");
    real_memalign = dlsym(RTLD_NEXT, "memalign");
    real_valloc = dlsym(RTLD_NEXT, "valloc");
    initializing = 0;
}

unsigned long endface_c_allocations(void) { return atomic_load(&calls); }

void *malloc(size_t n) {
    init();
    if (!real_malloc) return boot_alloc(n);
    atomic_fetch_add(&calls, 1);
    return real_malloc(n);
}

void *calloc(size_t a, size_t b) {
    init();
    if (!real_calloc) {
        void *p = boot_alloc(a * b);
        if (p) memset(p, 0, a * b);
        return p;
    }
    atomic_fetch_add(&calls, 1);
    return real_calloc(a, b);
}

void *realloc(void *p, size_t n) {
    init();
    if (in_boot(p)) {
        void *q = malloc(n);
        if (q) memcpy(q, p, n);
        return q;
    }
    atomic_fetch_add(&calls, 1);
    return real_realloc(p, n);
}

void free(void *p) {
    if (!p || in_boot(p)) return;
    init();
    if (real_free) real_free(p);
}

int posix_memalign(void **out, size_t align, size_t n) {
    init();
    atomic_fetch_add(&calls, 1);
    return real_posix_memalign(out, align, n);
}

void *aligned_alloc(size_t align, size_t n) {
    init();
    atomic_fetch_add(&calls, 1);
    return real_aligned_alloc(align, n);
}

void *memalign(size_t align, size_t n) {
    init();
    atomic_fetch_add(&calls, 1);
    return real_memalign(align, n);
}

void *valloc(size_t n) {
    init();
    atomic_fetch_add(&calls, 1);
    return real_valloc(n);
}
