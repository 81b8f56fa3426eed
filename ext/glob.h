/* glob: the pattern language of pattern subscriptions.
 *
 *   *      any run of bytes, including none (and including '/' and '.':
 *          channel names have no path structure)
 *   ?      exactly one byte
 *   [abc]  one byte from the set; ranges [a-z] (reversed ends swapped);
 *          [^abc] negates; '!' is an ordinary member; "[]" is an empty
 *          set (matches nothing); an unclosed '[' takes the rest of the
 *          pattern as its set
 *   \x     the byte x itself (also inside a set)
 *
 * The same rules as Redis PSUBSCRIBE, so a pattern means the same thing
 * locally and through the Redis engine. Matching is bytewise and runs in
 * O(len(pattern) * len(name)) at worst: a '*' is never retried more than
 * once per name position, so no pattern can make it exponential.
 *
 * Must never: allocate or read past either length (neither is
 * NUL-terminated). */
#ifndef IODINE_GLOB_H
#define IODINE_GLOB_H

#include <stddef.h>

/* Nonzero when `name` matches `pat`. */
int glob_match(const char *pat, size_t plen, const char *name, size_t nlen);

#endif
