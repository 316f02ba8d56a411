#define _DEFAULT_SOURCE /* MAP_ANONYMOUS and madvise under -std=c99 */

#include "result_cache.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Mapped blocks of a huge page or more are multiples of one and aligned to
 * one, so that the kernel can back them with huge pages (fewer page faults
 * and TLB misses); smaller ones are multiples of a page, mapped as they come
 * (rounding them to a huge page would double a 1 MiB block). */
#define HUGE_PAGE ((size_t)2 << 20)
#define PAGE ((size_t)4096)
#define MAX_SLOTS 16

/* Sits just before the data; 64 bytes keep the data 64-byte aligned. */
typedef union {
    struct {
        size_t size;   /* bytes asked for */
        size_t mapped; /* length of the mapping the block starts, 0 for malloc */
        size_t lead;   /* bytes from the start of the mapping (or malloc block) to the data */
    } h;
    unsigned char pad[64];
} block_header;

typedef struct {
    void *base;    /* start of the mapping */
    size_t length; /* its length */
} cached_block;

struct fsm_cache {
    pthread_mutex_t mutex;
    size_t min_block, capacity, bytes;
    int max_blocks, count;
    cached_block blocks[MAX_SLOTS]; /* least recently freed first */
};

static inline block_header *header_of(void *data)
{
    return (block_header *)data - 1;
}

static inline void *base_of(void *data)
{
    return (unsigned char *)data - header_of(data)->h.lead;
}

/* The data of a block starting at `base` whose data starts `lead` bytes in
 * (at least a header), with its header filled in. */
static void *place(void *base, size_t lead, size_t size, size_t mapped)
{
    void *data = (unsigned char *)base + lead;
    block_header *header = header_of(data);
    header->h.size = size;
    header->h.mapped = mapped;
    header->h.lead = lead;
    return data;
}

/* The mapping length a block of `size` data bytes needs, with room for the
 * header and for placing the data at any offset in a page; 0 on overflow. */
static inline size_t mapped_length(size_t size)
{
    if (size > SIZE_MAX - PAGE - HUGE_PAGE)
        return 0;
    const size_t need = size + PAGE;
    const size_t unit = need < HUGE_PAGE ? PAGE : HUGE_PAGE;
    return (need + unit - 1) / unit * unit;
}

/* A fresh mapping of `length` bytes, or NULL.  A multiple of HUGE_PAGE is
 * aligned to HUGE_PAGE (one huge page more is mapped and both ends trimmed);
 * a shorter length is mapped as it is. */
