/* A cache of large memory blocks for the arrays fastsm returns.
 *
 * glibc serves a block above its mmap threshold (at most 32 MiB) with a fresh
 * mmap and unmaps it on free, so a large result page-faults all of its memory
 * on every call; below it, freeing the top of the heap returns memory to
 * the system once more than twice the threshold is free there, so two
 * results of a mebibyte made and freed together fault on every call too.
 * This allocator keeps a bounded set of freed large blocks mapped and hands
 * them out again.
 *
 * Blocks of at least `min_block` bytes are mapped with mmap (from 2 MiB up,
 * 2 MiB aligned and advised as huge pages where the system has them);
 * smaller ones come from malloc.  A header just before the data says which
 * it is, how large and where its memory starts, so free and realloc need no
 * size from the caller.  Data pointers are aligned to 64 bytes (mapped
 * blocks) or malloc's alignment (small ones).  A mapped block's data may be
 * placed at a chosen offset in its page (fsm_cache_malloc_at).
 *
 * A freed mapped block is kept when it fits the cache's bounds (at most
 * `capacity` bytes in at most `max_blocks` blocks), evicting the least
 * recently freed ones; blocks evicted or too large are unmapped.  A request is
 * served from the smallest cached block at least its size and at most a
 * quarter larger.  Each cache has a mutex; none is held when a function
 * returns, and fsm_cache_lock/fsm_cache_unlock let a pthread_atfork handler
 * keep the cache consistent across fork. */
#ifndef FASTSM_RESULT_CACHE_H
#define FASTSM_RESULT_CACHE_H

#include <stddef.h>

typedef struct fsm_cache fsm_cache;

/* A new, empty cache (NULL when out of memory); it lives as long as the process. */
fsm_cache *fsm_cache_new(size_t min_block, size_t capacity, int max_blocks);

/* malloc, calloc, realloc and free for blocks of this cache (NULL on failure;
 * free and realloc accept NULL).  Zero sizes give a valid, unique block. */
void *fsm_cache_malloc(fsm_cache *cache, size_t size);

/* fsm_cache_malloc, with a mapped block's data at page_offset (rounded down
 * to a multiple of 64) from the start of a 4096-byte page; a small block
 * ignores it.  An output placed well apart from its input in the low 12
 * address bits keeps a kernel's loads of the input from waiting on its
 * stores to the output (4K aliasing). */
void *fsm_cache_malloc_at(fsm_cache *cache, size_t size, size_t page_offset);
void *fsm_cache_calloc(fsm_cache *cache, size_t count, size_t size);
void *fsm_cache_realloc(fsm_cache *cache, void *ptr, size_t size);
void fsm_cache_free(fsm_cache *cache, void *ptr);

/* Unmaps every cached block; returns the bytes unmapped. */
size_t fsm_cache_release(fsm_cache *cache);

/* The bytes and number of blocks cached now (free blocks, not those in use). */
void fsm_cache_usage(fsm_cache *cache, size_t *bytes, int *blocks);

void fsm_cache_lock(fsm_cache *cache);
void fsm_cache_unlock(fsm_cache *cache);

#endif
