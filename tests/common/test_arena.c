/* em_arena_alloc_align packs to the alignment asked for; em_slab hands out zeroed objects
 * of one size, reuses freed ones first, and releases everything at once; chunks freed on
 * another thread are collected by the thread that allocated them; em_populate backs the
 * whole pages inside a large block at once and changes nothing in it. */
#if defined(__linux__) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE /* mmap flags, mincore */
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "em_arena.h"
#include "em_compat.h"

#ifdef __linux__
#include <errno.h>
#include <sys/mman.h>
#endif

static void test_arena__alignment_asked_for(void **state)
{
    (void)state;
    struct em_arena a;
    em_arena_init(&a, 0);
    char *s1 = em_arena_alloc_align(&a, 3, 1), *s2 = em_arena_alloc_align(&a, 3, 1);
    assert_ptr_equal(s2, s1 + 3); /* strings pack byte to byte */
    uint64_t *w = em_arena_alloc_align(&a, sizeof(*w), 8);
    assert_int_equal((uintptr_t)w % 8, 0);
    assert_ptr_equal((char *)w, s1 + 8);         /* padded from 6 to 8 only */
    assert_null(em_arena_alloc_align(&a, 8, 3)); /* not a power of two */
    assert_null(em_arena_alloc_align(&a, 8, 0));
    for (int i = 0; i < 10000; i++) { /* across many chunks */
        uint64_t *v = em_arena_alloc_align(&a, 24, 8);
        assert_non_null(v);
        assert_int_equal((uintptr_t)v % 8, 0);
    }
    em_arena_free(&a);
}

struct obj {
    uint64_t a, b;
    char c;
};

static void test_slab__reuse_zeroed_release(void **state)
{
    (void)state;
    struct em_slab s;
    em_slab_init(&s, sizeof(struct obj));
    struct obj *o[100];
    for (int i = 0; i < 100; i++) {
        o[i] = em_slab_alloc(&s);
        assert_non_null(o[i]);
        assert_int_equal((uintptr_t)o[i] % 8, 0);
        assert_true(o[i]->a == 0 && o[i]->b == 0 && o[i]->c == 0);
        o[i]->a = o[i]->b = (uint64_t)i + 1;
        o[i]->c = 'x';
    }
    for (int i = 0; i < 100; i++) /* no two objects overlap */
        assert_true(o[i]->a == (uint64_t)i + 1 && o[i]->b == (uint64_t)i + 1);
    em_slab_free(&s, o[10]);
    em_slab_free(&s, o[20]);
    em_slab_free(&s, NULL);
    struct obj *r1 = em_slab_alloc(&s), *r2 = em_slab_alloc(&s);
    assert_ptr_equal(r1, o[20]); /* the last freed first */
    assert_ptr_equal(r2, o[10]);
    assert_true(r1->a == 0 && r1->b == 0 && r1->c == 0); /* zeroed again */
    em_slab_release(&s);
    struct obj *n = em_slab_alloc(&s); /* usable after a release */
    assert_non_null(n);
    assert_true(n->a == 0);
    em_slab_release(&s);
}

/* Chunks remember the thread (owner) that allocated them; a thread that collects puts the
 * chunks of other owners into its bin instead of freeing them, by owner, in order. */
struct owned {
    unsigned owner;
    struct em_arena arena;
};

static void alloc_as(void *arg)
{
    struct owned *o = arg;
    em_arena_set_owner(o->owner);
    em_arena_init(&o->arena, 0);
    for (int i = 0; i < 5; i++) /* 256, 512, 1024, 2048 and 4096 bytes: five chunks */
        assert_non_null(em_arena_alloc(&o->arena, 200 << i));
    em_arena_set_owner(0);
}

static size_t list_len(struct em_arena_chunk *c)
{
    size_t n = 0;
    for (; c; c = *(struct em_arena_chunk **)c) /* the link is a chunk's first member */
        n++;
    return n;
}