static void *map_block(size_t length)
{
    if (length < HUGE_PAGE) {
        void *raw = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        return raw == MAP_FAILED ? NULL : raw;
    }
    if (length > SIZE_MAX - HUGE_PAGE)
        return NULL;
    size_t padded = length + HUGE_PAGE;
    unsigned char *raw = mmap(NULL, padded, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    size_t head = (HUGE_PAGE - (uintptr_t)raw % HUGE_PAGE) % HUGE_PAGE;
    if (head)
        munmap(raw, head);
    munmap(raw + head + length, HUGE_PAGE - head);
#ifdef MADV_HUGEPAGE
    madvise(raw + head, length, MADV_HUGEPAGE); /* advice only: failure is fine */
#endif
    return raw + head;
}

/* Takes the smallest cached block of at least `length` bytes and at most a
 * quarter more, or returns NULL; *length becomes the block's.  Called with
 * the mutex held. */
static void *take_cached(fsm_cache *cache, size_t *length_io)
{
    const size_t length = *length_io;
    int best = -1;
    for (int i = 0; i < cache->count; i++) {
        size_t have = cache->blocks[i].length;
        if (have >= length && have - length <= length / 4
                && (best < 0 || have < cache->blocks[best].length))
            best = i;
    }
    if (best < 0)
        return NULL;
    cached_block block = cache->blocks[best];
    memmove(&cache->blocks[best], &cache->blocks[best + 1],
            (size_t)(cache->count - best - 1) * sizeof(cached_block));
    cache->count--;
    cache->bytes -= block.length;
    *length_io = block.length;
    return block.base;
}

/* Makes room for a block of `length` bytes by dropping the least recently
 * freed blocks into `evicted`, then keeps it.  Returns how many were evicted.
 * Called with the mutex held, length <= capacity. */
static int keep_block(fsm_cache *cache, void *base, size_t length, cached_block *evicted)
{
    int drop = 0;
    size_t bytes = cache->bytes;
    while (cache->count - drop >= cache->max_blocks || bytes + length > cache->capacity) {
        evicted[drop] = cache->blocks[drop];
        bytes -= cache->blocks[drop].length;
        drop++;
    }
    memmove(&cache->blocks[0], &cache->blocks[drop],
            (size_t)(cache->count - drop) * sizeof(cached_block));
    cache->count -= drop;
    cache->blocks[cache->count++] = (cached_block){base, length};
    cache->bytes = bytes + length;
    return drop;
}

fsm_cache *fsm_cache_new(size_t min_block, size_t capacity, int max_blocks)
{
    fsm_cache *cache = calloc(1, sizeof *cache);
    if (cache == NULL)
        return NULL;
    if (pthread_mutex_init(&cache->mutex, NULL) != 0) {
        free(cache);
        return NULL;
    }
    cache->min_block = min_block;
    cache->capacity = capacity;
    cache->max_blocks = max_blocks < 1 ? 1 : max_blocks > MAX_SLOTS ? MAX_SLOTS : max_blocks;
    return cache;
}

void *fsm_cache_malloc_at(fsm_cache *cache, size_t size, size_t page_offset)
{
    if (size < cache->min_block) {
        if (size > SIZE_MAX - sizeof(block_header))
            return NULL;
        void *base = malloc(sizeof(block_header) + size);
        return base == NULL ? NULL : place(base, sizeof(block_header), size, 0);
    }
    size_t mapped = mapped_length(size);
    if (mapped == 0)
        return NULL;
    pthread_mutex_lock(&cache->mutex);
    void *base = take_cached(cache, &mapped); /* perhaps a little larger */
    pthread_mutex_unlock(&cache->mutex);
    if (base == NULL)
        base = map_block(mapped);
    if (base == NULL)
        return NULL;
    /* base is page aligned: the data lands at page_offset (64-byte aligned)
     * with at least a header before it */
    const size_t offset = page_offset % PAGE / 64 * 64;
    const size_t lead = offset < sizeof(block_header) ? offset + PAGE : offset;
    return place(base, lead, size, mapped);
}

void *fsm_cache_malloc(fsm_cache *cache, size_t size)
{
    return fsm_cache_malloc_at(cache, size, sizeof(block_header));
}

void *fsm_cache_calloc(fsm_cache *cache, size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        return NULL;
    void *data = fsm_cache_malloc(cache, count * size);
    if (data != NULL)
        memset(data, 0, count * size); /* a cached block holds old data */
    return data;
}

void fsm_cache_free(fsm_cache *cache, void *data)
{
    if (data == NULL)
        return;
    void *base = base_of(data);
    size_t mapped = header_of(data)->h.mapped;
    if (mapped == 0) {
        free(base);
        return;
    }
    if (mapped > cache->capacity) {
        munmap(base, mapped);
        return;
    }
    cached_block evicted[MAX_SLOTS];
    pthread_mutex_lock(&cache->mutex);
    int drop = keep_block(cache, base, mapped, evicted);
    pthread_mutex_unlock(&cache->mutex);
    for (int i = 0; i < drop; i++) /* unmapping takes time: not under the mutex */
        munmap(evicted[i].base, evicted[i].length);
}

void *fsm_cache_realloc(fsm_cache *cache, void *data, size_t size)
{
    if (data == NULL)
        return fsm_cache_malloc(cache, size);
    block_header *header = header_of(data);
    if (header->h.mapped == 0 && size < cache->min_block) {
        if (size > SIZE_MAX - sizeof(block_header))
            return NULL;
        void *moved = realloc(base_of(data), sizeof(block_header) + size);
        if (moved == NULL)
            return NULL;
        return place(moved, sizeof(block_header), size, 0);
    }
    if (header->h.mapped != 0 && mapped_length(size) == header->h.mapped) {
        header->h.size = size; /* fits the same mapping */
        return data;
    }
    void *moved = fsm_cache_malloc(cache, size);
    if (moved == NULL)
        return NULL;
    memcpy(moved, data, size < header->h.size ? size : header->h.size);
    fsm_cache_free(cache, data);
    return moved;
}

size_t fsm_cache_release(fsm_cache *cache)
{
    cached_block evicted[MAX_SLOTS];
    pthread_mutex_lock(&cache->mutex);
    int count = cache->count;
    size_t bytes = cache->bytes;
    memcpy(evicted, cache->blocks, (size_t)count * sizeof(cached_block));
    cache->count = 0;
    cache->bytes = 0;
    pthread_mutex_unlock(&cache->mutex);
    for (int i = 0; i < count; i++)
        munmap(evicted[i].base, evicted[i].length);
    return bytes;
}

void fsm_cache_usage(fsm_cache *cache, size_t *bytes, int *blocks)
{
    pthread_mutex_lock(&cache->mutex);
    *bytes = cache->bytes;
    *blocks = cache->count;
    pthread_mutex_unlock(&cache->mutex);
}

void fsm_cache_lock(fsm_cache *cache)
{
    pthread_mutex_lock(&cache->mutex);
}

void fsm_cache_unlock(fsm_cache *cache)
{
    pthread_mutex_unlock(&cache->mutex);
}
