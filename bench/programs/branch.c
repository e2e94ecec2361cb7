/* Branches: insertion sort and binary searches over pseudo-random data. */
/* REPEAT scales the work (bench/translator.ts runs longer copies beside QEMU). */
#ifndef REPEAT
#define REPEAT 1
#endif
#include <stdint.h>
#define N 3000
static int32_t v[N];
volatile int64_t result;
int main(void) {
  uint32_t s = 12345;
  for (int i = 0; i < N; i++) { s = s * 1103515245u + 12345u; v[i] = (int32_t)(s >> 8); }
  for (int i = 1; i < N; i++) {
    int32_t k = v[i]; int j = i - 1;
    while (j >= 0 && v[j] > k) { v[j + 1] = v[j]; j--; }
    v[j + 1] = k;
  }
  int64_t found = 0;
  for (int q = 0; q < 200000 * REPEAT; q++) {
    s = s * 1103515245u + 12345u;
    int32_t key = (int32_t)(s >> 8);
    int lo = 0, hi = N - 1;
    while (lo <= hi) { int mid = (lo + hi) / 2; if (v[mid] < key) lo = mid + 1; else if (v[mid] > key) hi = mid - 1; else { found++; break; } }
    found += lo;
  }
  result = found;
  return 0;
}
