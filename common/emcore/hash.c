#include "hash.h"

#include <string.h>

#define P1 0x87c37b91114253d5ull
#define P2 0x4cf5ad432745937full

static uint64_t rotl(uint64_t x, unsigned r)
{
    return (x << r) | (x >> (64u - r));
}

/* Little-endian load, whatever the host's byte order. */
static uint64_t load64(const unsigned char *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t v;
    memcpy(&v, p, sizeof(v)); /* one load */
    return v;
#else
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
#endif
}

static uint64_t mix_word(uint64_t h, uint64_t w)
{
    h ^= rotl(w * P1, 31) * P2;
    return rotl(h, 27) * 5 + 0x52dce729u;
}

void hash64_init(struct hash64 *s)
{
    memset(s, 0, sizeof(*s));
    s->h = 0x9e3779b97f4a7c15ull;
}

void hash64_update(struct hash64 *s, const void *data, size_t len)
{
    const unsigned char *p = data;
    s->len += len;
    if (s->ncarry) {
        while (len && s->ncarry < 8) {
            s->carry[s->ncarry++] = *p++;
            len--;
        }
        if (s->ncarry < 8)
            return;
        s->h = mix_word(s->h, load64(s->carry));
        s->ncarry = 0;
    }
    uint64_t h = s->h;
    for (; len >= 8; p += 8, len -= 8)
        h = mix_word(h, load64(p));
    s->h = h;
    memcpy(s->carry, p, len);
    s->ncarry = (unsigned)len;
}

/* The end of both hashes: the last bytes (`tail`, little-endian), the length, then
 * MurmurHash3's finaliser, so that every input bit affects every output bit. Never 0. */
static uint64_t finish(uint64_t h, uint64_t tail, uint64_t len)
{
    h ^= rotl(tail * P2, 33) * P1;
    h ^= len;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h ? h : 1;
}

uint64_t hash64_final(const struct hash64 *s)
{
    uint64_t tail = 0;
    for (unsigned i = s->ncarry; i-- > 0;)
        tail = (tail << 8) | s->carry[i];
    return finish(s->h, tail, s->len);
}

uint64_t hash64_bytes(const void *data, size_t len)
{
    struct hash64 s;
    hash64_init(&s);
    hash64_update(&s, data, len);
    return hash64_final(&s);
}

uint64_t hash64_str(const char *str)
{
    return hash64_bytes(str, strlen(str));
}

void hash64c_init(struct hash64c *s)
{
    memset(s, 0, sizeof(*s));
    for (unsigned i = 0; i < 4; i++)
        s->h[i] = 0x9e3779b97f4a7c15ull + i * P1;
}

/* One 32-byte block into the four lanes. */
static void mix_block(uint64_t h[4], const unsigned char *p)
{
    h[0] = mix_word(h[0], load64(p));
    h[1] = mix_word(h[1], load64(p + 8));
    h[2] = mix_word(h[2], load64(p + 16));
    h[3] = mix_word(h[3], load64(p + 24));
}

void hash64c_update(struct hash64c *s, const void *data, size_t len)
{
    const unsigned char *p = data;
    s->len += len;
    if (s->ncarry) {
        size_t take = 32 - s->ncarry < len ? 32 - s->ncarry : len;
        memcpy(s->carry + s->ncarry, p, take);
        s->ncarry += (unsigned)take;
        p += take;
        len -= take;
        if (s->ncarry < 32)
            return;
        mix_block(s->h, s->carry);
        s->ncarry = 0;
    }
    uint64_t h[4] = {s->h[0], s->h[1], s->h[2], s->h[3]};
    for (; len >= 32; p += 32, len -= 32)
        mix_block(h, p);
    memcpy(s->h, h, sizeof(h));
    memcpy(s->carry, p, len);
    s->ncarry = (unsigned)len;
}

uint64_t hash64c_final(const struct hash64c *s)
{
    /* The lanes folded into one, then the last words and bytes as hash64 ends. */
    uint64_t h = s->h[0];
    for (unsigned i = 1; i < 4; i++)
        h = mix_word(h, rotl(s->h[i], 7 * i));
    unsigned n = s->ncarry, i = 0;
    for (; i + 8 <= n; i += 8)
        h = mix_word(h, load64(s->carry + i));
    uint64_t tail = 0;
    for (unsigned k = n; k-- > i;)
        tail = (tail << 8) | s->carry[k];
    return finish(h, tail, s->len);
}

uint64_t hash64c_bytes(const void *data, size_t len)
{
    struct hash64c s;
    hash64c_init(&s);
    hash64c_update(&s, data, len);
    return hash64c_final(&s);
}
