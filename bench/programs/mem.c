/* Memory: copies, fills and strided sums over a 1 MiB buffer. */
/* REPEAT scales the work (bench/translator.ts runs longer copies beside QEMU). */
#ifndef REPEAT
#define REPEAT 1
#endif
#include <stdint.h>
#define N (1 << 17)
static uint64_t a[N], b[N];
volatile uint64_t result;
int main(void) {
  uint64_t sum = 0;
  for (int i = 0; i < N; i++) a[i] = i * 2654435761u;
  for (int r = 0; r < 12 * REPEAT; r++) {
    for (int i = 0; i < N; i++) b[i] = a[i] + r;
    for (int i = 0; i < N; i += 1 + (r & 3)) sum += b[i];
    uint8_t *p = (uint8_t *)a;
    for (int i = 0; i < N; i++) p[i * 3 % (N * 8)] ^= (uint8_t)i;
  }
  result = sum;
  return 0;
}
