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

uint64_t hash64_final(const struct hash64 *s)
{
    uint64_t h = s->h, tail = 0;
    for (unsigned i = s->ncarry; i-- > 0;)
        tail = (tail << 8) | s->carry[i];
    h ^= rotl(tail * P2, 33) * P1;
    h ^= s->len;
    /* MurmurHash3's finaliser: every input bit affects every output bit. */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h ? h : 1;
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
