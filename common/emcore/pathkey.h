/* pathkey.h — a file's path, hashed once.
 *
 * watch looks one path up in several places: the burst queue, the partial parsers and the
 * journal's directory and file sets. Each takes this key instead of hashing the path
 * again: the path is hashed once, where it first enters (an event or a walk), in two
 * parts (its directory and its name) from which the whole path's hash is made.
 */
#ifndef EM_PATHKEY_H
#define EM_PATHKEY_H

#include <stddef.h>
#include <stdint.h>

struct pathkey {
    const char *path;   /* not owned */
    size_t dir_len;     /* path[0..dir_len) is the directory with its last '/' (0: none) */
    uint64_t dir_hash;  /* hash64 of path[0..dir_len) */
    uint64_t name_hash; /* hash64 of path + dir_len */
    uint64_t hash;      /* of the whole path, from the two above; never 0 */
};

void pathkey_init(struct pathkey *k, const char *path);

/* The same for a path in a directory already hashed: path[0..dir_len) is that directory
 * with its '/', and dir_hash its hash (a walk hashes a directory once for all its files). */
void pathkey_init_in(struct pathkey *k, const char *path, size_t dir_len, uint64_t dir_hash);

/* The name part of the key's path. */
static inline const char *pathkey_name(const struct pathkey *k)
{
    return k->path + k->dir_len;
}

#endif