static void test_arena__frees_collected_by_owner(void **state)
{
    (void)state;
    struct owned a = {.owner = 3}, b = {.owner = 7}, none = {.owner = 0};
    uv_thread_t t;
    assert_int_equal(uv_thread_create(&t, alloc_as, &a), 0);
    uv_thread_join(&t);
    assert_int_equal(uv_thread_create(&t, alloc_as, &b), 0);
    uv_thread_join(&t);
    assert_int_equal(uv_thread_create(&t, alloc_as, &none), 0);
    uv_thread_join(&t);
    struct em_arena mine; /* this thread's own (owner 7 here): freed at once */
    em_arena_set_owner(7);
    em_arena_init(&mine, 0);
    assert_non_null(em_arena_alloc(&mine, 10));
    struct em_arena_bin bin;
    memset(&bin, 0, sizeof(bin));
    em_arena_collect(&bin);
    em_arena_free(&a.arena);
    em_arena_free(&b.arena);    /* owner 7 is this thread now: freed here */
    em_arena_free(&none.arena); /* no owner: freed at once */
    em_arena_free(&mine);
    char *s = strdup("a path of some length"), *tiny = malloc(2);
    assert_non_null(s);
    assert_non_null(tiny);
    em_arena_bin_put(&bin, 3, s, strlen(s) + 1);
    em_arena_bin_put(&bin, 3, tiny, 2); /* too small to link: freed at once */
    em_arena_collect(NULL);
    em_arena_set_owner(0);
    assert_int_equal(bin.count, 6);
    assert_int_equal(bin.n[3], 6);
    assert_int_equal(bin.n[7], 0);
    struct em_arena_bin other;
    memset(&other, 0, sizeof(other));
    em_arena_bin_move(&other, &bin);
    assert_int_equal(bin.count, 0);
    assert_null(em_arena_bin_take(&bin, 3));
    assert_int_equal(other.count, 6);
    struct em_arena_chunk *l = em_arena_bin_take(&other, 3);
    assert_int_equal(list_len(l), 6);
    assert_int_equal(other.count, 0);
    assert_int_equal(other.n[3], 0);
    em_arena_chunks_free(l);
    em_arena_bin_free(&other); /* empty: nothing happens */
    /* Not collecting any more: freed at once, nothing kept. */
    em_arena_init(&a.arena, 0);
    assert_non_null(em_arena_alloc(&a.arena, 1));
    em_arena_free(&a.arena);
}

#ifdef __linux__
/* Pages of [p, p + len) (page-aligned) that are in memory. */
static size_t resident(void *p, size_t len)
{
    unsigned char vec[1024];
    size_t pages = len / 4096, n = 0;
    assert_true(pages <= sizeof(vec));
    assert_int_equal(mincore(p, len, vec), 0);
    for (size_t i = 0; i < pages; i++)
        n += vec[i] & 1;
    return n;
}
#endif

static void test_populate__whole_pages_inside_unchanged(void **state)
{
    (void)state;
#ifdef __linux__
    size_t len = (size_t)1 << 20, pages = len / 4096;
    unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    /* Whether this kernel can (5.14 and later): em_populate does nothing otherwise. */
    errno = 0;
    if (madvise(p + len - 4096, 4096, 23 /* MADV_POPULATE_WRITE */) != 0 && errno == EINVAL) {
        munmap(p, len);
        skip();
    }
    memset(p + 4096, 0x5a, 100); /* page 1 written: its bytes must survive */
    assert_int_equal(resident(p, len), 2);
    /* From the middle of page 0 to the middle of the last page: only the whole pages
     * inside are populated, so pages 0 and the last stay as they were (0 is not in). */
    em_populate(p + 100, len - 200);
    assert_int_equal(resident(p, 4096), 0);
    assert_int_equal(resident(p, len), pages - 1);
    for (size_t i = 0; i < len; i++)
        if (p[i] != (i >= 4096 && i < 4196 ? 0x5a : 0))
            fail_msg("byte %zu changed to %u", i, p[i]);
    munmap(p, len);
    /* Under 64 KiB: left to page faults. */
    len = (size_t)32 << 10;
    p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    em_populate(p, len);
    assert_int_equal(resident(p, len), 0);
    munmap(p, len);
#else
    skip();
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arena__alignment_asked_for),
        cmocka_unit_test(test_slab__reuse_zeroed_release),
        cmocka_unit_test(test_arena__frees_collected_by_owner),
        cmocka_unit_test(test_populate__whole_pages_inside_unchanged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
