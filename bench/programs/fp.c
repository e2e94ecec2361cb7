/* Floating point: double matrix multiply and a single-precision polynomial. */
/* REPEAT scales the work (bench/translator.ts runs longer copies beside QEMU). */
#ifndef REPEAT
#define REPEAT 1
#endif
#define N 96
static double A[N][N], B[N][N], C[N][N];
volatile double result;
int main(void) {
  for (int i = 0; i < N; i++) for (int j = 0; j < N; j++) { A[i][j] = (i + 1) * 0.5 / (j + 1); B[i][j] = (i - j) * 0.25; }
  for (int r = 0; r < 3 * REPEAT; r++)
    for (int i = 0; i < N; i++)
      for (int j = 0; j < N; j++) {
        double s = 0;
        for (int k = 0; k < N; k++) s += A[i][k] * B[k][j];
        C[i][j] = s + r;
      }
  float f = 0.0f;
  for (int i = 0; i < 300000; i++) { float x = (float)i * 1e-5f; f += ((x * 0.5f + 1.25f) * x - 3.0f) * x / (x + 1.0f); }
  result = C[N / 2][N / 3] + f;
  return 0;
}
