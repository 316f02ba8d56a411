/* The result cache alone: block contents survive every realloc path, calloc
 * zeroes a reused block, data lands at the page offset asked for, the bounds
 * hold, eviction drops the least recently freed block, release empties the
 * cache, and threads may share it.  Built
 * with AddressSanitizer and UndefinedBehaviorSanitizer by the Makefile. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "result_cache.h"

#define MIB ((size_t)1 << 20)
#define MIN_BLOCK (4 * MIB)
#define CAPACITY (64 * MIB)
#define MAX_BLOCKS 4

static long failures;
static fsm_cache *cache; /* lives as long as the process, as in the module */

/* The mapping a block of `size` bytes takes: a page for the header and the
 * data's offset, and huge-page rounding. */
static size_t mapping(size_t size)
{
    return (size + 4096 + 2 * MIB - 1) / (2 * MIB) * (2 * MIB);
}

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                      \
        }                                                                    \
    } while (0)

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 131 + seed);
}

static int holds(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(i * 131 + seed))
            return 0;
    return 1;
}

static size_t cached_bytes(int *blocks)
{
    size_t bytes;
    fsm_cache_usage(cache, &bytes, blocks);
    return bytes;
}

static void check_alignment_and_reuse(void)
{
    unsigned char *small = fsm_cache_malloc(cache, 100), *large = fsm_cache_malloc(cache, 5 * MIB);
    CHECK(small && large);
    CHECK((uintptr_t)small % 16 == 0 && (uintptr_t)large % 64 == 0);
    fill(small, 100, 1);
    fill(large, 5 * MIB, 2);
    fsm_cache_free(cache, small);
    int blocks;
    CHECK(cached_bytes(&blocks) == 0 && blocks == 0); /* small blocks go to malloc */
    fsm_cache_free(cache, large);
    CHECK(cached_bytes(&blocks) >= 5 * MIB && blocks == 1);
    unsigned char *again = fsm_cache_malloc(cache, 5 * MIB - 1000);
    CHECK(again == large); /* the same block, a little smaller request */
    unsigned char *dirty = fsm_cache_calloc(cache, MIB, 6);
    fill(dirty, 6 * MIB, 3);
    fsm_cache_free(cache, dirty);
    unsigned char *zeroed = fsm_cache_calloc(cache, 3 * MIB, 2);
    CHECK(zeroed == dirty); /* the dirty block, reused */
    int all_zero = 1;
    for (size_t i = 0; i < 6 * MIB; i++)
        all_zero &= zeroed[i] == 0;
    CHECK(all_zero);
    CHECK(fsm_cache_calloc(cache, SIZE_MAX / 2, 4) == NULL); /* overflow */
    CHECK(fsm_cache_malloc(cache, SIZE_MAX - 10) == NULL);
    fsm_cache_free(cache, zeroed);
    fsm_cache_free(cache, again);
    fsm_cache_release(cache);
    void *big = fsm_cache_malloc(cache, 40 * MIB);
    fsm_cache_free(cache, big);
    void *modest = fsm_cache_malloc(cache, 8 * MIB); /* would waste most of the big block */
    CHECK(modest != big && cached_bytes(&blocks) == mapping(40 * MIB) && blocks == 1);
    fsm_cache_free(cache, modest);
    fsm_cache_free(cache, NULL);
    unsigned char *empty = fsm_cache_malloc(cache, 0);
    CHECK(empty != NULL);
    fsm_cache_free(cache, empty);
    fsm_cache_release(cache);
}

static void check_realloc(void)
{
    /* small -> small -> large -> larger -> same mapping -> small, contents kept */
    size_t sizes[] = {10, 1000, 5 * MIB, 13 * MIB, 13 * MIB - 5, 7, 9 * MIB};
    unsigned char *p = fsm_cache_realloc(cache, NULL, sizes[0]);
    fill(p, sizes[0], 4);
    for (size_t i = 1; i < sizeof sizes / sizeof *sizes; i++) {
        size_t kept = sizes[i - 1] < sizes[i] ? sizes[i - 1] : sizes[i];
        unsigned char *before = p;
        p = fsm_cache_realloc(cache, p, sizes[i]);
        CHECK(p != NULL && holds(p, kept, 4));
        if (i == 4)
            CHECK(p == before); /* within the same mapping: not moved */
        fill(p, sizes[i], 4);
    }
    fsm_cache_free(cache, p);
    fsm_cache_release(cache);
}

