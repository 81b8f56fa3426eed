/* Build: cc -std=c11 -O1 -g -Wall -Wextra -Werror -fsanitize=address,undefined -Iext ext/glob.c tests/c/test_glob.c -o build/test_glob */
#include <stdio.h>
#include <string.h>
#include "glob.h"
#define T(p, s, e)                                                                                 \
  do {                                                                                             \
    int r = glob_match(p, strlen(p), s, strlen(s));                                                \
    if (r != e) {                                                                                  \
      printf("FAIL %s %s want %d\n", p, s, e);                                                     \
      fails++;                                                                                     \
    } else                                                                                         \
      ok++;                                                                                        \
  } while (0)
int main(void) {
  int ok = 0, fails = 0;
  T("*", "", 1);
  T("*", "abc", 1);
  T("a*", "abc", 1);
  T("a*c", "abc", 1);
  T("a*c", "abd", 0);
  T("?", "a", 1);
  T("?", "", 0);
  T("h?llo", "hello", 1);
  T("h*llo", "heeeello", 1);
  T("h[ae]llo", "hallo", 1);
  T("h[ae]llo", "hillo", 0);
  T("h[^e]llo", "hallo", 1);
  T("h[^e]llo", "hello", 0);
  T("h[!e]llo", "hello", 1);
  T("h[!e]llo", "h!llo", 1);
  T("h[!e]llo", "hallo", 0);
  T("h[a-b]llo", "hbllo", 1);
  T("h[a-b]llo", "hcllo", 0);
  T("h\\*llo", "h*llo", 1);
  T("h\\*llo", "hallo", 0);
  /* Redis rules: an unclosed set takes the rest; "[]" is empty; "[^" matches any byte */
  T("[", "[", 0);
  T("a[", "a[", 0);
  T("a[bc", "ab", 1);
  T("a[bc", "ad", 0);
  T("[]]", "]", 0);
  T("[]]", "", 0);
  T("[!]]", "!]", 1);
  T("[!]]", "a", 0);
  T("a[^", "ax", 1);
  T("[a-]", "^", 1);
  T("[z-a]", "m", 1);
  T("news.*", "news.sport", 1);
  T("news.*", "new.sport", 0);
  T("*.*.*", "a.b.c", 1);
  T("*a*b*c*", "xaybzc", 1);
  T("*a*b*c*", "xaybz", 0);
  T("a*b*c*d*e*f*g*h*i*j*k",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0);
  T("[\\]]", "]", 1);
  T("[a\\-z]", "-", 1);
  T("[a\\-z]", "b", 0);
  T("\\", "\\", 1);
  T("ab\\", "ab\\", 1);
  T("**", "x", 1);
  T("a**", "a", 1);
  printf("%d passed, %d failed\n", ok, fails);
  return fails != 0;
}
