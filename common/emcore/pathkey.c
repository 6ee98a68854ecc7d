#include "pathkey.h"

#include <string.h>

#include "hash.h"

void pathkey_init_in(struct pathkey *k, const char *path, size_t dir_len, uint64_t dir_hash)
{
    k->path = path;
    k->dir_len = dir_len;
    k->dir_hash = dir_hash;
    k->name_hash = hash64_str(path + dir_len);
    uint64_t h = dir_hash * 0x9e3779b97f4a7c15ull;
    h ^= (k->name_hash << 29) | (k->name_hash >> 35);
    k->hash = h ? h : 1;
}

void pathkey_init(struct pathkey *k, const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0;
    pathkey_init_in(k, path, dir_len, hash64_bytes(path, dir_len));
}
