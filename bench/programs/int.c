/* Integer arithmetic: xorshift, multiply, divide, rotate, popcount by hand. */
/* REPEAT scales the work (bench/translator.ts runs longer copies beside QEMU). */
#ifndef REPEAT
#define REPEAT 1
#endif
#include <stdint.h>
volatile uint64_t result;
int main(void) {
  uint64_t x = 88172645463325252ull, acc = 0;
  for (int i = 0; i < 4000000 * REPEAT; i++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    uint64_t m = x * 0x9E3779B97F4A7C15ull;
    acc += (m >> 32) ^ (uint32_t)m;
    acc = (acc << 5) | (acc >> 59);
    if ((i & 15) == 0) acc += x / ((i | 1) + 0ull);
  }
  result = acc;
  return 0;
}