static void check_page_offsets(void)
{
    /* every 64-byte offset in a page, on fresh and on reused blocks, with the
     * whole block writable and freed by its data pointer alone */
    size_t offsets[] = {0, 16, 64, 100, 2048, 2064, 4032, 4095, 4096 + 128};
    for (size_t i = 0; i < sizeof offsets / sizeof *offsets; i++) {
        const size_t size = 5 * MIB + 1000 * i, want = offsets[i] % 4096 / 64 * 64;
        unsigned char *p = fsm_cache_malloc_at(cache, size, offsets[i]);
        CHECK(p != NULL && (uintptr_t)p % 4096 == want);
        fill(p, size, 7);
        p = fsm_cache_realloc(cache, p, size + 10); /* the same mapping: not moved */
        CHECK((uintptr_t)p % 4096 == want && holds(p, size, 7));
        fsm_cache_free(cache, p);
    }
    int blocks;
    CHECK(cached_bytes(&blocks) == mapping(5 * MIB + 8000) && blocks == 1); /* one block, reused */
    unsigned char *small = fsm_cache_malloc_at(cache, 100, 2048); /* malloc's: offset ignored */
    CHECK(small != NULL && (uintptr_t)small % 16 == 0);
    fill(small, 100, 8);
    small = fsm_cache_realloc(cache, small, 5000);
    CHECK(small != NULL && holds(small, 100, 8));
    fsm_cache_free(cache, small);
    fsm_cache_release(cache);
}

static void check_bounds(void)
{
    void *blocks[12];
    for (int i = 0; i < 12; i++)
        blocks[i] = fsm_cache_malloc(cache, (size_t)(4 + 3 * i) * MIB);
    void *too_large = fsm_cache_malloc(cache, CAPACITY + MIB);
    fsm_cache_free(cache, too_large);
    int count;
    CHECK(cached_bytes(&count) == 0 && count == 0); /* larger than the cache: unmapped */
    for (int i = 0; i < 12; i++) {
        fsm_cache_free(cache, blocks[i]);
        CHECK(cached_bytes(&count) <= CAPACITY && count <= MAX_BLOCKS);
    }
    void *recent = fsm_cache_malloc(cache, 37 * MIB);
    CHECK(recent == blocks[11]); /* the most recently freed block is kept */
    fsm_cache_free(cache, recent);
    fsm_cache_release(cache);

    /* a fifth block evicts the least recently freed one */
    for (int i = 0; i < 5; i++)
        blocks[i] = fsm_cache_malloc(cache, (size_t)(4 + 2 * i) * MIB);
    for (int i = 0; i < 5; i++)
        fsm_cache_free(cache, blocks[i]);
    size_t held = cached_bytes(&count), want = 0;
    for (int i = 1; i < 5; i++)
        want += mapping((size_t)(4 + 2 * i) * MIB);
    CHECK(held == want && count == 4);
    CHECK(held > 0 && fsm_cache_release(cache) == held);
    CHECK(cached_bytes(&count) == 0 && count == 0 && fsm_cache_release(cache) == 0);
}

/* Blocks under a huge page are mapped in whole pages, not rounded to a huge
 * page, and come back for a request of about their size. */
static fsm_cache *small; /* a cache of blocks from 256 KiB, kept as `cache` is */

static void check_small_blocks(void)
{
    small = fsm_cache_new(256 * 1024, CAPACITY, MAX_BLOCKS);
    CHECK(small != NULL);
    const size_t size = 300 * 1024, page_rounded = (size + 64 + 4095) / 4096 * 4096;
    unsigned char *a = fsm_cache_malloc(small, size), *b = fsm_cache_malloc(small, MIB);
    CHECK(a && b && (uintptr_t)a % 64 == 0 && (uintptr_t)b % 64 == 0);
    fill(a, size, 5);
    fill(b, MIB, 6);
    fsm_cache_free(small, a);
    fsm_cache_free(small, b);
    int count;
    size_t held;
    fsm_cache_usage(small, &held, &count);
    CHECK(count == 2 && held == page_rounded + (MIB + 64 + 4095) / 4096 * 4096);
    unsigned char *again = fsm_cache_malloc(small, size - 1000), *big = fsm_cache_malloc(small, MIB);
    CHECK(again == a && big == b);
    fill(again, size - 1000, 7);
    CHECK(holds(again, size - 1000, 7));
    fsm_cache_free(small, again);
    fsm_cache_free(small, big);
    CHECK(fsm_cache_release(small) == held);
}

static void *churn(void *arg)
{
    (void)arg;
    for (unsigned round = 0; round < 200; round++) {
        size_t size = (4 + round % 7) * MIB;
        unsigned char *p = fsm_cache_malloc(cache, size);
        fill(p, 4096, round);
        p = fsm_cache_realloc(cache, p, size + MIB);
        if (!holds(p, 4096, round))
            __atomic_fetch_add(&failures, 1, __ATOMIC_RELAXED);
        fsm_cache_free(cache, p);
        if (round % 50 == 0)
            fsm_cache_release(cache);
    }
    return NULL;
}

static void check_threads(void)
{
    pthread_t threads[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&threads[i], NULL, churn, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(threads[i], NULL);
    int count;
    CHECK(cached_bytes(&count) <= CAPACITY && count <= MAX_BLOCKS);
    fsm_cache_release(cache);
}

int main(void)
{
    cache = fsm_cache_new(MIN_BLOCK, CAPACITY, MAX_BLOCKS);
    CHECK(cache != NULL);
    check_alignment_and_reuse();
    check_realloc();
    check_page_offsets();
    check_bounds();
    check_small_blocks();
    check_threads();
    printf("result_cache_check: %ld failures\n", failures);
    return failures != 0;
}
